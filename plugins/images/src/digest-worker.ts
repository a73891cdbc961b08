import { Worker } from 'node:worker_threads';

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

interface Slice {
  id: number;
  at: number;
  length: number;
  /** Ring bytes this slice frees once hashed: its length plus any unused tail skipped before it. */
  release: number;
}
/** Waking the worker costs the main thread far more than a memcpy, so slices are announced in bulk. */
const BATCH_BYTES = 2 * 1024 * 1024;
type ToWorker = { op: 'update'; slices: Slice[] } | { op: 'digest'; id: number } | { op: 'discard'; id: number };
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

interface Waiting {
  id: number;
  chunk: Uint8Array;
  /** How much of the chunk is in the ring already. */
  copied: number;
  resolve: () => void;
}

/**
 * sha256 off the main thread. A layer is hashed twice on its way in (the registry blob, the diff ID);
 * on the main thread that was a quarter of a pull's CPU time there, while the other core sat idle.
 * Chunks are copied into a ring shared with one worker thread, so hashing costs the main thread a
 * memcpy and a message, and allocates nothing the garbage collector must chase. The worker starts on
 * first use and ends after a quiet spell; it never keeps the process alive.
 */
export class DigestWorker {
  private worker: Worker | undefined;
  private ring: Uint8Array | undefined;
  private writeAt = 0;
  private inFlight = 0;
  /** Slices copied but not yet announced: one message per BATCH_BYTES, as each wakes the worker. */
  private batch: Slice[] = [];
  private batchBytes = 0;
  private readonly waiting: Waiting[] = [];
  private readonly digests = new Map<number, { resolve: (digest: string) => void; reject: (err: Error) => void }>();
  private open = 0;
  private nextId = 1;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ringBytes = 16 * 1024 * 1024,
    private readonly idleMs = 10_000,
  ) {}

  hash(): OffThreadHash {
    this.start();
    const id = this.nextId++;
    this.open++;
    let finished = false;
    const finish = () => {
      if (finished) return;
      finished = true;
      this.open--;
      this.scheduleIdle();
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
    return this.worker !== undefined;
  }

  /** Ends the worker now (daemon shutdown); hashes still open fail. */
  async close(): Promise<void> {
    const worker = this.worker;
    this.reset(new Error('the digest worker was closed'));
    await worker?.terminate();
  }

  private start(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.worker) return;
    const shared = new SharedArrayBuffer(this.ringBytes);
    this.ring = new Uint8Array(shared);
    const worker = new Worker(WORKER_SOURCE, { eval: true, workerData: { ring: shared } });
    worker.unref();
    worker.on('message', (message: FromWorker) => this.receive(message));
    worker.on('error', (err) => this.failed(worker, err));
    worker.on('exit', (code) => this.failed(worker, new Error(`the digest worker exited (${code})`)));
    this.worker = worker;
  }

  private failed(worker: Worker, err: Error): void {
    if (this.worker === worker) this.reset(err);
  }

  private reset(err: Error): void {
    this.worker = undefined;
    this.ring = undefined;
    this.writeAt = 0;
    this.inFlight = 0;
    this.batch = [];
    this.batchBytes = 0;
    for (const waiter of this.waiting.splice(0)) waiter.resolve();
    for (const pending of this.digests.values()) pending.reject(err);
    this.digests.clear();
  }

  private update(id: number, chunk: Uint8Array): Promise<void> | undefined {
    if (!this.worker) throw new Error('the digest worker is not running');
    const entry: Waiting = { id, chunk, copied: 0, resolve: () => undefined };
    if (this.waiting.length === 0 && this.copy(entry)) return undefined;
    return new Promise((resolve) => {
      entry.resolve = resolve;
      this.waiting.push(entry);
    });
  }

  /**
   * Copies as much of the chunk into the ring as fits, in slices of at most a quarter ring; true
   * once all of it is in.
   */
  private copy(entry: Waiting): boolean {
    const ring = this.ring!;
    const slice = ring.length >> 2;
    while (entry.copied < entry.chunk.length) {
      const length = Math.min(slice, entry.chunk.length - entry.copied);
      const skip = this.writeAt + length > ring.length ? ring.length - this.writeAt : 0;
      if (this.inFlight + skip + length > ring.length) {
        // The worker can only free what it has been told about.
        this.flush();
        return false;
      }
      if (skip) this.writeAt = 0;
      ring.set(entry.chunk.subarray(entry.copied, entry.copied + length), this.writeAt);
      this.batch.push({ id: entry.id, at: this.writeAt, length, release: skip + length });
      this.batchBytes += length;
      this.inFlight += skip + length;
      this.writeAt = (this.writeAt + length) % ring.length;
      entry.copied += length;
    }
    if (this.batchBytes >= BATCH_BYTES) this.flush();
    return true;
  }

  private flush(): void {
    if (this.batch.length === 0) return;
    this.post({ op: 'update', slices: this.batch });
    this.batch = [];
    this.batchBytes = 0;
  }

  private receive(message: FromWorker): void {
    if (message.op === 'release') {
      this.inFlight -= message.bytes;
      while (this.waiting.length > 0 && this.copy(this.waiting[0]!)) this.waiting.shift()!.resolve();
      return;
    }
    const pending = this.digests.get(message.id);
    this.digests.delete(message.id);
    pending?.resolve(message.digest);
  }

  private requestDigest(id: number): Promise<string> {
    return new Promise((resolve, reject) => {
      if (!this.worker) {
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
    if (message.op !== 'update') this.flush();
    this.worker?.postMessage(message);
  }

  private scheduleIdle(): void {
    if (this.open > 0 || this.idleTimer || !this.worker) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      // A digest still on its way back: look again later.
      if (this.digests.size > 0) this.scheduleIdle();
      else if (this.open === 0 && this.worker) void this.close();
    }, this.idleMs);
    this.idleTimer.unref();
  }
}
