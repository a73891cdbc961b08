import { performance } from 'node:perf_hooks';
import { alignedBuffer } from '@tsengine/linux';

/** Below this, the disk is slower than a pull inflates layers here (about 350 MB/s on one thread). */
const MIN_BYTES_PER_SECOND = 256 * 1024 * 1024;
/** Enough writes for a rate that one slow write does not decide. */
const JUDGED_AFTER_BYTES = 8 * 1024 * 1024;
/** libuv's thread pool, which runs the writes: with this many in flight, more wait for the disk. */
const POOL_THREADS = Number(process.env.UV_THREADPOOL_SIZE) || 4;
/**
 * A pause this long ends a burst: the next one is measured afresh, as the disk may have changed
 * pace, and the idle buffers are let go.
 */
const BURST_GAP_MS = 5000;
/** Each direct write's size; what O_DIRECT asks of addresses, lengths and offsets on common disks. */
const DIRECT_BUFFER_BYTES = 1024 * 1024;
export const DIRECT_ALIGNMENT = 4096;
/** Free buffers kept between writes: more than the thread pool can have in flight, with room to fill. */
const KEPT_BUFFERS = 16;

/**
 * What the layers of one graph driver share for their direct (O_DIRECT) writes: the disk's pace and
 * aligned buffers. Direct writes skip the page cache, whose fresh pages cost more than the copy into
 * them where a hypervisor lends the memory (a page handed back to the host faults there when touched
 * again); a disk slower than the pull would instead hold the pull back, where the cache absorbs it.
 *
 * Only writes that queue say how fast the disk is: while fewer are in flight than the thread pool
 * has threads, the disk keeps up with whatever feeds it. So the rate measured is that at which
 * writes complete while the pool is full of them, over all layers, as they share the disk.
 */
export class DirectWrites {
  private inFlight = 0;
  private fullSince = 0;
  private fullMs = 0;
  private bytesWhileFull = 0;
  private lastEnd = 0;
  private free: Buffer[] = [];
  private idleTimer: NodeJS.Timeout | undefined;

  /** False once writes queued for the disk have completed slower than MIN_BYTES_PER_SECOND. */
  keepsUp(): boolean {
    if (this.bytesWhileFull < JUDGED_AFTER_BYTES) return true;
    const fullMs = this.fullMs + (this.inFlight >= POOL_THREADS ? performance.now() - this.fullSince : 0);
    return this.bytesWhileFull / (fullMs / 1000) >= MIN_BYTES_PER_SECOND;
  }

  /** An aligned buffer of DIRECT_BUFFER_BYTES, reused where one is free. */
  takeBuffer(): Buffer {
    return this.free.pop() ?? alignedBuffer(DIRECT_BUFFER_BYTES, DIRECT_ALIGNMENT);
  }

  giveBack(buffer: Buffer): void {
    if (this.free.length < KEPT_BUFFERS) this.free.push(buffer);
  }

  began(): void {
    const now = performance.now();
    if (this.inFlight === 0) {
      clearTimeout(this.idleTimer);
      if (now - this.lastEnd > BURST_GAP_MS) {
        this.fullMs = 0;
        this.bytesWhileFull = 0;
      }
    }
    if (++this.inFlight === POOL_THREADS) this.fullSince = now;
  }

  ended(bytes: number): void {
    const now = performance.now();
    if (this.inFlight >= POOL_THREADS) this.bytesWhileFull += bytes;
    if (this.inFlight-- === POOL_THREADS) this.fullMs += now - this.fullSince;
    this.lastEnd = now;
    if (this.inFlight === 0) {
      this.idleTimer = setTimeout(() => (this.free = []), BURST_GAP_MS);
      this.idleTimer.unref();
    }
  }
}
