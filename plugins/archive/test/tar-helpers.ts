import { readdirSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { extract, pack, type Header } from 'tar-stream';

export type TarEntry = Partial<Header> & { name: string; content?: string | Buffer };

/** A tar archive (bytes) of the given entries, in order. */
export async function makeTar(entries: TarEntry[]): Promise<Buffer> {
  const p = pack();
  const chunks: Buffer[] = [];
  const reading = (async () => {
    for await (const chunk of p) chunks.push(chunk as Buffer);
  })();
  for (const { content, ...header } of entries) {
    const body = content === undefined ? undefined : Buffer.from(content);
    await new Promise<void>((resolve, reject) => {
      const h = { mode: 0o644, mtime: new Date(1_600_000_000_000), type: 'file' as const, ...header, size: body?.length ?? 0 };
      p.entry(h, body ?? Buffer.alloc(0), (err) => (err ? reject(err) : resolve()));
    });
  }
  p.finalize();
  await reading;
  return Buffer.concat(chunks);
}

export function streamOf(buf: Buffer, chunkSize = 7919): Readable {
  const parts: Buffer[] = [];
  for (let i = 0; i < buf.length; i += chunkSize) parts.push(buf.subarray(i, i + chunkSize));
  return Readable.from(parts, { objectMode: false });
}

export async function collect(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

export interface ListedEntry {
  header: Header;
  content: Buffer;
}

export async function listTar(buf: Buffer): Promise<ListedEntry[]> {
  const ex = extract();
  const out: ListedEntry[] = [];
  const feeding = (async () => {
    ex.end(buf);
  })();
  for await (const entry of ex) {
    const chunks: Buffer[] = [];
    for await (const c of entry) chunks.push(c as Buffer);
    out.push({ header: entry.header, content: Buffer.concat(chunks) });
  }
  await feeding;
  return out;
}

/** Every path under dir (relative), for "nothing else was created" checks. */
export function tree(dir: string, skip: string[] = []): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      if (skip.includes(r)) continue;
      out.push(r);
      if (lstatSync(join(dir, r)).isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}
