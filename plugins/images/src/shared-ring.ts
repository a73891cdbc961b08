export interface RingSlice {
  /** Whose bytes these are (a hash, a stream). */
  id: number;
  at: number;
  length: number;
  /** Ring bytes this slice frees once used: its length plus any unused tail skipped before it. */
  release: number;
}

/** A chunk on its way into the ring: `copied` bytes of it are in already. */
export interface RingEntry {
  id: number;
  chunk: Uint8Array;
  copied: number;
}

/**
 * Bytes for a worker thread, copied into memory shared with it. Slices are announced in batches of
 * `batchBytes`, since waking the thread costs the main thread more than the memcpy; the thread hands
 * space back in the order it was filled.
 */
export class SharedRing {
  readonly buffer: SharedArrayBuffer;
  private readonly bytes: Uint8Array;
  private writeAt = 0;
  private inFlight = 0;
  private batch: RingSlice[] = [];
  private batchBytes = 0;

  constructor(
    size: number,
    private readonly batchLimit: number,
    private readonly announce: (slices: RingSlice[]) => void,
  ) {
    this.buffer = new SharedArrayBuffer(size);
    this.bytes = new Uint8Array(this.buffer);
  }

  /** Copies as much of the entry as fits, in slices of at most a quarter ring; true once all of it is in. */
  copy(entry: RingEntry): boolean {
    const ring = this.bytes;
    const slice = ring.length >> 2;
    while (entry.copied < entry.chunk.length) {
      const length = Math.min(slice, entry.chunk.length - entry.copied);
      const skip = this.writeAt + length > ring.length ? ring.length - this.writeAt : 0;
      if (this.inFlight + skip + length > ring.length) {
        // The thread can only free what it has been told about.
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
    if (this.batchBytes >= this.batchLimit) this.flush();
    return true;
  }

  /** Announces what was copied since the last batch. */
  flush(): void {
    if (this.batch.length === 0) return;
    const slices = this.batch;
    this.batch = [];
    this.batchBytes = 0;
    this.announce(slices);
  }

  /** The thread is done with `bytes` more of the ring. */
  release(bytes: number): void {
    this.inFlight -= bytes;
  }
}
