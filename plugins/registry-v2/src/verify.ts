import { createHash } from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { EngineError } from '@tsengine/core';
import type { DigestWorker, OffThreadHash } from '@tsengine/images';

export function sha256(data: Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/**
 * Passes a blob through while checking it against its descriptor: too many bytes fail at once, a short
 * blob or a wrong digest fail at the end. The last chunk is held back until the digest is checked, so a
 * consumer (a decompressor, an extractor) never reaches the end of unverified content. The hashing
 * runs on the digest worker's thread.
 */
export class VerifyingStream extends Transform {
  private readonly hash: OffThreadHash;
  private taken = false;
  bytes = 0;
  private held: Buffer | undefined;

  constructor(
    digests: DigestWorker,
    private readonly expectedDigest: string,
    private readonly expectedSize: number | undefined,
    private readonly onBytes?: (bytes: number) => void,
    /** How much verified data may wait for its reader (a prefetched layer buffers more). */
    readableHighWaterMark = 1024 * 1024,
  ) {
    // Larger buffers than the 16 kB default: fewer backpressure round trips on big layers.
    super({ writableHighWaterMark: 1024 * 1024, readableHighWaterMark });
    this.hash = digests.hash();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    if (this.expectedSize !== undefined && this.bytes > this.expectedSize) {
      done(new EngineError('invalid', `blob ${this.expectedDigest} is larger than its descriptor says (${this.expectedSize} bytes)`));
      return;
    }
    const full = this.hash.update(chunk);
    this.onBytes?.(this.bytes);
    const previous = this.held;
    this.held = chunk;
    if (full) full.then(() => done(null, previous), done);
    else done(null, previous);
  }

  override _flush(done: TransformCallback): void {
    if (this.expectedSize !== undefined && this.bytes !== this.expectedSize) {
      done(new EngineError('invalid', `blob ${this.expectedDigest} has ${this.bytes} bytes, its descriptor says ${this.expectedSize}`));
      return;
    }
    this.taken = true;
    this.hash.digest().then((actual) => {
      if (actual !== this.expectedDigest) done(new EngineError('invalid', `digest mismatch for blob ${this.expectedDigest}: the registry sent content with digest ${actual}`));
      else done(null, this.held);
    }, done);
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    if (!this.taken) this.hash.discard();
    done(err);
  }
}
