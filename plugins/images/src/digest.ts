import { createHash } from 'node:crypto';
import { PassThrough, Readable, Transform, type TransformCallback } from 'node:stream';
import { createGunzip } from 'node:zlib';
import type { DigestWorker, OffThreadHash } from './digest-worker.js';

export function sha256(data: string | Uint8Array): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export function hex(digest: string): string {
  return digest.startsWith('sha256:') ? digest.slice(7) : digest;
}

/** OCI chain IDs: chainID(L0) = diffID(L0); chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln)). */
export function chainIds(diffIds: string[]): string[] {
  const out: string[] = [];
  for (const d of diffIds) out.push(out.length === 0 ? d : sha256(`${out[out.length - 1]} ${d}`));
  return out;
}

const GUNZIP_CHUNK_BYTES = 256 * 1024;
const GUNZIP_INPUT_BYTES = 512 * 1024;
/** Stream buffers on the layer path: above the chunk size, so a chunk does not stall each hop. */
export const LAYER_STREAM_BUFFER = 1024 * 1024;

/** Passes bytes through unchanged while hashing them on the digest worker and counting them. */
export class HashingStream extends Transform {
  private readonly hash: OffThreadHash;
  private result: Promise<string> | undefined;
  bytes = 0;

  constructor(digests: DigestWorker) {
    super({ highWaterMark: LAYER_STREAM_BUFFER });
    this.hash = digests.hash();
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.bytes += chunk.length;
    const full = this.hash.update(chunk);
    if (full) full.then(() => done(null, chunk), done);
    else done(null, chunk);
  }

  override _flush(done: TransformCallback): void {
    this.result = this.hash.digest();
    this.result.catch(() => undefined);
    done();
  }

  override _destroy(err: Error | null, done: (err: Error | null) => void): void {
    if (!this.result) this.hash.discard();
    done(err);
  }

  /** "sha256:…" of every byte that passed; the stream must have finished. */
  digest(): Promise<string> {
    return this.result ?? Promise.reject(new Error('the stream has not finished'));
  }
}

/** Passes bytes on in chunks of at least `size` (the last may be smaller), joining small ones. */
class Coalescer extends Transform {
  private parts: Buffer[] = [];
  private length = 0;

  constructor(private readonly size: number) {
    super({ highWaterMark: size * 2 });
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    if (this.length === 0 && chunk.length >= this.size) {
      done(null, chunk);
      return;
    }
    this.parts.push(chunk);
    this.length += chunk.length;
    if (this.length >= this.size) this.release();
    done();
  }

  override _flush(done: TransformCallback): void {
    if (this.length > 0) this.release();
    done();
  }

  private release(): void {
    this.push(this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.length));
    this.parts = [];
    this.length = 0;
  }
}

/**
 * Returns the stream uncompressed: peeks at the first bytes and inserts gunzip when they are gzip's
 * magic. Errors of the source propagate to the result.
 */
export async function decompressed(source: Readable): Promise<Readable> {
  const head = await peek(source, 2);
  const out = new PassThrough({ highWaterMark: LAYER_STREAM_BUFFER });
  const isGzip = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  const forward = (err: Error) => out.destroy(err);
  source.on('error', forward);
  const ended = source.readableEnded;
  if (isGzip) {
    // Large output chunks: zlib's default (16 KiB) costs a callback and a stream hop per 16 KiB.
    const gunzip = createGunzip({ chunkSize: GUNZIP_CHUNK_BYTES });
    gunzip.on('error', forward);
    gunzip.pipe(out);
    if (ended) gunzip.end(head);
    else {
      gunzip.write(head);
      // Each write to zlib is a round trip to the thread pool: network-sized chunks (16-64 KiB) are
      // gathered first.
      const gather = new Coalescer(GUNZIP_INPUT_BYTES);
      gather.on('error', forward);
      source.pipe(gather).pipe(gunzip);
    }
  } else if (ended) {
    out.end(head);
  } else {
    if (head.length) out.write(head);
    source.pipe(out);
  }
  return out;
}

/** Reads at least n bytes (or to EOF) and returns them; the source is paused at that point. */
function peek(source: Readable, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = () => {
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onError);
      source.off('close', onClose);
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= n) {
        source.pause();
        cleanup();
        resolve(Buffer.concat(chunks));
      }
    };
    const onEnd = () => {
      cleanup();
      resolve(Buffer.concat(chunks));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    // Destroyed without an error (a caller stopping it): nothing more will come.
    const onClose = () => {
      cleanup();
      reject(new Error('stream closed'));
    };
    source.on('data', onData);
    source.on('end', onEnd);
    source.on('error', onError);
    source.on('close', onClose);
  });
}

export async function readAll(stream: Readable, limit = 64 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new Error(`stream exceeds ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
