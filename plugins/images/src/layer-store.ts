import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { type GraphDriver, type Logger, errorMessage, invalid, systemError, writeJsonAtomic } from '@tsengine/core';
import { type TarDecoder, hex, sha256 } from './digest.js';
import { KeyedMutex, Semaphore } from './mutex.js';
import { TarSplitRecorder, assemble } from './tarsplit.js';

export interface LayerRecord {
  chainId: string;
  diffId: string;
  parent: string | null;
  /** Bytes of content the driver applied for this layer alone. */
  size: number;
  /** The graph driver's id for the layer (the chain ID's hex). */
  cacheId: string;
  /** Written before the driver is touched; a record still incomplete at start-up is a crash leftover. */
  state: 'incomplete' | 'complete';
}

/**
 * layerdb: one JSON record per layer by chain ID, plus holders.json (holder → chain ID) for layers that
 * containers keep alive. A layer's driver directory exists only while its record does, and a record
 * is complete only once the whole tar was applied and its digest checked.
 */
export class LayerStore {
  private readonly layers = new Map<string, LayerRecord>();
  private holders = new Map<string, string>();
  /** In-flight jobs' layers (applied but not yet referenced by a stored image): never collected. */
  private readonly transient = new Map<string, number>();
  private readonly creating = new KeyedMutex();
  private readonly dir: string;

  constructor(
    root: string,
    private readonly driver: GraphDriver,
    private readonly log: Logger,
    private readonly decoder: TarDecoder,
  ) {
    this.dir = join(root, 'layerdb');
  }

  private recordPath(chainId: string): string {
    return join(this.dir, 'sha256', `${hex(chainId)}.json`);
  }

  private splitPath(chainId: string): string {
    return join(this.dir, 'sha256', `${hex(chainId)}.tar-split.gz`);
  }

  /** Loads the records and removes what a crash left half-made. */
  async restore(): Promise<void> {
    await mkdir(join(this.dir, 'sha256'), { recursive: true });
    for (const name of await readdir(join(this.dir, 'sha256'))) {
      if (!name.endsWith('.json')) {
        if (name.endsWith('.tar-split.gz') && !(await exists(join(this.dir, 'sha256', name.replace('.tar-split.gz', '.json'))))) await rm(join(this.dir, 'sha256', name), { force: true });
        continue;
      }
      const path = join(this.dir, 'sha256', name);
      let record: LayerRecord;
      try {
        record = JSON.parse(await readFile(path, 'utf8')) as LayerRecord;
      } catch (err) {
        this.log.warn({ path, err: errorMessage(err) }, 'discarding unreadable layer record');
        await rm(path, { force: true });
        continue;
      }
      if (record.state !== 'complete') {
        this.log.warn({ chainId: record.chainId }, 'discarding a layer left incomplete by a crash');
        await this.driver.remove(record.cacheId).catch(() => undefined);
        await rm(this.splitPath(record.chainId), { force: true });
        await rm(path, { force: true });
        continue;
      }
      this.layers.set(record.chainId, record);
    }
    // Children whose parent record vanished are unusable; drop them too.
    let changed = true;
    while (changed) {
      changed = false;
      for (const record of [...this.layers.values()]) {
        if (record.parent && !this.layers.has(record.parent)) {
          this.log.warn({ chainId: record.chainId }, 'discarding a layer whose parent is missing');
          await this.removeLayer(record);
          changed = true;
        }
      }
    }
    try {
      const raw = JSON.parse(await readFile(join(this.dir, 'holders.json'), 'utf8')) as Record<string, string>;
      this.holders = new Map(Object.entries(raw).filter(([, chain]) => this.layers.has(chain)));
    } catch {
      this.holders = new Map();
    }
  }

  get(chainId: string): LayerRecord | undefined {
    return this.layers.get(chainId);
  }

  has(chainId: string): boolean {
    return this.layers.has(chainId);
  }

  all(): LayerRecord[] {
    return [...this.layers.values()];
  }

  /** The chain from the bottom layer up to chainId. */
  chain(chainId: string): LayerRecord[] {
    const out: LayerRecord[] = [];
    let cur: string | null = chainId;
    while (cur) {
      const record = this.layers.get(cur);
      if (!record) throw systemError(`layer ${cur} is missing from the layer store`);
      out.unshift(record);
      cur = record.parent;
    }
    return out;
  }

  chainSize(chainId: string | null): number {
    return chainId ? this.chain(chainId).reduce((sum, l) => sum + l.size, 0) : 0;
  }

