import { type ImageFilters, type ImageHistoryItem, type ImageInspect, type ImageSummary, invalid } from '@tsengine/core';
import type { StoredImage } from './image-store.js';
import { matchReference } from './reference.js';
import type { LocalImageService } from './service.js';

function unixSeconds(iso: string | undefined): number {
  const t = iso ? Date.parse(iso) : NaN;
  return Number.isFinite(t) ? Math.floor(t / 1000) : 0;
}

export function summary(svc: LocalImageService, image: StoredImage): ImageSummary {
  const size = svc.imageSize(image);
  const tags = svc.tagsOf(image.id);
  const digests = svc.digestsOf(image.id);
  return {
    Containers: -1,
    Created: unixSeconds(image.config.created),
    Id: image.id,
    Labels: image.config.config?.Labels ?? null,
    ParentId: image.meta.parent ?? '',
    RepoDigests: digests.length ? digests : null,
    RepoTags: tags.length ? tags : null,
    SharedSize: -1,
    Size: size,
    VirtualSize: size,
  };
}

/** Docker's filter maps arrive as {"k":{"v":true}} (CLI) or {"k":["v"]} (older clients). */
export function filterValues(filters: ImageFilters | undefined, key: string): string[] {
  const v = filters?.[key];
  if (!v) return [];
  return Array.isArray(v) ? v : Object.entries(v).filter(([, on]) => on).map(([k]) => k);
}

const LIST_FILTERS = new Set(['reference', 'dangling', 'label', 'before', 'since', 'until']);

export function parseBool(key: string, value: string): boolean {
  if (/^(true|1)$/i.test(value)) return true;
  if (/^(false|0)$/i.test(value)) return false;
  throw invalid(`Invalid filter '${key}=${value}'`);
}

export function matchLabels(image: StoredImage, wanted: string[]): boolean {
  const labels = image.config.config?.Labels ?? {};
  return wanted.every((w) => {
    const eq = w.indexOf('=');
    if (eq === -1) return w in labels;
    return labels[w.slice(0, eq)] === w.slice(eq + 1);
  });
}

