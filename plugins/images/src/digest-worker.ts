import { Worker } from 'node:worker_threads';
import { HELPER_IDLE_MS, OnDemandThread } from './on-demand-thread.js';
import { type RingEntry, type RingSlice, SharedRing } from './shared-ring.js';

/**
 * The worker's whole program, run with eval so that a bundled (embedded) build needs no extra file.
 * It hashes slices of the shared ring in message order and hands each slice's space back.
 */
const WORKER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const ring = new Uint8Array(workerData.ring);
const hashes = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'update') {
    let release = 0;
    for (const u of m.slices) {
      let hash = hashes.get(u.id);
      if (!hash) hashes.set(u.id, (hash = createHash('sha256')));
      hash.update(ring.subarray(u.at, u.at + u.length));
      release += u.release;
    }
    parentPort.postMessage({ op: 'release', bytes: release });
  } else if (m.op === 'digest') {
    const hash = hashes.get(m.id) ?? createHash('sha256');
    hashes.delete(m.id);
    parentPort.postMessage({ op: 'digest', id: m.id, digest: 'sha256:' + hash.digest('hex') });
  } else if (m.op === 'discard') {
    hashes.delete(m.id);
  }
});
`;

/** Waking the worker costs the main thread far more than a memcpy, so slices are announced in bulk. */
const BATCH_BYTES = 2 * 1024 * 1024;
type ToWorker = { op: 'update'; slices: RingSlice[] } | { op: 'digest'; id: number } | { op: 'discard'; id: number };
type FromWorker = { op: 'release'; bytes: number } | { op: 'digest'; id: number; digest: string };

/** One running sha256, fed in order; its bytes are hashed on the worker thread. */
export interface OffThreadHash {
  /** Queues a chunk; a promise means the ring was full and the caller should wait before the next one. */
  update(chunk: Uint8Array): Promise<void> | undefined;
  /** "sha256:…" of everything passed to update. */
  digest(): Promise<string>;
  /** Forgets the hash (the stream failed). */
  discard(): void;
}

interface Waiting extends RingEntry {
  resolve: () => void;
}

/**
 * sha256 off the main thread: of registry blobs as they download, of plain layer tars and of saved
 * layers. On the main thread, hashing was a quarter of a pull's CPU time there while the other core sat idle.
 * Chunks are copied into a ring shared with one worker thread, so hashing costs the main thread a
 * memcpy and a message, and allocates nothing the garbage collector must chase.
 */
export class DigestWorker {
  private readonly thread: OnDemandThread<ToWorker, FromWorker>;
  private ring: SharedRing | undefined;
  private readonly waiting: Waiting[] = [];
  private readonly digests = new Map<number, { resolve: (digest: string) => void; reject: (err: Error) => void }>();
  private open = 0;
  private nextId = 1;

  constructor(
    private readonly ringBytes = 16 * 1024 * 1024,
    idleMs = HELPER_IDLE_MS,
  ) {
    this.thread = new OnDemandThread(
      'digest worker',
      () => {
        this.ring = new SharedRing(this.ringBytes, BATCH_BYTES, (slices) => this.thread.post({ op: 'update', slices }));
        return new Worker(WORKER_SOURCE, { eval: true, workerData: { ring: this.ring.buffer } });
      },
      { message: (message) => this.receive(message), failed: (err) => this.reset(err), busy: () => this.open > 0 || this.digests.size > 0 },
      idleMs,
    );
  }

  hash(): OffThreadHash {
    this.thread.ensure();
    const id = this.nextId++;
    this.open++;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      this.open--;
      if (this.open === 0) this.thread.idle();
    };
    return {
      update: (chunk) => (finished ? undefined : this.update(id, chunk)),
      digest: () => {
        if (finished) return Promise.reject(new Error('digest already taken'));
        finish();
        return this.requestDigest(id);
      },
      discard: () => {
        if (finished) return;
        finish();
        this.dropWaiting(id);
        this.post({ op: 'discard', id });
      },
    };
  }

  /** Whether the worker thread is up (it ends after a quiet spell). */
  get running(): boolean {
    return this.thread.running;
  }

  /** Ends the worker now (daemon shutdown); hashes still open fail. */
  close(): Promise<void> {
    return this.thread.close();
  }

  private reset(err: Error): void {
    this.ring = undefined;
    for (const waiter of this.waiting.splice(0)) waiter.resolve();
    for (const pending of this.digests.values()) pending.reject(err);
    this.digests.clear();
  }

  private update(id: number, chunk: Uint8Array): Promise<void> | undefined {
    if (!this.thread.running) throw new Error('the digest worker is not running');
    const entry: Waiting = { id, chunk, copied: 0, resolve: () => undefined };
    if (this.waiting.length === 0 && this.ring!.copy(entry)) return undefined;
    return new Promise((resolve) => {
      entry.resolve = resolve;
      this.waiting.push(entry);
    });
  }

  private receive(message: FromWorker): void {
    if (message.op === 'release') {
      this.ring?.release(message.bytes);
      while (this.waiting.length > 0 && this.ring?.copy(this.waiting[0]!)) this.waiting.shift()!.resolve();
      return;
    }
    const pending = this.digests.get(message.id);
    this.digests.delete(message.id);
    pending?.resolve(message.digest);
  }

  private requestDigest(id: number): Promise<string> {
    return new Promise((resolve, reject) => {
      if (!this.thread.running) {
        reject(new Error('the digest worker is not running'));
        return;
      }
      this.digests.set(id, { resolve, reject });
      // Chunks still waiting for ring space come first: the worker answers in message order.
      if (this.waiting.some((w) => w.id === id)) this.afterWaitingOf(id, () => this.post({ op: 'digest', id }));
      else this.post({ op: 'digest', id });
    });
  }

  /** Runs `then` once every waiting chunk of `id` is in the ring. */
  private afterWaitingOf(id: number, then: () => void): void {
    const last = [...this.waiting].reverse().find((w) => w.id === id)!;
    const resolve = last.resolve;
    last.resolve = () => {
      resolve();
      then();
    };
  }

  private dropWaiting(id: number): void {
    for (let i = this.waiting.length - 1; i >= 0; i--) {
      if (this.waiting[i]!.id !== id) continue;
      this.waiting[i]!.resolve();
      this.waiting.splice(i, 1);
    }
  }

  private post(message: ToWorker): void {
    if (message.op !== 'update') this.ring?.flush();
    this.thread.post(message);
  }
}
