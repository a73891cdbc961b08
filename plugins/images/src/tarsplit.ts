import { createReadStream, createWriteStream } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { PassThrough, type Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip, createGzip } from 'node:zlib';

/**
 * Docker's tar-split idea: a layer tar is recorded as its raw header bytes plus, for each regular
 * file, only its name and size. Joined with the file contents from the applied layer, the original
 * tar comes back byte for byte, so `save` reproduces the diff IDs of any loaded image.
 *
 * Stored as gzip'd JSON lines: {"r": base64} raw bytes, {"f": name, "n": size} file content.
 */
type Segment = { r: string } | { f: string; n: number };

const BLOCK = 512;
const LINES_BATCH = 64 * 1024;

/** Passes a tar through unchanged while writing its tar-split to `path`. */
export class TarSplitRecorder extends Transform {
  private readonly gzip = createGzip();
  readonly written: Promise<void>;
  private pending = Buffer.alloc(0);
  private raw: Buffer[] = [];
  /** Bytes of the current entry's data still to pass; its kind decides whether they are kept. */
  private dataLeft = 0;
  private dataKind: 'file' | 'meta' | 'skip' = 'skip';
  private meta: Buffer[] = [];
  private pad = 0;
  private paxPath: string | undefined;
  private gnuLongName: string | undefined;
  private lines = '';

  constructor(path: string) {
    super({ highWaterMark: 1024 * 1024 });
    this.written = pipeline(this.gzip, createWriteStream(path));
    this.written.catch(() => undefined);
  }

  private emit_(segment: Segment): void {
    this.lines += JSON.stringify(segment) + '\n';
    if (this.lines.length >= LINES_BATCH) this.writeLines();
  }

  /** Each write to zlib is a round trip to the thread pool, so lines go in batches. */
  private writeLines(): void {
    if (this.lines) this.gzip.write(this.lines);
    this.lines = '';
  }

  private flushRaw(): void {
    if (this.raw.length === 0) return;
    this.emit_({ r: Buffer.concat(this.raw).toString('base64') });
    this.raw = [];
  }

  override _transform(chunk: Buffer, _enc: BufferEncoding, done: TransformCallback): void {
    this.push(chunk);
    let buf = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buf.length > 0) {
      if (this.dataLeft > 0) {
        const take = Math.min(this.dataLeft, buf.length);
        if (this.dataKind === 'meta') {
          this.meta.push(buf.subarray(0, take));
          this.raw.push(buf.subarray(0, take));
        } else if (this.dataKind === 'skip') this.raw.push(buf.subarray(0, take));
        this.dataLeft -= take;
        buf = buf.subarray(take);
        if (this.dataLeft === 0 && this.dataKind === 'meta') this.parseMeta();
        continue;
      }
      if (this.pad > 0) {
        const take = Math.min(this.pad, buf.length);
        this.raw.push(buf.subarray(0, take));
        this.pad -= take;
        buf = buf.subarray(take);
        continue;
      }
      if (buf.length < BLOCK) break;
      const header = buf.subarray(0, BLOCK);
      buf = buf.subarray(BLOCK);
      this.raw.push(header);
      if (header.every((b) => b === 0)) continue;
      const size = parseSize(header.subarray(124, 136));
      const type = String.fromCharCode(header[156]!);
      this.pad = (BLOCK - (size % BLOCK)) % BLOCK;
      if (type === 'x' || type === 'L') {
        this.dataKind = 'meta';
        this.metaType = type;
      } else if ((type === '0' || type === '\0' || type === '7') && size > 0) {
        this.dataKind = 'file';
        this.flushRaw();
        this.emit_({ f: this.entryName(header), n: size });
      } else this.dataKind = 'skip';
      if (type !== 'x' && type !== 'L' && type !== 'g' && type !== 'K') {
        this.paxPath = undefined;
        this.gnuLongName = undefined;
      }
      this.dataLeft = size;
      if (size === 0 && this.dataKind === 'meta') this.parseMeta();
    }
    this.pending = Buffer.from(buf);
    done();
  }

  private metaType = '';

  private parseMeta(): void {
    const data = Buffer.concat(this.meta);
    this.meta = [];
    if (this.metaType === 'L') this.gnuLongName = data.toString('utf8').replace(/\0+$/, '');
    else {
      for (let at = 0; at < data.length; ) {
        const space = data.indexOf(0x20, at);
        if (space === -1) break;
        const len = Number(data.subarray(at, space).toString());
        if (!len) break;
        const record = data.subarray(space + 1, at + len - 1).toString('utf8');
        const eq = record.indexOf('=');
        if (record.slice(0, eq) === 'path') this.paxPath = record.slice(eq + 1);
        at += len;
      }
    }
  }

  private entryName(header: Buffer): string {
    if (this.paxPath !== undefined) return this.paxPath;
    if (this.gnuLongName !== undefined) return this.gnuLongName;
    const name = cstring(header.subarray(0, 100));
    const magic = header.subarray(257, 263).toString('latin1');
    const prefix = magic.startsWith('ustar') ? cstring(header.subarray(345, 500)) : '';
    return prefix ? `${prefix}/${name}` : name;
  }

  override _flush(done: TransformCallback): void {
    if (this.pending.length) this.raw.push(this.pending);
    this.flushRaw();
    this.writeLines();
    this.gzip.end();
    done();
  }
}

function cstring(b: Buffer): string {
  const end = b.indexOf(0);
  return b.subarray(0, end === -1 ? b.length : end).toString('utf8');
}

function parseSize(field: Buffer): number {
  if (field[0]! & 0x80) {
    // GNU base-256 for sizes over 8 GiB.
    let n = 0;
    for (let i = 1; i < field.length; i++) n = n * 256 + field[i]!;
    return n;
  }
  const text = cstring(field).trim();
  return text ? parseInt(text, 8) : 0;
}

/** Rebuilds the original tar from a tar-split and the layer's files under `root`. */
export function assemble(splitPath: string, root: string): Readable {
  const out = new PassThrough();
  (async () => {
    const lines = createReadStream(splitPath).pipe(createGunzip());
    let rest = '';
    for await (const chunk of lines) {
      rest += (chunk as Buffer).toString('utf8');
      let nl: number;
      while ((nl = rest.indexOf('\n')) !== -1) {
        const segment = JSON.parse(rest.slice(0, nl)) as Segment;
        rest = rest.slice(nl + 1);
        if ('r' in segment) {
          if (!out.write(Buffer.from(segment.r, 'base64'))) await new Promise((r) => out.once('drain', r));
        } else await copyFile(out, root, segment.f, segment.n);
      }
    }
    out.end();
  })().catch((err: unknown) => out.destroy(err as Error));
  return out;
}

async function copyFile(out: PassThrough, root: string, name: string, size: number): Promise<void> {
  const clean = posix.normalize('/' + name).slice(1);
  if (clean.split('/').includes('..')) throw new Error(`tar-split names a path outside the layer: ${name}`);
  const file = await open(join(root, clean), 'r');
  try {
    let left = size;
    const buf = Buffer.alloc(Math.min(size, 1 << 20));
    while (left > 0) {
      const { bytesRead } = await file.read(buf, 0, Math.min(buf.length, left));
      if (bytesRead === 0) throw new Error(`${name} is shorter in the layer than in its tar`);
      if (!out.write(Buffer.from(buf.subarray(0, bytesRead)))) await new Promise((r) => out.once('drain', r));
      left -= bytesRead;
    }
  } finally {
    await file.close();
  }
}
