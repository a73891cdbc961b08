import { createHash } from 'node:crypto';
import { lstat, readdir, readFile, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as tar from 'tar-stream';

/** A tar header as pack.entry takes it (name required, the rest optional). */
export type TarHeader = Partial<tar.Header> & { name: string };

/**
 * Test image builders: deterministic layer tars (tar-stream, fixed mtimes, uid/gid 0) and image
 * archives in each layout `docker load` accepts. Shared with the integration suites through
 * test/helpers/images.ts.
 */

export type FileSpec = string | Buffer | { symlink: string } | { dir: true; mode?: number } | { content: string | Buffer; mode: number };

export interface LayerSpec {
  /** path → content; parents are created as directories. */
  files?: Record<string, FileSpec>;
  /** Paths deleted by this layer (written as .wh. whiteouts). */
  deletes?: string[];
  /** Directories made opaque by this layer (.wh..wh..opq). */
  opaque?: string[];
  /** Raw headers written as-is (for hostile layers). */
  raw?: Array<{ header: TarHeader; body?: Buffer }>;
}

const MTIME = new Date('2020-01-01T00:00:00Z');

export function digestOf(data: Buffer): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** A tar of the given entries, in order. */
export async function packEntries(entries: Array<{ header: TarHeader; body?: Buffer }>): Promise<Buffer> {
  const pack = tar.pack();
  const chunks: Buffer[] = [];
  const collected = (async () => {
    for await (const c of pack) chunks.push(c as Buffer);
  })();
  for (const e of entries) {
    await new Promise<void>((resolve, reject) => pack.entry(e.header, e.body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await collected;
  return Buffer.concat(chunks);
}

/** A layer tar from a spec (uncompressed). */
export async function layerTar(spec: LayerSpec): Promise<Buffer> {
  const entries: Array<{ header: TarHeader; body?: Buffer }> = [];
  const dirs = new Set<string>();
  const addDir = (path: string, mode = 0o755) => {
    if (dirs.has(path)) return;
    const parent = path.includes('/') ? path.slice(0, path.lastIndexOf('/')) : '';
    if (parent) addDir(parent);
    dirs.add(path);
    entries.push({ header: { name: `${path}/`, type: 'directory', mode, mtime: MTIME, uid: 0, gid: 0 } });
  };
  const parentOf = (p: string) => (p.includes('/') ? p.slice(0, p.lastIndexOf('/')) : '');
  for (const dir of spec.opaque ?? []) {
    addDir(dir);
    entries.push({ header: { name: `${dir}/.wh..wh..opq`, type: 'file', mode: 0o644, mtime: MTIME, uid: 0, gid: 0, size: 0 } });
  }
  for (const path of Object.keys(spec.files ?? {}).sort()) {
    const f = spec.files![path]!;
    if (parentOf(path)) addDir(parentOf(path));
    const base = { name: path, mtime: MTIME, uid: 0, gid: 0 };
    if (typeof f === 'string' || Buffer.isBuffer(f)) {
      const body = Buffer.from(f);
      entries.push({ header: { ...base, type: 'file', mode: 0o644, size: body.length }, body });
    } else if ('symlink' in f) entries.push({ header: { ...base, type: 'symlink', mode: 0o777, linkname: f.symlink } });
    else if ('dir' in f) addDir(path, f.mode ?? 0o755);
    else {
      const body = Buffer.from(f.content);
      entries.push({ header: { ...base, type: 'file', mode: f.mode, size: body.length }, body });
    }
  }
  for (const path of spec.deletes ?? []) {
    const parent = parentOf(path);
    if (parent) addDir(parent);
    const name = path.slice(path.lastIndexOf('/') + 1);
    entries.push({ header: { name: `${parent ? parent + '/' : ''}.wh.${name}`, type: 'file', mode: 0o644, mtime: MTIME, uid: 0, gid: 0, size: 0 } });
  }
  for (const r of spec.raw ?? []) entries.push(r);
  return packEntries(entries);
}

/** A deterministic tar of a directory tree (sorted names, fixed mtime, root-owned). */
export async function tarDirectory(root: string): Promise<Buffer> {
  const entries: Array<{ header: TarHeader; body?: Buffer }> = [];
  const walk = async (rel: string) => {
    const names = (await readdir(join(root, rel))).sort();
    for (const name of names) {
      const path = rel ? `${rel}/${name}` : name;
      const full = join(root, path);
      const st = await lstat(full);
      const base = { name: path, mode: st.mode & 0o7777, mtime: MTIME, uid: 0, gid: 0 };
      if (st.isDirectory()) {
        entries.push({ header: { ...base, name: `${path}/`, type: 'directory' } });
        await walk(path);
      } else if (st.isSymbolicLink()) entries.push({ header: { ...base, type: 'symlink', linkname: await readlink(full) } });
      else if (st.isFile()) {
        const body = await readFile(full);
        entries.push({ header: { ...base, type: 'file', size: body.length }, body });
      }
    }
  };
  await walk('');
  return packEntries(entries);
}

export interface ArchiveOptions {
  repoTags?: string[];
  layout?: 'legacy' | 'blobs' | 'oci';
  /** gzip each layer (OCI layout only). */
  gzipLayers?: boolean;
  /** Container config of the image. */
  config?: Record<string, unknown>;
  created?: string;
  /** Overrides the config's diff_ids (to test mismatches). */
  diffIds?: string[];
}

export interface BuiltImage {
  id: string;
  diffIds: string[];
  configBytes: Buffer;
  layers: Buffer[];
}

/** The config for a stack of layer tars. */
export function imageConfigFor(layers: Buffer[], options: ArchiveOptions = {}): { configBytes: Buffer; diffIds: string[] } {
  const diffIds = options.diffIds ?? layers.map(digestOf);
  const created = options.created ?? '2020-01-01T00:00:00Z';
  const config = {
    architecture: process.arch === 'x64' ? 'amd64' : process.arch,
    os: 'linux',
    created,
    config: options.config ?? { Cmd: ['sh'] },
    rootfs: { type: 'layers', diff_ids: diffIds },
    history: layers.map((_, i) => ({ created, created_by: `layer ${i}` })),
  };
  return { configBytes: Buffer.from(JSON.stringify(config)), diffIds };
}

/** A tar of an image: docker-archive (legacy <id>/layer.tar or v25 blobs/) or a plain OCI layout. */
export async function imageArchive(layers: Buffer[], options: ArchiveOptions = {}): Promise<{ archive: Buffer; image: BuiltImage }> {
  const { configBytes, diffIds } = imageConfigFor(layers, options);
  const id = digestOf(configBytes);
  const hex = (d: string) => d.slice(7);
  const entries: Array<{ header: TarHeader; body?: Buffer }> = [];
  const file = (name: string, body: Buffer) => entries.push({ header: { name, type: 'file', mode: 0o644, size: body.length, mtime: MTIME }, body });
  const layout = options.layout ?? 'blobs';
  if (layout === 'legacy') {
    const layerPaths: string[] = [];
    layers.forEach((l, i) => {
      const dir = createHash('sha256').update(`${id} ${i}`).digest('hex');
      entries.push({ header: { name: `${dir}/`, type: 'directory', mode: 0o755, mtime: MTIME } });
      file(`${dir}/layer.tar`, l);
      file(`${dir}/VERSION`, Buffer.from('1.0'));
      layerPaths.push(`${dir}/layer.tar`);
    });
    file(`${hex(id)}.json`, configBytes);
    file('manifest.json', Buffer.from(JSON.stringify([{ Config: `${hex(id)}.json`, RepoTags: options.repoTags ?? null, Layers: layerPaths }])));
  } else {
    const blobs = new Map<string, Buffer>();
    const layerDescs = layers.map((l) => {
      const body = layout === 'oci' && options.gzipLayers ? gzipSync(l) : l;
      const d = digestOf(body);
      blobs.set(d, body);
      return { mediaType: options.gzipLayers ? 'application/vnd.oci.image.layer.v1.tar+gzip' : 'application/vnd.oci.image.layer.v1.tar', digest: d, size: body.length };
    });
    blobs.set(id, configBytes);
    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: id, size: configBytes.length },
        layers: layerDescs,
      }),
    );
    const manifestDigest = digestOf(manifest);
    blobs.set(manifestDigest, manifest);
    for (const [d, body] of blobs) file(`blobs/sha256/${hex(d)}`, body);
    const tags = options.repoTags ?? [];
    const descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: manifest.length };
    const manifests = tags.length ? tags.map((t) => ({ ...descriptor, annotations: { 'org.opencontainers.image.ref.name': t } })) : [descriptor];
    file('index.json', Buffer.from(JSON.stringify({ schemaVersion: 2, manifests })));
    file('oci-layout', Buffer.from('{"imageLayoutVersion":"1.0.0"}'));
    if (layout === 'blobs') {
      file('manifest.json', Buffer.from(JSON.stringify([{ Config: `blobs/sha256/${hex(id)}`, RepoTags: tags.length ? tags : null, Layers: layerDescs.map((l) => `blobs/sha256/${hex(l.digest)}`) }])));
    }
  }
  return { archive: await packEntries(entries), image: { id, diffIds, configBytes, layers } };
}

/** makeImageArchive([{ files… }, { deletes… }]): a multi-layer image archive from layer specs. */
export async function makeImageArchive(specs: LayerSpec[], options: ArchiveOptions = {}): Promise<{ archive: Buffer; image: BuiltImage }> {
  const layers = [];
  for (const spec of specs) layers.push(await layerTar(spec));
  return imageArchive(layers, options);
}

/** Reads a tar into name → body (files only). */
export async function readTar(data: Buffer): Promise<Map<string, Buffer>> {
  const out = new Map<string, Buffer>();
  const extract = tar.extract();
  const done = (async () => {
    for await (const entry of extract) {
      const chunks: Buffer[] = [];
      for await (const c of entry) chunks.push(c as Buffer);
      if (entry.header.type === 'file') out.set(entry.header.name, Buffer.concat(chunks));
    }
  })();
  extract.end(data);
  await done;
  return out;
}
