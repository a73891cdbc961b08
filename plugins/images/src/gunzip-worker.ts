import { join } from 'node:path';
import { Duplex } from 'node:stream';
import { Worker } from 'node:worker_threads';
import { releaseFreeHeap } from '@tsengine/linux';
import { type FromGunzipThread, GUNZIP_OUTPUT_BYTES, type ToGunzipThread } from './gunzip-protocol.js';
import { HELPER_IDLE_MS, OnDemandThread } from './on-demand-thread.js';
import { type RingEntry, SharedRing } from './shared-ring.js';

/** Compressed bytes one stream may have on their way to the thread. */
const RING_BYTES = 4 * 1024 * 1024;
/** Waking the thread costs the main thread more than a memcpy, so input is announced in bulk. */
const BATCH_BYTES = 1024 * 1024;
/** Decompressed chunks one stream may have on their way back. */
const CREDIT_CHUNKS = 4;

interface Link {
  post(message: ToGunzipThread): void;
  forget(id: number): void;
}

interface PendingWrite extends RingEntry {
  done: () => void;
}

export interface GunzipOptions {
  /** Input that is not gzip passes through unchanged (and is hashed as the tar), instead of failing. */
  plainToo?: boolean;
  /** false: gzip's CRC-32 is not checked, for a reader that checks the output's digest (see GzipInflater). */
  checkCrc?: boolean;
  /** The thread hashes the input as well (a registry blob's digest): see inputDigest(). */
  hashInput?: boolean;
  /**
   * Input a writer may put down ahead of the reader before write() asks it to wait (a prefetched
   * download). What the ring cannot take waits in the stream's write queue, as the writer's own
   * buffers: a larger ring would be shared memory that the thread holds until it collects garbage.
   */
  aheadBytes?: number;
}

/**
 * gzip in, tar out, with the inflating and the hashing of the output (a layer's diff ID), and of the
 * input where asked, on the gunzip thread. Writes are copied into a ring shared with the thread; the
 * output arrives as chunks whose memory the thread hands over. It is an error for the input to end
 * inside a gzip member.
 */
export class GunzipStream extends Duplex {
  private readonly ring: SharedRing;
  private pending: PendingWrite | undefined;
  /** Chunks asked for and not yet received. */
  private asked = 0;
  private settled = false;
  private readonly result: Promise<string>;
  private resolveDigest!: (digest: string) => void;
  private rejectDigest!: (err: Error) => void;
  private inputWaiter: { resolve: (digest: string) => void; reject: (err: Error) => void } | undefined;
  /** Decompressed bytes passed on so far. */
  bytes = 0;

  constructor(
    private readonly link: Link,
    readonly id: number,
    options: GunzipOptions = {},
  ) {
    super({ readableHighWaterMark: 2 * GUNZIP_OUTPUT_BYTES, writableHighWaterMark: Math.max(BATCH_BYTES, options.aheadBytes ?? 0) });
    this.result = new Promise((resolve, reject) => {
      this.resolveDigest = resolve;
      this.rejectDigest = reject;
    });
    this.result.catch(() => undefined);
    this.ring = new SharedRing(RING_BYTES, BATCH_BYTES, (slices) => link.post({ op: 'input', id, slices }));
    link.post({ op: 'open', id, ring: this.ring.buffer, plainToo: options.plainToo === true, checkCrc: options.checkCrc !== false, hashInput: options.hashInput === true });
  }

  /** "sha256:…" of the whole decompressed stream, once the thread has inflated all of it. */
  digest(): Promise<string> {
    return this.result;
  }

  /**
   * "sha256:…" of the input written so far, for a stream opened with hashInput. Ask once, when every
   * write has called back (its bytes are in the ring then) and before writing more: the hash ends here.
   */
  inputDigest(): Promise<string> {
    if (this.settled) return Promise.reject(new Error('the gunzip stream has ended'));
    if (this.inputWaiter) return Promise.reject(new Error('the input digest was asked for already'));
    return new Promise((resolve, reject) => {
      this.inputWaiter = { resolve, reject };
      this.ring.flush();
      this.link.post({ op: 'input-digest', id: this.id });
    });
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    const entry: PendingWrite = { id: this.id, chunk, copied: 0, done: () => done() };
    if (this.ring.copy(entry)) done();
    else this.pending = entry;
  }

