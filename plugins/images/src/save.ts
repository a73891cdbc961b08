import { createReadStream, createWriteStream } from 'node:fs';
import { rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { systemError } from '@tsengine/core';
import * as tar from 'tar-stream';
import { HashingStream, hex, sha256 } from './digest.js';
import type { StoredImage } from './image-store.js';
import { type Reference, familiarName, familiarString, parseTagged, referenceString } from './reference.js';
import type { LocalImageService } from './service.js';

const MTIME = new Date(0);

interface Selected {
  image: StoredImage;
  tags: Reference[];
}

/** Which images and tags `docker save NAMES…` means: a name saves that tag, an ID the untagged image. */
function select(svc: LocalImageService, names: string[]): Selected[] {
  const out = new Map<string, Selected>();
  for (const name of names) {
    const image = svc.get(name);
    const entry = out.get(image.id) ?? { image, tags: [] };
    out.set(image.id, entry);
    let ref: Reference | undefined;
    try {
      ref = parseTagged(name);
    } catch {
      ref = undefined;
    }
    if (ref && !ref.digest && svc.refs.get(ref) === image.id && !entry.tags.some((t) => referenceString(t) === referenceString(ref!))) entry.tags.push(ref);
  }
  return [...out.values()];
}

/**
 * docker save: a docker-archive in the layout docker v25+ writes (blobs/sha256/…, manifest.json,
 * repositories) that is also an OCI image layout (index.json, oci-layout). Each layer tar comes from
 * the graph driver's diff and must reproduce the config's diff_id.
 */
export async function saveArchive(svc: LocalImageService, names: string[], out: Writable, signal: AbortSignal): Promise<void> {
  const selected = select(svc, names);
  const pack = tar.pack();
  const piping = pipeline(pack, out);
  piping.catch(() => undefined);
  const dir = await svc.tempDir('save');
  const written = new Set<string>();
  const layerSizes = new Map<string, number>();
  const addBuffer = (name: string, data: Buffer | string) =>
    new Promise<void>((resolve, reject) => pack.entry({ name, mtime: MTIME, mode: 0o644 }, typeof data === 'string' ? Buffer.from(data) : data, (err) => (err ? reject(err) : resolve())));
  const addDir = (name: string) => new Promise<void>((resolve, reject) => pack.entry({ name, type: 'directory', mtime: MTIME, mode: 0o755 }, (err) => (err ? reject(err) : resolve())));
  try {
    await addDir('blobs');
    await addDir('blobs/sha256');
    const manifest: Array<{ Config: string; RepoTags: string[] | null; Layers: string[] }> = [];
    const index: Array<Record<string, unknown>> = [];
    const repositories: Record<string, Record<string, string>> = {};
    for (const { image, tags } of selected) {
      signal.throwIfAborted();
      const chain = image.topLayer ? svc.layers.chain(image.topLayer) : [];
      const layerDescriptors: Array<{ mediaType: string; digest: string; size: number }> = [];
      for (const layer of chain) {
        const path = `blobs/sha256/${hex(layer.diffId)}`;
        if (!written.has(path)) {
          const file = join(dir, hex(layer.diffId));
          const hashing = new HashingStream(svc.digests);
          await pipeline(await svc.layers.diff(layer.chainId), hashing, createWriteStream(file));
          const digest = await hashing.digest();
          if (digest !== layer.diffId) {
            throw systemError(`cannot save layer ${layer.chainId}: the graph driver's diff has digest ${digest}, the image config expects ${layer.diffId}`);
          }
          const { size } = await stat(file);
          await new Promise<void>((resolve, reject) => {
            const entry = pack.entry({ name: path, size, mtime: MTIME, mode: 0o644 }, (err) => (err ? reject(err) : resolve()));
            pipeline(createReadStream(file), entry).catch(reject);
          });
          await rm(file, { force: true });
          written.add(path);
          layerSizes.set(layer.diffId, size);
        }
        layerDescriptors.push({ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: layer.diffId, size: layerSizes.get(layer.diffId)! });
      }
      const configPath = `blobs/sha256/${hex(image.id)}`;
      if (!written.has(configPath)) {
        await addBuffer(configPath, image.raw);
        written.add(configPath);
      }
      const ociManifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: image.id, size: image.raw.length },
          layers: layerDescriptors,
        }),
      );
      const manifestDigest = sha256(ociManifest);
      const manifestPath = `blobs/sha256/${hex(manifestDigest)}`;
      if (!written.has(manifestPath)) {
        await addBuffer(manifestPath, ociManifest);
        written.add(manifestPath);
      }
      const descriptor = { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: manifestDigest, size: ociManifest.length };
      if (tags.length === 0) index.push(descriptor);
      for (const t of tags) {
        index.push({ ...descriptor, annotations: { 'io.containerd.image.name': referenceString(t), 'org.opencontainers.image.ref.name': t.tag ?? 'latest' } });
        if (chain.length) (repositories[familiarName(t.name)] ??= {})[t.tag ?? 'latest'] = hex(chain[chain.length - 1]!.diffId);
      }
      manifest.push({ Config: configPath, RepoTags: tags.length ? tags.map(familiarString) : null, Layers: chain.map((l) => `blobs/sha256/${hex(l.diffId)}`) });
    }
    await addBuffer('index.json', JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests: index }) + '\n');
    await addBuffer('manifest.json', JSON.stringify(manifest) + '\n');
    await addBuffer('oci-layout', JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    if (Object.keys(repositories).length) await addBuffer('repositories', JSON.stringify(repositories) + '\n');
    pack.finalize();
    await piping;
  } catch (err) {
    pack.destroy(err as Error);
    throw err;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

