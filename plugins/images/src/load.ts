import { createReadStream, createWriteStream } from 'node:fs';
import { readFile, rm, stat } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { invalid, errorMessage } from '@tsengine/core';
import * as tar from 'tar-stream';
import { hex, sha256 } from './digest.js';
import { type Reference, familiarString, parseTagged } from './reference.js';
import type { LocalImageService } from './service.js';

const MAX_JSON = 32 * 1024 * 1024;

/** An archive's entries spooled to numbered files under a scratch folder: names are never used as paths. */
class Spool {
  private readonly files = new Map<string, string>();
  private readonly links = new Map<string, string>();
  private count = 0;

  constructor(readonly dir: string) {}

  async read(input: Readable): Promise<void> {
    const extract = tar.extract();
    const done = (async () => {
      for await (const entry of extract) {
        const name = clean(entry.header.name);
        const type = entry.header.type;
        if (type === 'file' || type === 'contiguous-file') {
          const path = join(this.dir, String(this.count++));
          await pipeline(entry, createWriteStream(path));
          this.files.set(name, path);
        } else {
          if ((type === 'symlink' || type === 'link') && entry.header.linkname) {
            const target = type === 'symlink' ? posix.join(posix.dirname(name), entry.header.linkname) : entry.header.linkname;
            this.links.set(name, clean(target));
          }
          entry.resume();
        }
      }
    })();
    await Promise.all([pipeline(input, extract), done]);
  }

  path(name: string): string | undefined {
    let cur = clean(name);
    for (let i = 0; i < 16; i++) {
      const file = this.files.get(cur);
      if (file) return file;
      const next = this.links.get(cur);
      if (!next) return undefined;
      cur = next;
    }
    return undefined;
  }

  require(name: string): string {
    const path = this.path(name);
    if (!path) throw invalid(`invalid archive: ${name} is referenced but missing`);
    return path;
  }

  async json<T>(name: string): Promise<T> {
    const path = this.require(name);
    if ((await stat(path)).size > MAX_JSON) throw invalid(`invalid archive: ${name} is too large`);
    try {
      return JSON.parse(await readFile(path, 'utf8')) as T;
    } catch (err) {
      throw invalid(`invalid archive: ${name} is not valid JSON: ${errorMessage(err)}`);
    }
  }

  has(name: string): boolean {
    return this.path(name) !== undefined;
  }
}

function clean(name: string): string {
  return posix.normalize(name).replace(/^(\.\/|\/)+/, '').replace(/\/$/, '');
}

interface ArchiveImage {
  configPath: string;
  layerPaths: string[];
  tags: Reference[];
}

interface DockerManifestEntry {
  Config: string;
  RepoTags: string[] | null;
  Layers: string[];
}

interface Descriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  annotations?: Record<string, string>;
}

function blobPath(digest: string): string {
  const m = /^([a-z0-9]+):([a-f0-9]+)$/.exec(digest);
  if (!m) throw invalid(`invalid archive: bad digest ${digest}`);
  return `blobs/${m[1]}/${m[2]}`;
}

async function dockerArchiveImages(spool: Spool): Promise<ArchiveImage[]> {
  const manifest = await spool.json<DockerManifestEntry[]>('manifest.json');
  if (!Array.isArray(manifest)) throw invalid('invalid archive: manifest.json is not a list');
  return manifest.map((m) => ({
    configPath: m.Config,
    layerPaths: m.Layers ?? [],
    tags: (m.RepoTags ?? []).map((t) => parseTagged(t)),
  }));
}

const INDEX_TYPES = new Set(['application/vnd.oci.image.index.v1+json', 'application/vnd.docker.distribution.manifest.list.v2+json']);

async function ociImages(spool: Spool): Promise<ArchiveImage[]> {
  const out: ArchiveImage[] = [];
  const byManifest = new Map<string, ArchiveImage>();
  const visit = async (descriptors: Descriptor[], depth: number): Promise<void> => {
    if (depth > 4) throw invalid('invalid archive: indexes nested too deeply');
    for (const d of descriptors) {
      const path = blobPath(d.digest);
      const body = await spool.json<{ mediaType?: string; manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] }>(path);
      await verifyBlob(spool, path, d.digest);
      if (INDEX_TYPES.has(d.mediaType ?? body.mediaType ?? '') || body.manifests) {
        await visit(platformMatches(body.manifests ?? []), depth + 1);
        continue;
      }
      if (!body.config) throw invalid(`invalid archive: manifest ${d.digest} has no config`);
      let image = byManifest.get(d.digest);
      if (!image) {
        image = { configPath: blobPath(body.config.digest), layerPaths: (body.layers ?? []).map((l) => blobPath(l.digest)), tags: [] };
        byManifest.set(d.digest, image);
        out.push(image);
      }
      const ref = ociRefName(d.annotations ?? {});
      if (ref) image.tags.push(ref);
    }
  };
  const index = await spool.json<{ manifests?: Descriptor[] }>('index.json');
  await visit(index.manifests ?? [], 0);
  return out;
}

