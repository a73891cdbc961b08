import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  type GraphDriver,
  type ImageConfig,
  type ImageDeleteItem,
  type ImageService,
  type ImageUsageChecker,
  type ImageUser,
  type Logger,
  type NewImageSpec,
  type ResolvedImage,
  EngineError,
  conflict,
  errorMessage,
  invalid,
  notFound,
} from '@tsengine/core';
import { TarDecoder, hex, sha256 } from './digest.js';
import { withCollectionsPutOff } from './collection-pacing.js';
import { DigestWorker } from './digest-worker.js';
import { GunzipWorker } from './gunzip-worker.js';
import { ImageDb, type StoredImage } from './image-store.js';
import { LayerStore } from './layer-store.js';
import { Mutex } from './mutex.js';
import { type Reference, familiarString, parseNormalized, parseTagged } from './reference.js';
import { ReferenceStore } from './reference-store.js';

/** Layers of one image applied at once on such drivers. */
export const LAYER_APPLY_CONCURRENCY = 3;

export function shortId(id: string): string {
  return hex(id).slice(0, 12);
}

export function hostArchitecture(): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return map[process.arch] ?? process.arch;
}

/**
 * The image, layer and reference stores over one graph driver, under <dataRoot>/image/<driver>/.
 * Write order keeps every crash point consistent: a layer is applied and recorded complete before an
 * image config names it, and a config is stored before a reference points at it.
 */
export class LocalImageService implements ImageService {
  readonly layers: LayerStore;
  readonly images: ImageDb;
  readonly refs: ReferenceStore;
  private readonly lock = new Mutex();
  private readonly checkers: ImageUsageChecker[] = [];
  /** Hashes layers off the main thread; closed with the service. */
  readonly digests = new DigestWorker();
  /** Layer blobs to plain tar, hashed on the way; its threads are closed with the service. */
  readonly decoder = new TarDecoder(this.digests, new GunzipWorker());

  constructor(
    readonly root: string,
    readonly driver: GraphDriver,
    private readonly log: Logger,
    private readonly applyConcurrency = LAYER_APPLY_CONCURRENCY,
  ) {
    this.layers = new LayerStore(root, driver, log, this.decoder);
    this.images = new ImageDb(root, log);
    this.refs = new ReferenceStore(root);
  }

  async restore(): Promise<void> {
    await rm(this.tmpRoot(), { recursive: true, force: true });
    await this.layers.restore();
    await this.images.restore((chain) => this.layers.has(chain));
    await this.refs.restore((id) => this.images.get(id) !== undefined);
    // Layers that no image or holder names (a load that died before its config was stored).
    const removed = await this.layers.collect(this.liveTops());
    if (removed.length) this.log.warn({ layers: removed.length }, 'removed layers no image refers to');
  }

  private liveTops(): string[] {
    return this.images.all().flatMap((i) => (i.topLayer ? [i.topLayer] : []));
  }

  tmpRoot(): string {
    return join(this.root, 'tmp');
  }

  /** A scratch folder under the data root (same filesystem as the layers), removed by the caller. */
  async tempDir(prefix: string): Promise<string> {
    await mkdir(this.tmpRoot(), { recursive: true });
    return mkdtemp(join(this.tmpRoot(), `${prefix}-`));
  }

  // ---- lookups ----

  /** Docker's GetImage: full ID, reference, then unambiguous ID prefix. */
  get(nameOrId: string): StoredImage {
    if (/^sha256:[a-f0-9]{64}$/.test(nameOrId)) {
      const image = this.images.get(nameOrId);
      if (image) return image;
      throw notFound(`No such image: ${nameOrId}`);
    }
    let ref: Reference | undefined;
    try {
      ref = parseTagged(nameOrId);
    } catch {
      ref = undefined;
    }
    if (ref) {
      const id = this.refs.get(ref);
      if (id) {
        const image = this.images.get(id);
        if (image) return image;
      }
    }
    const matches = this.images.search(nameOrId);
    if (matches.length === 1) return matches[0]!;
    if (matches.length > 1) throw notFound(`No such image: ${nameOrId} (the ID prefix is ambiguous: it matches ${matches.length} images)`);
    throw notFound(`No such image: ${ref && !/^(sha256:)?[a-f0-9]{1,64}$/.test(nameOrId) ? familiarString(ref) : nameOrId}`);
  }

