import { closeSync, createReadStream, createWriteStream, fstatSync, openSync, read, readFileSync, readdirSync, renameSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { promisify } from 'node:util';
import { createGunzip, createGzip, gzipSync } from 'node:zlib';
import type { JsonFileOptions } from './options.js';

function isMissing(err: unknown): boolean {
  return (err as NodeJS.ErrnoException | undefined)?.code === 'ENOENT';
}

function ignoreMissing(action: () => void): void {
  try {
    action();
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
}

let tempCounter = 0;
function tempNameFor(target: string): string {
  return `${target}.${process.pid}.${++tempCounter}.tmp`;
}

/**
 * Gzips rotated files (<log>.1 → <log>.1.gz) in the background, one pending job per file. Every
 * step that renames or deletes a log file runs synchronously, so writers and readers (both on this
 * thread) never see a half-made .gz: a job finishes by renaming its temp file into place and
 * unlinking the source in one synchronous step, unless a rotation took over the source first.
 */
export class Compressor {
  private readonly pending = new Map<string, { cancelled: boolean; done: Promise<void> }>();

  constructor(private readonly onError: (file: string, err: unknown) => void = () => undefined) {}

  start(source: string): void {
    this.cancel(source);
    const job = { cancelled: false, done: Promise.resolve() };
    const temp = tempNameFor(`${source}.gz`);
    job.done = (async () => {
      try {
        await pipeline(createReadStream(source), createGzip(), createWriteStream(temp, { mode: 0o640 }));
        if (job.cancelled) throw new Error('superseded');
        renameSync(temp, `${source}.gz`);
        unlinkSync(source);
      } catch (err) {
        rmSync(temp, { force: true });
        // A failed job leaves the source uncompressed; the next rotation compresses it in place.
        if (!job.cancelled) this.onError(source, err);
      } finally {
        if (this.pending.get(source) === job) this.pending.delete(source);
      }
    })();
    this.pending.set(source, job);
  }

  /** Compresses `source` now if it is still there (its background job, if any, is dropped). */
  finishNow(source: string): void {
    this.cancel(source);
    let data: Buffer;
    try {
      data = readFileSync(source);
    } catch (err) {
      if (isMissing(err)) return;
      throw err;
    }
    const temp = tempNameFor(`${source}.gz`);
    try {
      writeFileSync(temp, gzipSync(data), { mode: 0o640 });
      renameSync(temp, `${source}.gz`);
    } catch (err) {
      rmSync(temp, { force: true });
      throw err;
    }
    unlinkSync(source);
  }

  /** Drops the background job of `source`, if any; the file stays as it is. */
  cancel(source: string): void {
    const job = this.pending.get(source);
    if (!job) return;
    job.cancelled = true;
    this.pending.delete(source);
  }

  /** Drops the jobs of every file of one log (before it is removed). */
  cancelAll(logPath: string): void {
    for (const source of [...this.pending.keys()]) if (source.startsWith(`${logPath}.`)) this.cancel(source);
  }

  /** Resolves when the background jobs started so far have ended. */
  async idle(): Promise<void> {
    await Promise.all([...this.pending.values()].map((j) => j.done));
  }
}

/**
 * The file a container's run appends to, rotated as Docker's json-file driver does: before an entry
 * is written to a file that has reached maxSize, the file becomes <log>.1 (older ones shift up, the
 * one beyond maxFile is deleted) or, with maxFile 1, is replaced by an empty one.
 */
export class RotatingFile {
  private fd: number;
  private size: number;

  constructor(
    private readonly path: string,
    private readonly options: JsonFileOptions,
    private readonly compressor: Compressor,
  ) {
    this.fd = openSync(path, 'a', 0o640);
    this.size = fstatSync(this.fd).size;
  }

  /** Appends whole records (each ending in a newline), rotating between them when due. */
  append(records: string[]): void {
    const max = this.options.maxSize;
    let parts: string[] = [];
    let bytes = 0;
    const flush = () => {
      if (parts.length === 0) return;
      writeSync(this.fd, parts.join(''));
      this.size += bytes;
      parts = [];
      bytes = 0;
    };
    for (const record of records) {
      if (max > 0 && this.size + bytes >= max) {
        flush();
        this.rotate();
      }
      parts.push(record);
      bytes += Buffer.byteLength(record);
    }
    flush();
  }

  close(): void {
    closeSync(this.fd);
  }

  private rotate(): void {
    const { maxFile, compress } = this.options;
    if (maxFile < 2) {
      // Unlinked, not truncated: a reader holding the old file reads what it had.
      closeSync(this.fd);
      ignoreMissing(() => unlinkSync(this.path));
      this.reopen();
      return;
    }
    const first = `${this.path}.1`;
    if (compress) {
      if (maxFile > 2) this.compressor.finishNow(first);
      else {
        this.compressor.cancel(first);
        ignoreMissing(() => unlinkSync(first));
      }
    }
    const ext = compress ? '.gz' : '';
    ignoreMissing(() => unlinkSync(`${this.path}.${maxFile - 1}${ext}`));
    for (let i = maxFile - 1; i > 1; i--) ignoreMissing(() => renameSync(`${this.path}.${i - 1}${ext}`, `${this.path}.${i}${ext}`));
    closeSync(this.fd);
    ignoreMissing(() => renameSync(this.path, first));
    this.reopen();
    if (compress) this.compressor.start(first);
  }

  private reopen(): void {
    this.fd = openSync(this.path, 'w', 0o640);
    this.size = 0;
  }
}

/** One file of a log, opened for reading with the size it had when the read began. */
export interface OpenedFile {
  fd: number;
  size: number;
  gzip: boolean;
}

/**
 * Opens every file of a log, oldest rotation first and the current file last, in one synchronous
 * step, so that no rotation can move a file between the listing and the opening.
 */
export function openLogFiles(path: string): OpenedFile[] {
  const dir = dirname(path);
  const prefix = `${basename(path)}.`;
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (isMissing(err)) return [];
    throw err;
  }
  const rotated = new Map<number, { name: string; gzip: boolean }>();
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const m = /^(\d+)(\.gz)?$/.exec(name.slice(prefix.length));
    if (!m) continue;
    const index = Number(m[1]);
    const gzip = m[2] !== undefined;
    // Both forms exist only after a crash mid-compression: the plain one is then the complete one.
    if (!rotated.has(index) || !gzip) rotated.set(index, { name, gzip });
  }
  const ordered = [...rotated.entries()].sort((a, b) => b[0] - a[0]).map(([, f]) => ({ path: join(dir, f.name), gzip: f.gzip }));
  ordered.push({ path, gzip: false });
  const opened: OpenedFile[] = [];
  try {
    for (const file of ordered) {
      let fd: number;
      try {
        fd = openSync(file.path, 'r');
      } catch (err) {
        if (isMissing(err)) continue;
        throw err;
      }
      opened.push({ fd, size: 0, gzip: file.gzip });
      opened[opened.length - 1]!.size = fstatSync(fd).size;
    }
  } catch (err) {
    closeFiles(opened);
    throw err;
  }
  return opened;
}