  /**
   * Applies a layer tar (plain or gzip) on `parent`, checking that its uncompressed digest is
   * `diffId`. Reuses an existing layer without reading the stream (the caller may then drop it).
   * Marks the result transient until release(); the caller releases after referencing it from an image.
   */
  async create(parent: string | null, diffId: string, open: () => Promise<Readable>): Promise<{ record: LayerRecord; existed: boolean }> {
    const chainId = parent ? sha256(`${parent} ${diffId}`) : diffId;
    return this.creating.run(chainId, async () => {
      this.hold(chainId);
      try {
        const existing = this.layers.get(chainId);
        if (existing) return { record: existing, existed: true };
        const parentRecord = parent ? this.layers.get(parent) : undefined;
        if (parent && !parentRecord) throw systemError(`parent layer ${parent} of ${chainId} is missing`);
        const record = await this.prepare(chainId, diffId, parent, parentRecord?.cacheId ?? null);
        try {
          record.size = await this.applyTar(record, parentRecord?.cacheId ?? null, open, new StreamGroup());
          await this.commit(record);
          return { record, existed: false };
        } catch (err) {
          await this.rollback(record);
          throw err;
        }
      } catch (err) {
        this.release(chainId);
        throw err;
      }
    });
  }

  /**
   * Creates (or reuses) every layer of a chain, bottom up, like create() for each in turn. When the
   * driver keeps each layer's diff on its own (`independent`), up to `concurrency` layers are applied
   * at once: each gets its incomplete record and driver directory in chain order, and is recorded
   * complete only after its digest check and after every layer below it. Any failure stops the others
   * and removes every layer this call did not complete. Each returned chain ID is held once; on
   * failure nothing stays held.
   */
  async createChain(
    diffIds: string[],
    open: (index: number) => Promise<Readable>,
    options: { independent: boolean; concurrency: number; onLayer?: (index: number, existed: boolean) => void },
  ): Promise<string[]> {
    const held: string[] = [];
    if (!options.independent || options.concurrency <= 1) {
      try {
        let parent: string | null = null;
        for (const [index, diffId] of diffIds.entries()) {
          const { record, existed } = await this.create(parent, diffId, () => open(index));
          held.push(record.chainId);
          options.onLayer?.(index, existed);
          parent = record.chainId;
        }
        return held;
      } catch (err) {
        for (const chain of held) this.release(chain);
        throw err;
      }
    }

    const slots = new Semaphore(options.concurrency);
    const streams = new StreamGroup();
    let failure: { err: unknown } | undefined;
    const fail = (err: unknown) => {
      if (failure) return;
      failure = { err };
      streams.stop();
    };
    const tasks: Array<Promise<void>> = [];
    let below: Promise<void> = Promise.resolve();
    let parent: string | null = null;
    /** Cache IDs of the layers this call is still applying: a parent may be one of them. */
    const applyingHere = new Map<string, string>();
    const cacheIdOf = (chainId: string): string => {
      const cacheId = this.layers.get(chainId)?.cacheId ?? applyingHere.get(chainId);
      if (cacheId === undefined) throw systemError(`parent layer ${chainId} is missing`);
      return cacheId;
    };
    // Every layer's record is on disk before any layer's data flows: fsyncing a record behind another
    // layer's writes waited for them (70-190 ms a record here), and each wait held back a layer's start.
    let allRecorded!: () => void;
    const recorded = new Promise<void>((resolve) => (allRecorded = resolve));
    for (const [index, diffId] of diffIds.entries()) {
      if (failure) break;
      const chainId: string = parent ? sha256(`${parent} ${diffId}`) : diffId;
      const parentId = parent;
      parent = chainId;
      // Taken bottom up, like create(): another job making the same layer finishes (or fails) first.
      const unlock = await this.lock(chainId);
      this.hold(chainId);
      held.push(chainId);
      let prepared: LayerRecord | undefined;
      let parentCacheId: string | null = null;
      try {
        if (failure) throw (failure as { err: unknown }).err;
        const existing = this.layers.get(chainId);
        if (existing) {
          unlock();
          const after = below;
          below = after.then(() => options.onLayer?.(index, true));
          below.catch(() => undefined); // seen by the layer above and by allSettled below
          continue;
        }
        if (parentId) parentCacheId = cacheIdOf(parentId);
        prepared = await this.prepare(chainId, diffId, parentId, parentCacheId);
        applyingHere.set(chainId, prepared.cacheId);
      } catch (err) {
        unlock();
        fail(err);
        break;
      }
      const record = prepared;
      const lower = below;
      const applying = slots.run(async () => {
        await recorded;
        if (failure) throw (failure as { err: unknown }).err;
        return this.applyTar(record, parentCacheId, () => open(index), streams);
      });
      applying.catch(fail);
      const done = (async () => {
        try {
          record.size = await applying;
          // A layer is complete only once everything below it is.
          await lower;
          if (failure) throw (failure as { err: unknown }).err;
          await this.commit(record);
          options.onLayer?.(index, false);
        } catch (err) {
          fail(err);
          await this.rollback(record);
          throw err;
        } finally {
          unlock();
        }
      })();
      done.catch(() => undefined); // seen by the layer above and by allSettled below
      below = done;
      tasks.push(done);
    }
    allRecorded();
    await Promise.allSettled([...tasks, below]);
    if (failure) {
      for (const chain of held) this.release(chain);
      throw (failure as { err: unknown }).err;
    }
    return held;
  }