  tagsOf(id: string): string[] {
    return this.refs.referencesOf(id).filter((r) => !r.digest).map(familiarString);
  }

  digestsOf(id: string): string[] {
    return this.refs.referencesOf(id).filter((r) => r.digest).map(familiarString);
  }

  imageSize(image: StoredImage): number {
    return this.layers.chainSize(image.topLayer);
  }

  async usersOf(id: string): Promise<ImageUser[]> {
    const all = await Promise.all(this.checkers.map((c) => c(id)));
    return all.flat();
  }

  // ---- ImageService ----

  addUsageChecker(checker: ImageUsageChecker): void {
    this.checkers.push(checker);
  }

  async resolve(nameOrId: string): Promise<ResolvedImage> {
    const image = this.get(nameOrId);
    const chain = image.topLayer ? this.layers.chain(image.topLayer).map((l) => l.chainId) : [];
    return {
      id: image.id,
      config: image.config,
      topLayer: image.topLayer ? this.layers.get(image.topLayer)!.cacheId : null,
      chain,
      repoTags: this.tagsOf(image.id),
    };
  }

  retainLayer(chainId: string, holder: string): Promise<void> {
    return this.lock.run(() => this.layers.retain(chainId, holder));
  }

  releaseLayers(holder: string): Promise<void> {
    return this.lock.run(async () => {
      await this.layers.releaseHolder(holder);
      await this.layers.collect(this.liveTops());
    });
  }

  async configBytes(imageId: string): Promise<Buffer> {
    return this.get(imageId).raw;
  }

  layerTar(chainId: string): Promise<Readable> {
    return this.layers.diff(chainId);
  }

  async tag(imageId: string, reference: string): Promise<void> {
    const image = this.get(imageId);
    const ref = parseTagged(reference);
    await this.lock.run(async () => {
      if (!this.images.get(image.id)) throw notFound(`No such image: ${imageId}`);
      await this.refs.add(ref, image.id);
      await this.images.setMeta(image.id, { ...image.meta, lastTagTime: new Date().toISOString() });
    });
  }

  async registerImage(config: Buffer, openLayer: (index: number, diffId: string) => Promise<Readable>, onLayer?: (index: number, state: 'exists' | 'applied') => void): Promise<string> {
    return this.registerWithLayers(config, {}, openLayer, onLayer);
  }

  /**
   * Applies (or reuses) each layer of a config, then stores the config. Layers are recorded complete
   * bottom up; on drivers with independent diffs (overlay) several are applied at once (LayerStore.createChain).
   */
  async registerWithLayers(
    config: Buffer,
    meta: { parent?: string },
    openLayer: (index: number, diffId: string) => Promise<Readable>,
    onLayer?: (index: number, state: 'exists' | 'applied') => void,
  ): Promise<string> {
    let parsed: StoredImage;
    try {
      parsed = this.images.parse(config);
    } catch (err) {
      throw invalid(`invalid image config: ${errorMessage(err)}`, err);
    }
    const diffIds = parsed.config.rootfs.diff_ids;
    for (const diffId of diffIds) if (typeof diffId !== 'string' || !/^sha256:[a-f0-9]{64}$/.test(diffId)) throw invalid(`invalid image config: bad diff ID ${JSON.stringify(diffId)}`);
    let held: string[] = [];
    try {
      held = await withCollectionsPutOff(() =>
        this.layers.createChain(diffIds, (index) => openLayer(index, diffIds[index]!), {
          independent: this.driver.independentDiffs,
          concurrency: this.applyConcurrency,
          onLayer: (index, existed) => onLayer?.(index, existed ? 'exists' : 'applied'),
        }),
      );
      await this.lock.run(() => this.images.put(config, meta));
      return parsed.id;
    } catch (err) {
      // Layers this attempt applied and no image names are removed again.
      for (const chain of held) this.layers.release(chain);
      held = [];
      await this.lock.run(() => this.layers.collect(this.liveTops()));
      throw err;
    } finally {
      for (const chain of held) this.layers.release(chain);
    }
  }