/** A nested index may list several platforms; take this host's linux ones (or all when none say). */
function platformMatches(descriptors: Descriptor[]): Descriptor[] {
  const arch = process.arch === 'x64' ? 'amd64' : process.arch;
  const withPlatform = descriptors as Array<Descriptor & { platform?: { os?: string; architecture?: string } }>;
  const ours = withPlatform.filter((d) => !d.platform || (d.platform.os === 'linux' && d.platform.architecture === arch));
  return ours.length ? ours.slice(0, 1) : [];
}

/** containerd's full name wins; ref.name is used when it is a full reference (name:tag), not a bare tag. */
function ociRefName(annotations: Record<string, string>): Reference | undefined {
  const full = annotations['io.containerd.image.name'];
  const refName = annotations['org.opencontainers.image.ref.name'];
  const candidate = full ?? (refName && /[:/]/.test(refName) ? refName : undefined);
  if (!candidate) return undefined;
  try {
    return parseTagged(candidate);
  } catch {
    return undefined;
  }
}

async function verifyBlob(spool: Spool, path: string, digest: string): Promise<void> {
  if (!digest.startsWith('sha256:')) return;
  const data = await readFile(spool.require(path));
  if (sha256(data) !== digest) throw invalid(`invalid archive: blob ${digest} does not match its digest`);
}

function progressBar(current: number, total: number): string {
  const width = 50;
  const filled = total > 0 ? Math.floor((current / total) * width) : width;
  const bar = filled >= width ? '='.repeat(width) : '='.repeat(Math.max(filled - 1, 0)) + '>' + ' '.repeat(width - Math.max(filled, 1));
  return `[${bar}]  ${humanSize(current)}/${humanSize(total)}`;
}

function humanSize(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0;
  let v = n;
  while (v >= 1000 && i < units.length - 1) {
    v /= 1000;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(2)}${units[i]}`;
}

export interface LoadOptions {
  quiet: boolean;
  stdin: Readable;
  stdout: Writable;
  signal: AbortSignal;
}

/** docker load: a docker-archive (legacy or blobs/ layout) or an OCI layout, plain or gzip. */
export async function loadArchive(svc: LocalImageService, options: LoadOptions): Promise<string[]> {
  const dir = await svc.tempDir('load');
  const write = (obj: unknown) => options.stdout.write(JSON.stringify(obj) + '\n');
  try {
    const spool = new Spool(dir);
    await spool.read(await svc.decoder.decompressed(options.stdin));
    options.signal.throwIfAborted();
    let images: ArchiveImage[];
    if (spool.has('manifest.json')) images = await dockerArchiveImages(spool);
    else if (spool.has('index.json')) images = await ociImages(spool);
    else throw invalid('invalid archive: neither manifest.json nor index.json found (not a docker-archive or OCI layout)');
    if (images.length === 0) throw invalid('invalid archive: it contains no images');
    const loaded: string[] = [];
    for (const image of images) {
      options.signal.throwIfAborted();
      const configPath = spool.require(image.configPath);
      if ((await stat(configPath)).size > MAX_JSON) throw invalid('invalid archive: image config is too large');
      const raw = await readFile(configPath);
      let diffIds: string[];
      try {
        diffIds = (JSON.parse(raw.toString('utf8')) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
      } catch {
        throw invalid(`invalid archive: ${image.configPath} is not valid JSON`);
      }
      if (diffIds.length !== image.layerPaths.length) {
        throw invalid(`invalid archive: the image config lists ${diffIds.length} layers (diff_ids) but the manifest has ${image.layerPaths.length}`);
      }
      const layerFiles = image.layerPaths.map((p) => spool.require(p));
      const id = await svc.registerImage(
        raw,
        async (index) => createReadStream(layerFiles[index]!),
        (index, state) => {
          if (options.quiet) return;
          const idShort = hex(diffIds[index]!).slice(0, 12);
          if (state === 'applied') {
            const total = svc.layers.get(svc.chainSha(diffIds.slice(0, index + 1))!)?.size ?? 0;
            write({ status: 'Loading layer', progressDetail: { current: total, total }, progress: progressBar(total, total), id: idShort });
          }
        },
      );
      if (image.tags.length === 0) {
        write({ stream: `Loaded image ID: ${id}\n` });
        loaded.push(id);
      }
      for (const tag of image.tags) {
        const previous = await svc.setTag(id, tag);
        const name = familiarString(tag);
        if (previous) write({ stream: `The image ${name} already exists, renaming the old one with ID ${previous} to empty string\n` });
        write({ stream: `Loaded image: ${name}\n` });
        loaded.push(name);
      }
    }
    return loaded;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