  /** Holds the layer's creation lock until the returned function is called. */
  private lock(chainId: string): Promise<() => void> {
    return new Promise((acquired) => {
      let unlock!: () => void;
      const held = new Promise<void>((resolve) => (unlock = resolve));
      void this.creating.run(chainId, () => {
        acquired(unlock);
        return held;
      });
    });
  }

  /** Writes the incomplete record, then a fresh driver directory for it. */
  private async prepare(chainId: string, diffId: string, parent: string | null, parentCacheId: string | null): Promise<LayerRecord> {
    // A removal of this layer that failed left its record behind, naming its directory: the new record
    // takes the record's place, so the directory goes first.
    const left = await readRecord(this.recordPath(chainId));
    if (left) await this.driver.remove(left.cacheId);
    // Random, like Docker's cache IDs. A layer made again soon after its removal then gets a directory
    // of another name, which a driver may place elsewhere on the disk than the files still being freed
    // (see spreadSubdirectories in @tsengine/linux).
    const record: LayerRecord = { chainId, diffId, parent, size: 0, cacheId: randomBytes(32).toString('hex'), state: 'incomplete' };
    await writeJsonAtomic(this.recordPath(chainId), record);
    try {
      await this.driver.create(record.cacheId, parentCacheId);
    } catch (err) {
      await this.rollback(record);
      throw err;
    }
    return record;
  }

  /** Streams the tar into the driver and its tar-split, checking its digest; returns the bytes applied. */
  private async applyTar(record: LayerRecord, parentCacheId: string | null, open: () => Promise<Readable>, streams: StreamGroup): Promise<number> {
    const { chainId, diffId } = record;
    const recorder = new TarSplitRecorder(this.splitPath(chainId));
    const raw = await open();
    let tar: Readable | undefined;
    streams.add(raw);
    try {
      const decoded = await this.decoder.open(raw);
      tar = decoded.stream;
      streams.add(tar);
      const applied = this.driver.applyDiff(record.cacheId, parentCacheId, recorder);
      const fed = pipeline(tar, recorder);
      fed.catch(() => undefined); // awaited below, after applyDiff settles
      // applyDiff may fail (hostile entry) before the stream is drained: stop feeding it.
      const size = await applied.catch((err: unknown) => {
        raw.destroy();
        tar!.destroy();
        recorder.destroy();
        throw err;
      });
      await fed.catch((err: unknown) => {
        throw invalid(`reading layer ${diffId}: ${errorMessage(err)}`, err);
      });
      await recorder.written;
      const actual = await decoded.digest();
      if (actual !== diffId) throw invalid(`layer digest mismatch: the tar has diff ID ${actual}, the image config expects ${diffId}`);
      return size;
    } catch (err) {
      recorder.destroy();
      throw err;
    } finally {
      streams.delete(raw);
      if (tar) streams.delete(tar);
    }
  }

  private async commit(record: LayerRecord): Promise<void> {
    record.state = 'complete';
    await writeJsonAtomic(this.recordPath(record.chainId), record);
    this.layers.set(record.chainId, record);
  }

  private async rollback(record: LayerRecord): Promise<void> {
    try {
      await this.driver.remove(record.cacheId);
    } catch (err) {
      // The record (incomplete) stays: start-up, or the next make of this layer, removes the directory it names.
      this.log.warn({ chainId: record.chainId, err: errorMessage(err) }, 'removing a failed layer');
      return;
    }
    await rm(this.splitPath(record.chainId), { force: true });
    await rm(this.recordPath(record.chainId), { force: true });
  }

