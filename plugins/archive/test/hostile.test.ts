import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, beforeEach, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { applyLayer } from '../src/index.js';
import { makeTar, streamOf, tree, type TarEntry } from './tar-helpers.js';

const base = mkdtempSync(join(tmpdir(), 'tsengine-archive-hostile-'));
after(() => rmSync(base, { recursive: true, force: true }));

// base/outside is the sentinel: it must stay exactly as set up. The target sits two levels deep so
// that "../.." from it lands in base.
const outside = join(base, 'outside');
const target = join(base, 'deep', 'er', 'target');
const secret = join(outside, 'secret');

beforeEach(() => {
  rmSync(join(base, 'deep'), { recursive: true, force: true });
  rmSync(outside, { recursive: true, force: true });
  mkdirSync(target, { recursive: true });
  mkdirSync(outside);
  writeFileSync(secret, 'do not touch');
});

function assertNothingOutside(): void {
  assert.deepEqual(tree(base, ['deep/er/target']), ['deep', 'deep/er', 'outside', 'outside/secret']);
  assert.equal(readFileSync(secret, 'utf8'), 'do not touch');
  assert.equal(lstatSync(secret).nlink, 1, 'no hard link to the sentinel was made');
}

async function rejects(entries: TarEntry[], entryName: string, why: RegExp): Promise<void> {
  await assert.rejects(applyLayer(target, streamOf(await makeTar(entries)), { whiteouts: 'delete' }), (err: Error) => {
    assert.ok(err.message.includes(`"${entryName}"`), `error names the entry: ${err.message}`);
    assert.match(err.message, why);
    return true;
  });
  assertNothingOutside();
}

