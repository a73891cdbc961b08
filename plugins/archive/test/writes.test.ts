import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, it } from 'node:test';
import { mount, umount } from '@tsengine/linux';
import { DirectWrites, applyLayer } from '../src/index.js';
import { FileWriter } from '../src/writes.js';
import { makeTar, streamOf } from './tar-helpers.js';

const base = mkdtempSync(join(tmpdir(), 'tsengine-archive-writes-'));
after(() => rmSync(base, { recursive: true, force: true }));

const MiB = 1024 * 1024;

function patterned(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 7 + seed * 13 + (i >> 12)) & 0xff;
  return out;
}

/** Bytes of a file held in the page cache (util-linux's fincore). */
function cachedBytes(path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--output', 'RES', path], { encoding: 'utf8' }).trim());
}

const meta = { uid: 0, gid: 0, mode: 0o644, mtime: new Date(0), fail: (why: string) => new Error(why) };

async function* chunksOf(data: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let i = 0; i < data.length; i += size) yield data.subarray(i, i + size);
}

describe('file writes of a layer', () => {
  it('with directWrites, writes files of 1 MiB and more past the page cache, byte for byte, and smaller ones through it', async () => {
    const target = join(base, 'direct');
    mkdirSync(target);
    const sizes = { exact: MiB, oneMore: MiB + 1, blockMore: 2 * MiB + 4096, oddTail: 3 * MiB - 1, small: 200 * 1024 };
    const contents = Object.fromEntries(Object.entries(sizes).map(([name, size], i) => [name, patterned(size, i)]));
    const tar = await makeTar(Object.entries(contents).map(([name, content]) => ({ name, content, mode: 0o640 })));
    await applyLayer(target, streamOf(tar, 65521), { whiteouts: 'delete', directWrites: new DirectWrites() });
    const plain = join(base, 'plain');
    mkdirSync(plain);
    await applyLayer(plain, streamOf(tar, 65521), { whiteouts: 'delete' });
    assert.equal(cachedBytes(join(plain, 'exact')), MiB, 'without directWrites, large files go through the page cache');
    // Before any read, which would bring the pages in: what a direct write leaves is at most the last
    // partial block, written through the cache.
    assert.equal(cachedBytes(join(target, 'exact')), 0);
    assert.equal(cachedBytes(join(target, 'blockMore')), 0);
    assert.ok(cachedBytes(join(target, 'oneMore')) <= 4096, `oneMore: ${cachedBytes(join(target, 'oneMore'))} bytes cached`);
    assert.ok(cachedBytes(join(target, 'oddTail')) <= 4096, `oddTail: ${cachedBytes(join(target, 'oddTail'))} bytes cached`);
    assert.equal(cachedBytes(join(target, 'small')), sizes.small);
    for (const [name, content] of Object.entries(contents)) {
      const st = statSync(join(target, name));
      assert.equal(st.size, content.length, name);
      assert.equal(st.mode & 0o7777, 0o640, name);
      assert.ok(readFileSync(join(target, name)).equals(content), `${name} differs`);
    }
  });

  it('reports a truncated body of a file written directly, and leaves no write running', async () => {
    const target = join(base, 'truncated');
    mkdirSync(target);
    const tar = await makeTar([{ name: 'big', content: patterned(5 * MiB, 3) }]);
    await assert.rejects(
      applyLayer(target, streamOf(tar.subarray(0, 3 * MiB + 100), 65536), { whiteouts: 'delete', directWrites: new DirectWrites() }),
      /invalid layer tar|unexpected end|premature/i,
    );
    // The two whole MiB that came before the break were written before the error was reported.
    assert.equal(statSync(join(target, 'big')).size, 2 * MiB);
  });

  it('reuses aligned buffers across writers and keeps at most 16 free', () => {
    const shared = new DirectWrites();
    const given = Array.from({ length: 20 }, () => shared.takeBuffer());
    assert.ok(given.every((b) => b.length === MiB));
    for (const buffer of given) shared.giveBack(buffer);
    const taken = Array.from({ length: 17 }, () => shared.takeBuffer());
    assert.equal(taken.filter((b) => given.includes(b)).length, 16);
  });

  it('writes through the page cache on a file system without direct I/O', async (t) => {
    const ramfs = join(base, 'ramfs');
    mkdirSync(ramfs);
    mount('ramfs', ramfs, 'ramfs', 0, '');
    t.after(() => umount(ramfs));
    const content = patterned(3 * MiB + 5, 9);
    const writer = new FileWriter(new DirectWrites());
    await writer.write(await open(join(ramfs, 'big'), 'wx'), chunksOf(content, 100_000), content.length, meta);
    await writer.drain();
    assert.equal(writer.writesDirect, false);
    assert.ok(readFileSync(join(ramfs, 'big')).equals(content));

    const onDisk = new FileWriter(new DirectWrites());
    await onDisk.write(await open(join(base, 'big'), 'wx'), chunksOf(content, 100_000), content.length, meta);
    await onDisk.drain();
    assert.equal(onDisk.writesDirect, true);
    assert.ok(readFileSync(join(base, 'big')).equals(content));
  });

  it('goes back to the page cache when the disk is slower than the stream', async (t) => {
    const throttled = throttledCgroup(join(base, 'slow'), 8 * MiB);
    t.after(throttled.remove);
    const target = join(base, 'slow');
    const files = 40;
    const child = spawn(
      'sh',
      ['-c', `echo $$ > ${throttled.procs} && exec "$0" --input-type=module -e "$1" "$2" "$3" "$4"`, process.execPath, SLOW_DISK_SCRIPT, join(__dirname, '../src'), target, String(files)],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    assert.equal(code, 0, out);
    const report = JSON.parse(out) as { writesDirect: boolean; digests: string[] };
    assert.equal(report.writesDirect, false, 'the writer kept writing directly to a disk of 8 MB/s');
    assert.equal(cachedBytes(join(target, '0')), 0, 'the first file was written directly');
    assert.equal(cachedBytes(join(target, String(files - 1))), MiB, 'the last file went through the page cache');
    for (let i = 0; i < files; i++) {
      assert.equal(createHash('sha256').update(readFileSync(join(target, String(i)))).digest('hex'), report.digests[i], `file ${i}`);
    }
  });
});

/** Writes 1 MiB files as fast as they come through a FileWriter, and reports what it chose and wrote. */
const SLOW_DISK_SCRIPT = `
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join } from 'node:path';
const [archiveDist, target, count] = process.argv.slice(1);
const { FileWriter } = await import(archiveDist + '/writes.js');
const { DirectWrites } = await import(archiveDist + '/direct-writes.js');
mkdirSync(target, { recursive: true });
const writer = new FileWriter(new DirectWrites());
const digests = [];
const meta = { uid: 0, gid: 0, mode: 0o644, mtime: new Date(0), fail: (why) => new Error(why) };
for (let i = 0; i < Number(count); i++) {
  const content = randomBytes(1024 * 1024);
  digests.push(createHash('sha256').update(content).digest('hex'));
  async function* body() { for (let at = 0; at < content.length; at += 65536) yield content.subarray(at, at + 65536); }
  await writer.write(await open(join(target, String(i)), 'wx'), body(), content.length, meta);
}
await writer.drain();
process.stdout.write(JSON.stringify({ writesDirect: writer.writesDirect, digests }));
`;

/** A cgroup whose writes to the disk holding `path` are throttled to `bytesPerSecond` (v1 blkio or v2 io). */
function throttledCgroup(path: string, bytesPerSecond: number): { procs: string; remove: () => void } {
  mkdirSync(path, { recursive: true });
  const disk = wholeDisk(statSync(path).dev);
  const name = `tsengine-test-throttle-${process.pid}`;
  const v1 = '/sys/fs/cgroup/blkio';
  const dir = existsSync(v1) ? join(v1, name) : join('/sys/fs/cgroup', name);
  mkdirSync(dir);
  if (dir.startsWith(v1)) writeFileSync(join(dir, 'blkio.throttle.write_bps_device'), `${disk} ${bytesPerSecond}`);
  else {
    writeFileSync('/sys/fs/cgroup/cgroup.subtree_control', '+io');
    writeFileSync(join(dir, 'io.max'), `${disk} wbps=${bytesPerSecond}`);
  }
  return { procs: join(dir, 'cgroup.procs'), remove: () => rmdirSync(dir) };
}

/** "MAJOR:MINOR" of the disk (not the partition) behind a stat() device number. */
function wholeDisk(dev: number): string {
  const major = Math.floor(dev / 256) & 0xfff;
  const minor = (dev & 0xff) | ((Math.floor(dev / 4096) & ~0xff) >>> 0);
  const sys = `/sys/dev/block/${major}:${minor}`;
  if (!existsSync(join(sys, 'partition'))) return `${major}:${minor}`;
  const parent = dirname(join(dirname(sys), readlinkSync(sys)));
  return readFileSync(join(parent, 'dev'), 'utf8').trim();
}