  hold(chainId: string): void {
    this.transient.set(chainId, (this.transient.get(chainId) ?? 0) + 1);
  }

  release(chainId: string): void {
    const n = (this.transient.get(chainId) ?? 0) - 1;
    if (n <= 0) this.transient.delete(chainId);
    else this.transient.set(chainId, n);
  }

  async retain(chainId: string, holder: string): Promise<void> {
    if (!this.layers.has(chainId)) throw systemError(`layer ${chainId} is missing from the layer store`);
    this.holders.set(holder, chainId);
    await this.saveHolders();
  }

  async releaseHolder(holder: string): Promise<void> {
    if (!this.holders.delete(holder)) return;
    await this.saveHolders();
  }

  private async saveHolders(): Promise<void> {
    await writeJsonAtomic(join(this.dir, 'holders.json'), Object.fromEntries(this.holders));
  }

  /**
   * Removes every layer not on the chain of `liveTops` (image top layers), a holder or an in-flight
   * job, children first. Returns the removed records.
   */
  async collect(liveTops: Iterable<string>): Promise<LayerRecord[]> {
    const tops = [...liveTops];
    const liveSet = () => {
      const live = new Set<string>();
      const mark = (top: string | null) => {
        for (let cur = top; cur && !live.has(cur); cur = this.layers.get(cur)?.parent ?? null) live.add(cur);
      };
      for (const top of tops) mark(top);
      for (const top of this.holders.values()) mark(top);
      for (const top of this.transient.keys()) mark(top);
      return live;
    };
    const initial = liveSet();
    const depth = (l: LayerRecord) => this.chain(l.chainId).length;
    const candidates = [...this.layers.values()].filter((l) => !initial.has(l.chainId)).sort((a, b) => depth(b) - depth(a));
    const removed: LayerRecord[] = [];
    for (const record of candidates) {
      // Under the layer's own lock, and re-checked: a job may have started reusing it meanwhile.
      await this.creating.run(record.chainId, async () => {
        if (!this.layers.has(record.chainId) || liveSet().has(record.chainId)) return;
        if ([...this.layers.values()].some((l) => l.parent === record.chainId)) return;
        await this.removeLayer(record);
        removed.push(record);
      });
    }
    return removed;
  }

  private async removeLayer(record: LayerRecord): Promise<void> {
    this.layers.delete(record.chainId);
    // Marked first: a crash mid-removal leaves an incomplete record that start-up finishes off.
    await writeJsonAtomic(this.recordPath(record.chainId), { ...record, state: 'incomplete' });
    await this.driver.remove(record.cacheId);
    await rm(this.splitPath(record.chainId), { force: true });
    await rm(this.recordPath(record.chainId), { force: true });
  }

  /**
   * A layer's tar, byte for byte as it was applied when its tar-split was recorded (so its digest is
   * the diff ID), else as the driver's diff produces it.
   */
  async diff(chainId: string): Promise<Readable> {
    const record = this.layers.get(chainId);
    if (!record) throw systemError(`layer ${chainId} is missing from the layer store`);
    const split = this.splitPath(chainId);
    if (await exists(split)) {
      const root = await this.driver.get(record.cacheId);
      const out = assemble(split, root);
      out.once('close', () => void this.driver.put(record.cacheId).catch(() => undefined));
      return out;
    }
    const parent = record.parent ? this.layers.get(record.parent)!.cacheId : null;
    return this.driver.diff(record.cacheId, parent);
  }
}

/** The streams of layers being applied together; stopping destroys them (without an error of their own, so a download's error stays the first one seen). */
class StreamGroup {
  private readonly streams = new Set<Readable>();
  private stopped = false;

  add(stream: Readable): void {
    if (this.stopped) stream.destroy();
    else this.streams.add(stream);
  }

  delete(stream: Readable): void {
    this.streams.delete(stream);
  }

  stop(): void {
    this.stopped = true;
    for (const stream of this.streams) stream.destroy();
    this.streams.clear();
  }
}

async function exists(path: string): Promise<boolean> {
  try {
    await stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The record at `path`, or undefined where there is none (or none that parses: start-up discards those). */
async function readRecord(path: string): Promise<LayerRecord | undefined> {
  try {
    return JSON.parse(await readFile(path, 'utf8')) as LayerRecord;
  } catch {
    return undefined;
  }
}