  async createImage(spec: NewImageSpec): Promise<string> {
    const parent = spec.parent ? this.get(spec.parent) : undefined;
    const now = new Date().toISOString();
    const diffIds = [...(parent?.config.rootfs.diff_ids ?? [])];
    let spooled: { dir: string; file: string; diffId: string } | undefined;
    try {
      if (spec.layer) {
        spooled = await this.spoolLayer(spec.layer);
        diffIds.push(spooled.diffId);
      }
      const history = [...(parent?.config.history ?? []), { created: now, ...spec.history, ...(spec.layer ? {} : { empty_layer: true }) }];
      const config: ImageConfig = {
        architecture: parent?.config.architecture ?? hostArchitecture(),
        os: parent?.config.os ?? 'linux',
        ...spec.meta,
        created: spec.meta?.created ?? now,
        config: spec.config,
        rootfs: { type: 'layers', diff_ids: diffIds },
        history,
      };
      const raw = Buffer.from(JSON.stringify(config));
      const file = spooled?.file;
      const id = await this.registerWithLayers(raw, parent ? { parent: parent.id } : {}, async (index) => {
        if (!file || index !== diffIds.length - 1) throw new EngineError('system', `layer ${index} of the parent image is missing`);
        return createReadStream(file);
      });
      for (const tag of spec.tags ?? []) await this.tag(id, tag);
      return id;
    } finally {
      if (spooled) await rm(spooled.dir, { recursive: true, force: true });
    }
  }

