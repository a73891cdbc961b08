import { fchmodSync, fchownSync, futimesSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import { setDirectIo } from '@tsengine/linux';
import { DIRECT_ALIGNMENT, type DirectWrites } from './direct-writes.js';

/** How a finished file's inode is left: owner, permission bits and modification time. */
export interface FileMetadata {
  uid: number;
  gid: number;
  mode: number;
  mtime: Date;
  /** Wraps an I/O failure in an error that names the tar entry. */
  fail: (why: string, cause: unknown) => Error;
}

/** Content gathered into one writev; fewer, larger writes are what makes extraction fast. */
const BATCH_BYTES = 1024 * 1024;
/** Linux's IOV_MAX. */
const MAX_IOVECS = 1024;
/** Bounds memory and open descriptors while the disk lags behind the tar stream. */
const MAX_PENDING_BYTES = 16 * 1024 * 1024;
const MAX_PENDING_FILES = 256;
/** Files this large go past the page cache while the disk keeps up; for smaller ones the extra calls cost more. */
const DIRECT_MIN_BYTES = 1024 * 1024;

/**
 * Writes regular files of a layer without a round trip per chunk: the caller opens each file (by
 * path, in tar order, with the usual checks) and hands over the descriptor; content is written in
 * large batches at explicit offsets, then ownership, mode and mtime are set through the descriptor
 * and it is closed, all while later entries are being read. Working through the descriptor only is
 * what keeps this safe: entries that follow may rename, remove or replace the path, never redirect
 * the writes. The first failure is reported by check() or drain().
 */
export class FileWriter {
  private readonly pending = new Set<Promise<void>>();
  private pendingBytes = 0;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  /** False once the file system has refused O_DIRECT. */
  private directAllowed = true;

  /** With `directWrites`, files of DIRECT_MIN_BYTES and more are written with O_DIRECT while the disk keeps up. */
  constructor(private readonly directWrites?: DirectWrites) {}

  /** Whether the next large file would go past the page cache. */
  get writesDirect(): boolean {
    return this.directAllowed && (this.directWrites?.keepsUp() ?? false);
  }

  /** Throws the first failure of a file finished in the background. */
  check(): void {
    if (this.failure) throw this.failure;
  }

  /**
   * Reads the entry's body (`size` bytes, from its tar header) into batched writes; returns once the
   * body is consumed (not written).
   */
  async write(file: FileHandle, body: AsyncIterable<Buffer>, size: number, meta: FileMetadata): Promise<void> {
    if (size >= DIRECT_MIN_BYTES && this.directWrites && this.writesDirect) {
      if (await directIoOn(file, meta)) return this.writeDirect(file, body, this.directWrites, meta);
      this.directAllowed = false;
    }
    const writes: Array<Promise<void>> = [];
    let position = 0;
    let batch: Buffer[] = [];
    let batchBytes = 0;
    const flush = () => {
      const start = position;
      const buffers = batch;
      const bytes = batchBytes;
      position += batchBytes;
      batch = [];
      batchBytes = 0;
      this.pendingBytes += bytes;
      writes.push(
        writeFully(file, buffers, start).finally(() => {
          this.pendingBytes -= bytes;
          this.notify();
        }),
      );
    };
    try {
      for await (const chunk of body) {
        batch.push(chunk);
        batchBytes += chunk.length;
        if (batchBytes >= BATCH_BYTES) {
          flush();
          await this.room();
        }
      }
      if (batchBytes > 0) flush();
    } catch (err) {
      // The body failed (truncated tar): let started writes end, then give the descriptor back.
      await Promise.allSettled(writes);
      await file.close().catch(() => undefined);
      throw err;
    }
    this.track(finishFile(file, writes, meta));
    await this.room();
  }

  /**
   * Copies the body into aligned buffers, each written with O_DIRECT; the last partial block is
   * written through the page cache once the rest is on disk.
   */
  private async writeDirect(file: FileHandle, body: AsyncIterable<Buffer>, shared: DirectWrites, meta: FileMetadata): Promise<void> {
    let direct = true;
    const writes: Array<Promise<void>> = [];
    let position = 0;
    let buffer = shared.takeBuffer();
    let filled = 0;
    const flush = (bytes: number) => {
      const full = buffer;
      const start = position;
      position += bytes;
      this.pendingBytes += bytes;
      // Mid-file too: a single large file can be most of a layer.
      if (direct && !this.writesDirect) {
        setDirectIo(file.fd, false);
        direct = false;
      }
      writes.push(
        (direct ? this.writeDirectFully(file, full.subarray(0, bytes), start, shared) : writeFully(file, [full.subarray(0, bytes)], start)).finally(() => {
          this.pendingBytes -= bytes;
          shared.giveBack(full);
          this.notify();
        }),
      );
      buffer = shared.takeBuffer();
      filled = 0;
    };
    let tail: Buffer | undefined;
    try {
      for await (const chunk of body) {
        for (let offset = 0; offset < chunk.length; ) {
          const copied = chunk.copy(buffer, filled, offset);
          filled += copied;
          offset += copied;
          if (filled === buffer.length) {
            flush(filled);
            await this.room();
          }
        }
      }
      const aligned = filled - (filled % DIRECT_ALIGNMENT);
      if (filled > aligned) tail = Buffer.from(buffer.subarray(aligned, filled));
      if (aligned > 0) flush(aligned);
    } catch (err) {
      await Promise.allSettled(writes);
      await file.close().catch(() => undefined);
      throw err;
    } finally {
      shared.giveBack(buffer);
    }
    const tailAt = position;
    const written = tail
      ? Promise.allSettled(writes).then(async (results) => {
          if (results.some((r) => r.status === 'rejected')) return;
          // Buffered, so that the file can end anywhere: direct writes end on a block boundary.
          setDirectIo(file.fd, false);
          await writeFully(file, [tail], tailAt);
        })
      : Promise.resolve();
    this.track(finishFile(file, [...writes, written], meta));
    await this.room();
  }

  /** One direct write; an unaligned remainder or a refusal of O_DIRECT falls back to a buffered write. */
  private async writeDirectFully(file: FileHandle, buffer: Buffer, position: number, shared: DirectWrites): Promise<void> {
    shared.began();
    try {
      let done = 0;
      while (done < buffer.length) {
        const { bytesWritten } = await file.write(buffer, done, buffer.length - done, position + done);
        if (bytesWritten === 0) throw new Error('the file system accepted no bytes');
        done += bytesWritten;
      }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
      this.directAllowed = false;
      setDirectIo(file.fd, false);
      await writeFully(file, [buffer], position);
    } finally {
      shared.ended(buffer.length);
    }
  }

  /** Waits for every file; throws the first failure. */
  async drain(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
    this.check();
  }

  /** Waits for every file, ignoring failures (the caller is already failing). */
  async settle(): Promise<void> {
    while (this.pending.size > 0) await Promise.allSettled([...this.pending]);
  }

  private track(done: Promise<void>): void {
    const tracked = done.then(
      () => undefined,
      (err: unknown) => {
        this.failure ??= err instanceof Error ? err : new Error(String(err));
      },
    );
    const settled = tracked.finally(() => {
      this.pending.delete(settled);
      this.notify();
    });
    this.pending.add(settled);
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }

  private async room(): Promise<void> {
    while (this.pendingBytes > MAX_PENDING_BYTES || this.pending.size >= MAX_PENDING_FILES) {
      await new Promise<void>((resolve) => {
        const previous = this.wake;
        this.wake = () => {
          previous?.();
          resolve();
        };
      });
      this.check();
    }
    this.check();
  }
}

/** Whether the file system took O_DIRECT; an unexpected failure gives the descriptor back. */
async function directIoOn(file: FileHandle, meta: FileMetadata): Promise<boolean> {
  try {
    return setDirectIo(file.fd, true);
  } catch (err) {
    await file.close().catch(() => undefined);
    throw meta.fail(`cannot open for direct writes: ${(err as Error).message}`, err);
  }
}

async function finishFile(file: FileHandle, writes: Array<Promise<void>>, meta: FileMetadata): Promise<void> {
  try {
    const results = await Promise.allSettled(writes);
    const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw meta.fail(`cannot write content: ${(failed.reason as Error).message}`, failed.reason);
    try {
      // Calls on an open descriptor that only change its inode in memory: microseconds each, where a
      // round trip through the thread pool costs the main thread far more, three times per file.
      fchownSync(file.fd, meta.uid, meta.gid);
      // After chown, which clears setuid/setgid.
      fchmodSync(file.fd, meta.mode);
      futimesSync(file.fd, meta.mtime, meta.mtime);
    } catch (err) {
      throw meta.fail(`cannot set metadata: ${(err as Error).message}`, err);
    }
  } finally {
    await file.close().catch(() => undefined);
  }
}

async function writeFully(file: FileHandle, buffers: Buffer[], position: number): Promise<void> {
  for (let i = 0; i < buffers.length; i += MAX_IOVECS) {
    let group = buffers.slice(i, i + MAX_IOVECS);
    let expected = group.reduce((sum, b) => sum + b.length, 0);
    while (expected > 0) {
      const { bytesWritten } = await file.writev(group, position);
      if (bytesWritten === 0) throw new Error('the file system accepted no bytes');
      position += bytesWritten;
      expected -= bytesWritten;
      if (expected > 0) group = skip(group, bytesWritten);
    }
  }
}

/** The buffers left after a short write of `bytes`. */
function skip(buffers: Buffer[], bytes: number): Buffer[] {
  const out: Buffer[] = [];
  for (const buffer of buffers) {
    if (bytes >= buffer.length) {
      bytes -= buffer.length;
      continue;
    }
    out.push(bytes > 0 ? buffer.subarray(bytes) : buffer);
    bytes = 0;
  }
  return out;
}