/** `until` accepts unix seconds, RFC 3339 or a Go-style duration before now (10m, 2h). */
export function untilTime(value: string): number {
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const d = /^(\d+)(s|m|h)$/.exec(value);
  if (d) return Date.now() - Number(d[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[d[2] as 's' | 'm' | 'h'];
  const t = Date.parse(value);
  if (!Number.isFinite(t)) throw invalid(`invalid value for until: ${value}`);
  return t;
}

export function list(svc: LocalImageService, input: { all?: boolean; filters?: ImageFilters }): ImageSummary[] {
  const filters = input.filters ?? {};
  for (const key of Object.keys(filters)) if (!LIST_FILTERS.has(key)) throw invalid(`invalid filter '${key}'`);
  const dangling = filterValues(filters, 'dangling');
  const danglingOnly = dangling.length ? parseBool('dangling', dangling[0]!) : undefined;
  const refPatterns = filterValues(filters, 'reference');
  const labels = filterValues(filters, 'label');
  const before = filterValues(filters, 'before').map((n) => Date.parse(svc.get(n).config.created ?? ''));
  const since = filterValues(filters, 'since').map((n) => Date.parse(svc.get(n).config.created ?? ''));
  const until = filterValues(filters, 'until').map(untilTime);
  const out: ImageSummary[] = [];
  for (const image of svc.images.all()) {
    const created = Date.parse(image.config.created ?? '') || 0;
    if (before.some((t) => created >= t)) continue;
    if (since.some((t) => created <= t)) continue;
    if (until.some((t) => created >= t)) continue;
    if (labels.length && !matchLabels(image, labels)) continue;
    const s = summary(svc, image);
    let refs = svc.refs.referencesOf(image.id);
    if (refPatterns.length) refs = refs.filter((r) => refPatterns.some((p) => matchReference(p, r)));
    const tags = refs.filter((r) => !r.digest);
    const digests = refs.filter((r) => r.digest);
    s.RepoTags = tags.length ? svc.tagsOf(image.id).filter((t) => tags.some((r) => t === familiar(r))) : null;
    s.RepoDigests = digests.length ? svc.digestsOf(image.id).filter((t) => digests.some((r) => t === familiar(r))) : null;
    if (!s.RepoTags && !s.RepoDigests) {
      if (!input.all && svc.images.children(image.id).length > 0) continue;
      if (danglingOnly === false) continue;
      if (refPatterns.length) continue;
      s.RepoTags = ['<none>:<none>'];
      s.RepoDigests = ['<none>@<none>'];
    } else if (danglingOnly === true) continue;
    out.push(s);
  }
  return out.sort((a, b) => b.Created - a.Created || a.Id.localeCompare(b.Id));
}

function familiar(r: { name: string; tag?: string; digest?: string }): string {
  // Same rendering as svc.tagsOf/digestsOf.
  const name = r.name.startsWith('docker.io/library/') && !r.name.slice(18).includes('/') ? r.name.slice(18) : r.name.startsWith('docker.io/') ? r.name.slice(10) : r.name;
  return name + (r.tag ? `:${r.tag}` : '') + (r.digest ? `@${r.digest}` : '');
}

const EMPTY_CONFIG = {
  Hostname: '',
  Domainname: '',
  User: '',
  AttachStdin: false,
  AttachStdout: false,
  AttachStderr: false,
  Tty: false,
  OpenStdin: false,
  StdinOnce: false,
  Env: null,
  Cmd: null,
  Image: '',
  Volumes: null,
  WorkingDir: '',
  Entrypoint: null,
  OnBuild: null,
  Labels: null,
};

export function inspect(svc: LocalImageService, image: StoredImage): ImageInspect {
  const size = svc.imageSize(image);
  const c = image.config;
  const result: ImageInspect = {
    Id: image.id,
    RepoTags: svc.tagsOf(image.id),
    RepoDigests: svc.digestsOf(image.id),
    Parent: image.meta.parent ?? '',
    Comment: c.comment ?? '',
    Created: c.created ?? '0001-01-01T00:00:00Z',
    Container: c.container ?? '',
    ContainerConfig: { ...EMPTY_CONFIG, ...(c.container_config ?? {}) },
    DockerVersion: c.docker_version ?? '',
    Author: c.author ?? '',
    Config: { ...EMPTY_CONFIG, ...(c.config ?? {}) },
    Architecture: c.architecture,
    Os: c.os,
    Size: size,
    VirtualSize: size,
    GraphDriver: { Data: {}, Name: svc.driver.name },
    RootFS: { Type: 'layers', Layers: [...c.rootfs.diff_ids] },
    Metadata: { LastTagTime: image.meta.lastTagTime ?? '0001-01-01T00:00:00Z' },
  };
  if (c.variant) result.Variant = c.variant;
  return result;
}

/** Newest first; each non-empty entry takes the next layer from the top, like Docker. */
export function history(svc: LocalImageService, image: StoredImage): ImageHistoryItem[] {
  const chain = image.topLayer ? svc.layers.chain(image.topLayer) : [];
  const entries = image.config.history ?? [];
  const items: ImageHistoryItem[] = [];
  let layerIndex = 0;
  for (const h of entries) {
    let size = 0;
    if (!h.empty_layer) {
      size = chain[layerIndex]?.size ?? 0;
      layerIndex++;
    }
    items.push({ Comment: h.comment ?? '', Created: unixSeconds(h.created), CreatedBy: h.created_by ?? '', Id: '<missing>', Size: size, Tags: null });
  }
  if (entries.length === 0) {
    for (const layer of chain) items.push({ Comment: '', Created: unixSeconds(image.config.created), CreatedBy: '', Id: '<missing>', Size: layer.size, Tags: null });
  }
  items.reverse();
  if (items.length === 0) items.push({ Comment: '', Created: unixSeconds(image.config.created), CreatedBy: '', Id: '<missing>', Size: 0, Tags: null });
  items[0]!.Id = image.id;
  const tags = svc.tagsOf(image.id);
  items[0]!.Tags = tags.length ? tags : null;
  // Images this one was built from own the older entries, as in Docker's history walk.
  let parentId = image.meta.parent;
  let position = items.length - (image.config.history?.length ?? 0);
  while (parentId) {
    const parent = svc.images.get(parentId);
    if (!parent) break;
    const index = items.length - (parent.config.history?.length ?? 0);
    if (index > 0 && index < items.length && index !== position) {
      items[index]!.Id = parent.id;
      const ptags = svc.tagsOf(parent.id);
      items[index]!.Tags = ptags.length ? ptags : null;
    }
    position = index;
    parentId = parent.meta.parent;
  }
  return items;
}