  /** Writes a layer tar (plain or gzip) uncompressed to a scratch file, returning its diff ID. */
  async spoolLayer(source: Readable): Promise<{ dir: string; file: string; diffId: string }> {
    const dir = await this.tempDir('layer');
    const file = join(dir, 'layer.tar');
    try {
      const tar = await this.decoder.open(source);
      await pipeline(tar.stream, createWriteStream(file));
      return { dir, file, diffId: await tar.digest() };
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
  }

  // ---- tag / delete / prune ----

  async tagReference(source: string, repo: string, tag: string | undefined): Promise<void> {
    const image = this.get(source);
    const ref = parseNormalized(repo);
    if (ref.digest) throw invalid('refusing to create a tag with a digest reference');
    if (tag !== undefined && tag !== '') {
      if (ref.tag) throw invalid(`invalid reference format`);
      ref.tag = tag;
    }
    const full = parseTagged(familiarString(ref));
    await this.lock.run(async () => {
      await this.refs.add(full, image.id);
      await this.images.setMeta(image.id, { ...image.meta, lastTagTime: new Date().toISOString() });
    });
  }

  /** Docker's ImageDelete semantics (untag vs delete, soft and hard conflicts, parent pruning). */
  async remove(name: string, force: boolean, prune: boolean): Promise<ImageDeleteItem[]> {
    const image = this.get(name);
    return this.lock.run(async () => {
      const records: ImageDeleteItem[] = [];
      const id = image.id;
      let refs = this.refs.referencesOf(id);
      const byId = hex(id).startsWith(name.replace(/^sha256:/, '')) && /^(sha256:)?[a-f0-9]+$/.test(name);
      let quiet = false;
      if (!byId) {
        const users = await this.usersOf(id);
        if (!force && isSingleReference(refs) && users.length) {
          throw conflict(`conflict: unable to remove repository reference "${name}" (must force) - container ${shortId(users[0]!.id)} is using its referenced image ${shortId(id)}`);
        }
        const ref = parseTagged(name);
        await this.refs.delete(ref);
        records.push({ Untagged: familiarString(ref) });
        refs = this.refs.referencesOf(id);
        if (!ref.digest && !refs.some((r) => !r.digest && r.name === ref.name)) {
          for (const r of refs.filter((r) => r.digest && r.name === ref.name)) {
            await this.refs.delete(r);
            records.push({ Untagged: familiarString(r) });
          }
          refs = this.refs.referencesOf(id);
        }
        if (refs.length > 0) return records;
        quiet = true;
      } else if (isSingleReference(refs)) {
        await this.checkConflict(id, force ? 'hard' : 'soft-no-refs');
        for (const r of refs) {
          await this.refs.delete(r);
          records.push({ Untagged: familiarString(r) });
        }
      }
      await this.deleteHelper(id, records, force, prune, quiet);
      return records;
    });
  }

  private async checkConflict(id: string, mask: 'hard' | 'soft' | 'soft-no-refs'): Promise<{ hard: boolean; used: boolean; message: string } | undefined> {
    const found = await this.findConflict(id, mask);
    if (found) throw conflict(`conflict: unable to delete ${shortId(id)} (${found.hard ? 'cannot' : 'must'} be forced) - ${found.message}`);
    return undefined;
  }

  private async findConflict(id: string, mask: 'hard' | 'soft' | 'soft-no-refs'): Promise<{ hard: boolean; used: boolean; message: string } | undefined> {
    if (this.images.children(id).length > 0) return { hard: true, used: false, message: 'image has dependent child images' };
    const users = await this.usersOf(id);
    const running = users.find((u) => u.running);
    if (running) return { hard: true, used: true, message: `image is being used by running ${running.kind} ${shortId(running.id)}` };
    if (mask === 'hard') return undefined;
    if (mask === 'soft' && this.refs.referencesOf(id).length > 0) return { hard: false, used: false, message: 'image is referenced in multiple repositories' };
    const stopped = users.find((u) => !u.running);
    if (stopped) return { hard: false, used: true, message: `image is being used by stopped ${stopped.kind} ${shortId(stopped.id)}` };
    return undefined;
  }

  private async deleteHelper(id: string, records: ImageDeleteItem[], force: boolean, prune: boolean, quiet: boolean): Promise<void> {
    const found = await this.findConflict(id, force ? 'hard' : 'soft');
    if (found) {
      const dangling = this.refs.referencesOf(id).length === 0;
      if (quiet && (!dangling || found.used)) return;
      throw conflict(`conflict: unable to delete ${shortId(id)} (${found.hard ? 'cannot' : 'must'} be forced) - ${found.message}`);
    }
    const image = this.images.get(id)!;
    for (const r of this.refs.referencesOf(id)) {
      await this.refs.delete(r);
      records.push({ Untagged: familiarString(r) });
    }
    await this.images.delete(id);
    records.push({ Deleted: id });
    const removed = await this.layers.collect(this.liveTops());
    for (const layer of removed) records.push({ Deleted: layer.chainId });
    const parent = image.meta.parent;
    if (prune && parent && this.images.get(parent) && this.refs.referencesOf(parent).length === 0) {
      await this.deleteHelper(parent, records, false, true, true);
    }
  }

  /** Deletes an image without untag semantics (prune); returns what went and the bytes freed. */
  async pruneOne(id: string): Promise<{ records: ImageDeleteItem[]; reclaimed: number }> {
    return this.lock.run(async () => {
      const records: ImageDeleteItem[] = [];
      const before = new Map(this.layers.all().map((l) => [l.chainId, l.size]));
      try {
        await this.deleteHelper(id, records, false, true, false);
      } catch (err) {
        if (err instanceof EngineError && err.kind === 'conflict') return { records: [], reclaimed: 0 };
        throw err;
      }
      let reclaimed = 0;
      for (const [chain, size] of before) if (!this.layers.has(chain)) reclaimed += size;
      return { records, reclaimed };
    });
  }

  /** Untags every reference of an image (prune -a), under the store lock. */
  async untagAll(id: string): Promise<ImageDeleteItem[]> {
    return this.lock.run(async () => {
      const records: ImageDeleteItem[] = [];
      for (const r of this.refs.referencesOf(id)) {
        await this.refs.delete(r);
        records.push({ Untagged: familiarString(r) });
      }
      return records;
    });
  }

  /** Registers a loaded/imported image under a tag (moving the tag from another image, like Docker). */
  async setTag(id: string, ref: Reference): Promise<string | undefined> {
    return this.lock.run(async () => {
      const previous = this.refs.get(ref);
      await this.refs.add(ref, id);
      const image = this.images.get(id);
      if (image) await this.images.setMeta(id, { ...image.meta, lastTagTime: new Date().toISOString() });
      return previous !== id ? previous : undefined;
    });
  }

  chainSha(diffIds: string[]): string | null {
    let chain: string | null = null;
    for (const d of diffIds) chain = chain ? sha256(`${chain} ${d}`) : d;
    return chain;
  }
}

/** At most one tag reference, and every reference in one repository. */
function isSingleReference(refs: Reference[]): boolean {
  if (refs.length <= 1) return true;
  const tags = refs.filter((r) => !r.digest);
  if (tags.length > 1) return false;
  const names = new Set(refs.map((r) => r.name));
  return names.size === 1;
}