  override _final(done: (err?: Error | null) => void): void {
    this.ring.flush();
    this.link.post({ op: 'end', id: this.id });
    done();
  }

  override _read(): void {
    // Asked for in pairs at least: each message wakes the thread.
    const wanted = CREDIT_CHUNKS - this.asked;
    if (wanted < 2 || this.settled) return;
    this.asked += wanted;
    this.link.post({ op: 'credit', id: this.id, chunks: wanted });
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    if (!this.settled) {
      this.settled = true;
      this.link.post({ op: 'close', id: this.id });
      this.link.forget(this.id);
      this.rejectDigest(err ?? new Error('the gunzip stream was closed before its end'));
    }
    this.inputWaiter?.reject(err ?? new Error('the gunzip stream was closed before its input was hashed'));
    this.inputWaiter = undefined;
    this.pending = undefined;
    done(err);
  }

  receive(message: FromGunzipThread): void {
    if (this.settled) return;
    switch (message.op) {
      case 'release':
        this.released(message.bytes);
        return;
      case 'output':
        this.asked--;
        this.bytes += message.length;
        this.push(Buffer.from(message.data, 0, message.length));
        this.released(message.released);
        return;
      case 'input-digest':
        if (message.digest) this.inputWaiter?.resolve(message.digest);
        else this.inputWaiter?.reject(new Error('the gunzip stream was not opened to hash its input'));
        this.inputWaiter = undefined;
        return;
      case 'done':
        this.settled = true;
        this.link.forget(this.id);
        this.resolveDigest(message.digest);
        this.push(null);
        return;
      case 'error':
        this.destroy(new Error(message.message));
        return;
    }
  }

  /** Ring space came back: the write waiting for it goes on. */
  private released(bytes: number): void {
    if (bytes === 0) return;
    this.ring.release(bytes);
    const pending = this.pending;
    if (pending && this.ring.copy(pending)) {
      this.pending = undefined;
      pending.done();
    }
  }

  /** The thread is gone: whatever it had of this stream is lost. */
  fail(err: Error): void {
    if (!this.settled) this.destroy(err);
  }
}

/**
 * Gunzip off the main thread, through zlib's C interface (see GzipInflater). On the main thread,
 * Node's zlib cost a thread-pool round trip and a fresh buffer per 256 KiB, and with the stream hops
 * around it that was the largest share of a pull's main-thread time. One thread serves every stream;
 * inflating is several times faster than the network and the disk it sits between.
 */
export class GunzipWorker {
  private readonly streams = new Map<number, GunzipStream>();
  private readonly thread: OnDemandThread<ToGunzipThread, FromGunzipThread>;
  private nextId = 1;

  constructor(idleMs = HELPER_IDLE_MS, script = join(__dirname, 'gunzip-thread.js')) {
    this.thread = new OnDemandThread('gunzip worker', () => new Worker(script), {
      message: (message) => this.streams.get(message.id)?.receive(message),
      failed: (err) => {
        for (const stream of [...this.streams.values()]) stream.fail(err);
        this.streams.clear();
      },
      busy: () => this.streams.size > 0,
      // A pull's layer data went through buffers of the C heap; once it is over, the heap need not keep them.
      quiet: () => releaseFreeHeap(),
    }, idleMs);
  }

  gunzip(options?: GunzipOptions): GunzipStream {
    this.thread.ensure();
    const stream = new GunzipStream(
      {
        post: (message) => this.thread.post(message),
        forget: (id) => {
          this.streams.delete(id);
          if (this.streams.size === 0) this.thread.idle();
        },
      },
      this.nextId++,
      options,
    );
    this.streams.set(stream.id, stream);
    return stream;
  }

  get running(): boolean {
    return this.thread.running;
  }

  close(): Promise<void> {
    return this.thread.close();
  }
}
