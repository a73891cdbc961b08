import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type ImageConfig, type Logger, errorMessage, writeFileAtomic, writeJsonAtomic } from '@tsengine/core';
import { chainIds, hex, sha256 } from './digest.js';

export interface ImageMetadata {
  /** The image this one was built on (commit/build), for ParentId and child checks. */
  parent?: string;
  lastTagTime?: string;
}

export interface StoredImage {
  id: string;
  raw: Buffer;
  config: ImageConfig;
  /** Chain ID of the top layer, null for an image without layers. */
  topLayer: string | null;
  meta: ImageMetadata;
}

/** imagedb: content/sha256/<id> holds the config bytes exactly (the ID is their sha256); metadata beside it. */
export class ImageDb {
  private readonly images = new Map<string, StoredImage>();
  private readonly contentDir: string;
  private readonly metaDir: string;

  constructor(
    root: string,
    private readonly log: Logger,
  ) {
    this.contentDir = join(root, 'imagedb', 'content', 'sha256');
    this.metaDir = join(root, 'imagedb', 'metadata', 'sha256');
  }

  /** Loads every image whose layers all exist; an image pointing at a missing layer is dropped. */
  async restore(layerExists: (chainId: string) => boolean): Promise<void> {
    await mkdir(this.contentDir, { recursive: true });
    await mkdir(this.metaDir, { recursive: true });
    for (const name of await readdir(this.contentDir)) {
      if (!/^[a-f0-9]{64}$/.test(name)) continue;
      const id = `sha256:${name}`;
      try {
        const raw = await readFile(join(this.contentDir, name));
        if (sha256(raw) !== id) throw new Error('content does not match its digest');
        const image = this.parse(raw);
        if (image.topLayer && !layerExists(image.topLayer)) throw new Error(`layer ${image.topLayer} is missing`);
        image.meta = await this.readMeta(id);
        this.images.set(id, image);
      } catch (err) {
        this.log.warn({ id, err: errorMessage(err) }, 'discarding an unusable image');
        await this.delete(id);
      }
    }
  }

  parse(raw: Buffer): StoredImage {
    const config = JSON.parse(raw.toString('utf8')) as ImageConfig;
    if (!config || typeof config !== 'object' || config.rootfs?.type !== 'layers' || !Array.isArray(config.rootfs.diff_ids)) {
      throw new Error('not an image config: rootfs.type must be "layers" with diff_ids');
    }
    const chain = chainIds(config.rootfs.diff_ids);
    return { id: sha256(raw), raw, config, topLayer: chain.length ? chain[chain.length - 1]! : null, meta: {} };
  }

  private async readMeta(id: string): Promise<ImageMetadata> {
    try {
      return JSON.parse(await readFile(join(this.metaDir, `${hex(id)}.json`), 'utf8')) as ImageMetadata;
    } catch {
      return {};
    }
  }

  /** Stores the config (its layers must already be complete). */
  async put(raw: Buffer, meta: ImageMetadata): Promise<StoredImage> {
    const image = this.parse(raw);
    const existing = this.images.get(image.id);
    if (existing) {
      if (meta.parent && !existing.meta.parent) await this.setMeta(existing.id, { ...existing.meta, parent: meta.parent });
      return existing;
    }
    if (meta.parent || meta.lastTagTime) await writeJsonAtomic(join(this.metaDir, `${hex(image.id)}.json`), meta);
    await writeFileAtomic(join(this.contentDir, hex(image.id)), raw);
    image.meta = meta;
    this.images.set(image.id, image);
    return image;
  }

  async setMeta(id: string, meta: ImageMetadata): Promise<void> {
    const image = this.images.get(id);
    if (!image) return;
    image.meta = meta;
    await writeJsonAtomic(join(this.metaDir, `${hex(id)}.json`), meta);
  }

  get(id: string): StoredImage | undefined {
    return this.images.get(id);
  }

  all(): StoredImage[] {
    return [...this.images.values()];
  }

  children(id: string): StoredImage[] {
    return this.all().filter((i) => i.meta.parent === id);
  }

  /** Resolves a full ID or an unambiguous hex prefix (with or without sha256:). */
  search(prefix: string): StoredImage[] {
    const p = prefix.startsWith('sha256:') ? prefix.slice(7) : prefix;
    if (!/^[a-f0-9]{1,64}$/.test(p)) return [];
    return this.all().filter((i) => hex(i.id).startsWith(p));
  }

  async delete(id: string): Promise<void> {
    this.images.delete(id);
    await rm(join(this.contentDir, hex(id)), { force: true });
    await rm(join(this.metaDir, `${hex(id)}.json`), { force: true });
  }
}
