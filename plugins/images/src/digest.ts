import { createHash } from 'node:crypto';
import { Readable, Transform, type TransformCallback, type Writable } from 'node:stream';
import type { DigestWorker, OffThreadHash } from './digest-worker.js';
import { GunzipStream, type GunzipWorker } from './gunzip-worker.js';

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

/** Passes bytes through unchanged while hashing them on the digest worker and counting them. */
export class HashingStream extends Transform {
  private readonly hash: OffThreadHash;
  private result: Promise<string> | undefined;
  bytes = 0;

  constructor(digests: DigestWorker) {
    // Larger than the 16 KiB default: fewer hops per layer.
    super({ highWaterMark: 1024 * 1024 });
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

/** A layer's tar on its way in, and the digest of its bytes (the diff ID) once it has been read to its end. */
export interface TarStream {
  stream: Readable;
  digest(): Promise<string>;
}

/**
 * Turns layer blobs (plain or gzip tar) into plain tar. Looks at the first bytes rather than trusting a
 * media type: docker load and import take both kinds under any name.
 */
export class TarDecoder {
  constructor(
    private readonly digests: DigestWorker,
    private readonly gunzip: GunzipWorker,
  ) {}

  /**
   * The tar and its digest, hashed on the way (gzip is inflated and hashed on the gunzip worker). A
   * source that is a gunzip worker's stream already is one (a registry blob fed to it on download).
   */
  async open(source: Readable): Promise<TarStream> {
    if (source instanceof GunzipStream) return { stream: source, digest: () => source.digest() };
    const head = await peek(source, 2);
    const through = isGzip(head) ? this.gunzip.gunzip() : new HashingStream(this.digests);
    feed(source, head, through);
    return { stream: through, digest: () => through.digest() };
  }

  /** The tar alone, where nobody needs its digest. */
  async decompressed(source: Readable): Promise<Readable> {
    const head = await peek(source, 2);
    if (!isGzip(head)) {
      if (source.readableEnded) return Readable.from(head.length ? [head] : []);
      if (head.length) source.unshift(head);
      return source;
    }
    const through = this.gunzip.gunzip();
    feed(source, head, through);
    return through;
  }

  async close(): Promise<void> {
    await Promise.all([this.digests.close(), this.gunzip.close()]);
  }
}

function isGzip(head: Buffer): boolean {
  return head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
}

/** Passes `head` (already read from source) and then the rest of source on; source's errors end `into`. */
function feed(source: Readable, head: Buffer, into: Writable): void {
  source.on('error', (err) => into.destroy(err));
  if (source.readableEnded) {
    into.end(head);
    return;
  }
  if (head.length) into.write(head);
  source.pipe(into);
}

/** Reads at least n bytes (or to EOF) and returns them; the source is paused at that point. */
function peek(source: Readable, n: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // Already stopped (a failing sibling layer stops the others): its 'close' has gone by.
    if (source.destroyed) {
      reject(source.errored ?? new Error('stream closed'));
      return;
    }
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