describe('hostile layer tars', () => {
  it('refuses ../escape', async () => {
    await rejects([{ name: '../../../outside/escape', content: 'x' }], '../../../outside/escape', /escapes the layer root/);
    await rejects([{ name: 'a/../../escape', content: 'x' }], 'a/../../escape', /escapes/);
  });

  it('refuses an absolute /abs/path, writing nothing at the host path', async () => {
    const hostPath = join(outside, 'abs-file');
    await rejects([{ name: hostPath, content: 'pwned' }], hostPath, /absolute path/);
    assert.equal(existsSync(hostPath), false);
    assert.equal(existsSync(join(target, hostPath)), false);
  });

  it('refuses to write through an absolute symlink pointing out', async () => {
    await rejects(
      [
        { name: 'link', type: 'symlink', linkname: outside },
        { name: 'link/file', content: 'pwned' },
      ],
      'link/file',
      /symlink to .* outside the layer/,
    );
  });

  it('refuses to write through a relative symlink climbing out', async () => {
    await rejects(
      [
        { name: 'dir/', type: 'directory', mode: 0o755 },
        { name: 'dir/up', type: 'symlink', linkname: '../../../../outside' },
        { name: 'dir/up/file', content: 'pwned' },
      ],
      'dir/up/file',
      /symlink to .* outside the layer/,
    );
  });

  it('refuses a chain of symlinks that ends outside', async () => {
    await rejects(
      [
        { name: 'a', type: 'symlink', linkname: 'b' },
        { name: 'b', type: 'symlink', linkname: '/proc/../' + outside.slice(1) },
        { name: 'a/file', content: 'pwned' },
      ],
      'a/file',
      /outside the layer/,
    );
  });

  it('follows a symlinked parent that stays inside (lib -> usr/lib)', async () => {
    const tar = await makeTar([
      { name: 'usr/lib/', type: 'directory', mode: 0o755 },
      { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
      { name: 'lib/libc.so', content: 'elf' },
    ]);
    await applyLayer(target, streamOf(tar), { whiteouts: 'delete' });
    assert.equal(readFileSync(join(target, 'usr/lib/libc.so'), 'utf8'), 'elf');
    assert.equal(readlinkSync(join(target, 'lib')), 'usr/lib');
    assertNothingOutside();
  });

  it('replaces a symlink entry by a file instead of writing through it', async () => {
    const tar = await makeTar([
      { name: 'victim', type: 'symlink', linkname: secret },
      { name: 'victim', content: 'replaced' },
    ]);
    await applyLayer(target, streamOf(tar), { whiteouts: 'delete' });
    assert.equal(readFileSync(join(target, 'victim'), 'utf8'), 'replaced');
    assert.equal(lstatSync(join(target, 'victim')).isFile(), true);
    assertNothingOutside();
  });

  it('refuses a hard link to ../../outside', async () => {
    await rejects([{ name: 'hl', type: 'link', linkname: '../../../outside/secret' }], 'hl', /hard link target .* outside the layer/);
  });

  it('refuses a hard link to an absolute host path', async () => {
    // Like names, an absolute link target is read inside the layer, where it does not exist.
    await rejects([{ name: 'hl', type: 'link', linkname: secret }], 'hl', /does not exist|cannot resolve/);
  });

  it('refuses a hard link through a symlink', async () => {
    await rejects(
      [
        { name: 'sl', type: 'symlink', linkname: outside },
        { name: 'hl', type: 'link', linkname: 'sl/secret' },
      ],
      'hl',
      /symlink to .* outside the layer/,
    );
  });

  it('refuses a whiteout through a symlink pointing out', async () => {
    await rejects(
      [
        { name: 'sl', type: 'symlink', linkname: outside },
        { name: 'sl/.wh.secret' },
      ],
      'sl/.wh.secret',
      /outside the layer/,
    );
  });
  it('keeps file writes still in flight on their own inode when a later entry swaps the parent for a symlink out', async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 0x61);
    const tar = await makeTar([
      { name: 'dir/', type: 'directory', mode: 0o755 },
      { name: 'dir/secret', content: big, mode: 0o4755, uid: 0, gid: 0 },
      { name: 'dir', type: 'symlink', linkname: outside },
      { name: 'after', content: 'done' },
    ]);
    await applyLayer(target, streamOf(tar, 65536), { whiteouts: 'delete' });
    assert.equal(readlinkSync(join(target, 'dir')), outside);
    assert.equal(readFileSync(join(target, 'after'), 'utf8'), 'done');
    assertNothingOutside();
  });

  it('writes large files in full, with their metadata, also through hard links made before the content landed', async () => {
    const big = Buffer.alloc(5 * 1024 * 1024 + 123);
    for (let i = 0; i < big.length; i++) big[i] = (i * 31) % 251;
    const mtime = new Date('2021-02-03T04:05:06Z');
    const tar = await makeTar([
      { name: 'big', content: big, mode: 0o640, mtime },
      { name: 'alias', type: 'link', linkname: 'big' },
      ...Array.from({ length: 300 }, (_, i) => ({ name: `small/${i}`, content: `small ${i}`, mode: 0o600, mtime })),
    ]);
    await applyLayer(target, streamOf(tar, 100_000), { whiteouts: 'overlay' });
    assert.ok(readFileSync(join(target, 'big')).equals(big));
    assert.ok(readFileSync(join(target, 'alias')).equals(big));
    const st = lstatSync(join(target, 'alias'));
    assert.equal(st.mode & 0o7777, 0o640);
    assert.equal(st.mtime.getTime(), mtime.getTime());
    assert.equal(st.nlink, 2);
    for (let i = 0; i < 300; i += 37) {
      assert.equal(readFileSync(join(target, `small/${i}`), 'utf8'), `small ${i}`);
      assert.equal(lstatSync(join(target, `small/${i}`)).mtime.getTime(), mtime.getTime());
    }
    assertNothingOutside();
  });

  it('reports a truncated file body and leaves no write running', async () => {
    const tar = await makeTar([{ name: 'big', content: Buffer.alloc(4 * 1024 * 1024, 1) }]);
    await assert.rejects(applyLayer(target, streamOf(tar.subarray(0, 3 * 1024 * 1024), 65536), { whiteouts: 'delete' }), /invalid layer tar|unexpected end|premature/i);
    assertNothingOutside();
  });

  it('ends with the error of a stream that fails or closes before its first byte', async () => {
    // Later than applyLayer's set-up, so that it is waiting for the first bytes.
    const failing = new PassThrough();
    const applying = applyLayer(target, failing, { whiteouts: 'delete' });
    await sleep(50);
    failing.destroy(new Error('digest mismatch upstream'));
    await assert.rejects(applying, /digest mismatch upstream/);
    const closing = new PassThrough();
    const applying2 = applyLayer(target, closing, { whiteouts: 'delete' });
    await sleep(50);
    closing.destroy();
    await assert.rejects(applying2, /closed before its first bytes/);
    assertNothingOutside();
  });

  it('revisits directories made implicitly and replaces duplicate names, in a fresh target', async () => {
    for (const whiteouts of ['overlay', 'delete'] as const) {
      rmSync(target, { recursive: true, force: true });
      mkdirSync(target, { recursive: true });
      const tar = await makeTar([
        { name: 'a/b/file', content: 'first' },
        { name: 'a/b/', type: 'directory', mode: 0o750 },
        { name: 'a/b/file', content: 'second' },
        { name: 'a/.wh.gone' },
        { name: 'a/gone', content: 'back' },
        { name: 'a/b/sub', type: 'symlink', linkname: '../..' },
        { name: 'a/b/sub/top', content: 'via an inside link' },
        { name: 'a/b', type: 'symlink', linkname: outside },
        { name: 'a/b/escape', content: 'pwned' },
      ]);
      await assert.rejects(applyLayer(target, streamOf(tar), { whiteouts }), /"a\/b\/escape".*outside the layer/);
      assert.equal(readFileSync(join(target, 'a/gone'), 'utf8'), 'back');
      assert.equal(readFileSync(join(target, 'top'), 'utf8'), 'via an inside link');
      assert.equal(readlinkSync(join(target, 'a/b')), outside);
      assertNothingOutside();
    }
  });
});