export function closeFiles(files: OpenedFile[]): void {
  for (const f of files) {
    if (f.fd < 0) continue;
    try {
      closeSync(f.fd);
    } catch {
      // already closed by its stream
    }
    f.fd = -1;
  }
}

/** The lines of one opened file up to its recorded size (decompressed when gzipped); closes it. */
export async function* linesOf(file: OpenedFile): AsyncGenerator<string> {
  if (file.size === 0) {
    closeFiles([file]);
    return;
  }
  const raw = createReadStream('', { fd: file.fd, start: 0, end: file.size - 1, autoClose: true });
  // The stream owns the descriptor from here on.
  file.fd = -1;
  const gunzip = file.gzip ? createGunzip() : undefined;
  if (gunzip) {
    raw.on('error', (err) => gunzip.destroy(err));
    raw.pipe(gunzip);
  }
  const source = (gunzip ?? raw) as AsyncIterable<Buffer>;
  let rest: Buffer | undefined;
  try {
    for await (const chunk of source) {
      const buffer = rest ? Buffer.concat([rest, chunk]) : chunk;
      let start = 0;
      for (;;) {
        const nl = buffer.indexOf(10, start);
        if (nl < 0) break;
        if (nl > start) yield buffer.toString('utf8', start, nl);
        start = nl + 1;
      }
      rest = start < buffer.length ? buffer.subarray(start) : undefined;
    }
    if (rest) yield rest.toString('utf8');
  } finally {
    gunzip?.destroy();
    raw.destroy();
  }
}

const readAt = promisify(read);
const TAIL_BLOCK = 64 * 1024;

/**
 * The last `count` lines of an opened file that `parse` accepts, oldest first; closes it. A plain
 * file is read backwards in blocks, so a short tail of a long log costs a few reads; a gzipped
 * one is decompressed from the start.
 */
export async function lastLinesOf<T>(file: OpenedFile, count: number, parse: (text: string) => T | undefined): Promise<T[]> {
  const newestFirst: T[] = [];
  if (file.gzip) {
    let kept: T[] = [];
    for await (const text of linesOf(file)) {
      const value = parse(text);
      if (value === undefined) continue;
      kept.push(value);
      if (kept.length >= 2 * count) kept = kept.slice(-count);
    }
    return kept.slice(-count);
  }
  try {
    let end = file.size;
    let carried = Buffer.alloc(0);
    while (end > 0 && newestFirst.length < count) {
      const start = Math.max(0, end - TAIL_BLOCK);
      const block = Buffer.alloc(end - start);
      for (let filled = 0; filled < block.length; ) {
        const { bytesRead } = await readAt(file.fd, block, filled, block.length - filled, start + filled);
        if (bytesRead === 0) throw new Error(`short read of a log file at ${start + filled}`);
        filled += bytesRead;
      }
      end = start;
      const data = carried.length ? Buffer.concat([block, carried]) : block;
      // Everything after a newline is a whole line; what precedes the first one waits for the previous block.
      let stop = data.length;
      while (stop > 0 && newestFirst.length < count) {
        const nl = data.lastIndexOf(10, stop - 1);
        if (nl < 0) break;
        const value = nl + 1 < stop ? parse(data.toString('utf8', nl + 1, stop)) : undefined;
        if (value !== undefined) newestFirst.push(value);
        stop = nl;
      }
      carried = Buffer.from(data.subarray(0, stop));
    }
    if (end === 0 && carried.length && newestFirst.length < count) {
      const value = parse(carried.toString('utf8'));
      if (value !== undefined) newestFirst.push(value);
    }
  } finally {
    closeFiles([file]);
  }
  return newestFirst.reverse();
}

/** Deletes every file of a log: the current one, rotated ones and temp files of compressions. */
export function removeLogFiles(path: string): void {
  const dir = dirname(path);
  const prefix = `${basename(path)}.`;
  let names: string[] = [];
  try {
    names = readdirSync(dir);
  } catch (err) {
    if (!isMissing(err)) throw err;
  }
  rmSync(path, { force: true });
  for (const name of names) if (name.startsWith(prefix)) rmSync(join(dir, name), { force: true });
}
