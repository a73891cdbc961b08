import {
  type ContainerConfig,
  type ImageConfig,
  type ImageDeleteItem,
  type ImageDiskUsage,
  type ImageFilters,
  invalid,
} from '@tsengine/core';
import { rm } from 'node:fs/promises';
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { applyChanges } from './changes.js';
import { type Reference, parseNormalized } from './reference.js';
import { type LocalImageService, hostArchitecture } from './service.js';
import { filterValues, matchLabels, parseBool, summary, untilTime } from './views.js';

export interface ImportInput {
  repo?: string;
  tag?: string;
  changes?: string[];
  message?: string;
  platform?: string;
}

/** Normalises the import/tag target: repo may carry the tag (the CLI folds it in), tag may come apart. */
export function targetReference(repo: string, tag?: string): Reference {
  const ref = parseNormalized(repo);
  if (ref.digest) throw invalid('cannot import digest reference');
  if (tag) ref.tag = tag;
  if (!ref.tag) ref.tag = 'latest';
  return ref;
}

function parsePlatform(platform: string | undefined): { os: string; architecture: string; variant?: string } {
  if (!platform) return { os: 'linux', architecture: hostArchitecture() };
  const [os, architecture, variant] = platform.split('/');
  if (!os || (architecture === undefined && os !== 'linux')) throw invalid(`invalid platform: ${platform}`);
  const p: { os: string; architecture: string; variant?: string } = { os, architecture: architecture || hostArchitecture() };
  if (variant) p.variant = variant;
  return p;
}

/** docker import: a rootfs tar becomes a one-layer image; returns sha256:<id>. */
export async function importImage(svc: LocalImageService, input: ImportInput, stdin: Readable): Promise<string> {
  const ref = input.repo ? targetReference(input.repo, input.tag) : undefined;
  const config: ContainerConfig = applyChanges({}, input.changes ?? []);
  const platform = parsePlatform(input.platform);
  const spooled = await svc.spoolLayer(stdin);
  try {
    const created = new Date().toISOString();
    const comment = input.message || 'Imported from -';
    const image: ImageConfig = {
      ...platform,
      created,
      comment,
      config,
      container_config: {},
      rootfs: { type: 'layers', diff_ids: [spooled.diffId] },
      history: [{ created, comment }],
    };
    const id = await svc.registerImage(Buffer.from(JSON.stringify(image)), async () => createReadStream(spooled.file));
    if (ref) await svc.setTag(id, ref);
    return id;
  } finally {
    await rm(spooled.dir, { recursive: true, force: true });
  }
}

const PRUNE_FILTERS = new Set(['dangling', 'label', 'label!', 'until']);

/** docker image prune: dangling images (or, with all, every image no container uses). */
export async function pruneImages(svc: LocalImageService, input: { all?: boolean; filters?: ImageFilters }): Promise<{ ImagesDeleted: ImageDeleteItem[] | null; SpaceReclaimed: number }> {
  const filters = input.filters ?? {};
  for (const key of Object.keys(filters)) if (!PRUNE_FILTERS.has(key)) throw invalid(`invalid filter '${key}'`);
  const danglingValues = filterValues(filters, 'dangling');
  const danglingOnly = danglingValues.length ? parseBool('dangling', danglingValues[0]!) : !input.all;
  const labels = filterValues(filters, 'label');
  const notLabels = filterValues(filters, 'label!');
  const until = filterValues(filters, 'until').map(untilTime);
  const deleted: ImageDeleteItem[] = [];
  let reclaimed = 0;
  const tried = new Set<string>();
  for (let progress = true; progress; ) {
    progress = false;
    for (const image of svc.images.all()) {
      if (tried.has(image.id)) continue;
      const refs = svc.refs.referencesOf(image.id);
      if (danglingOnly && refs.length > 0) continue;
      if (svc.images.children(image.id).length > 0) continue;
      if (labels.length && !matchLabels(image, labels)) continue;
      if (notLabels.length && notLabels.some((l) => matchLabels(image, [l]))) continue;
      const created = Date.parse(image.config.created ?? '') || 0;
      if (until.some((t) => created >= t)) continue;
      tried.add(image.id);
      if ((await svc.usersOf(image.id)).length > 0) continue;
      if (refs.length) deleted.push(...(await svc.untagAll(image.id)));
      const result = await svc.pruneOne(image.id);
      deleted.push(...result.records);
      reclaimed += result.reclaimed;
      progress = true;
    }
  }
  return { ImagesDeleted: deleted.length ? deleted : null, SpaceReclaimed: reclaimed };
}

/** The images part of GET /system/df: shared sizes over layers that more than one image uses. */
export async function diskUsage(svc: LocalImageService): Promise<ImageDiskUsage> {
  const useCount = new Map<string, number>();
  const chains = new Map<string, string[]>();
  for (const image of svc.images.all()) {
    const chain = image.topLayer ? svc.layers.chain(image.topLayer).map((l) => l.chainId) : [];
    chains.set(image.id, chain);
    for (const c of chain) useCount.set(c, (useCount.get(c) ?? 0) + 1);
  }
  const images = [];
  for (const image of svc.images.all()) {
    const s = summary(svc, image);
    s.Containers = (await svc.usersOf(image.id)).length;
    s.SharedSize = (chains.get(image.id) ?? []).filter((c) => (useCount.get(c) ?? 0) > 1).reduce((sum, c) => sum + (svc.layers.get(c)?.size ?? 0), 0);
    images.push(s);
  }
  images.sort((a, b) => b.Created - a.Created);
  const LayersSize = svc.layers.all().reduce((sum, l) => sum + l.size, 0);
  return { LayersSize, Images: images };
}
