import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, beforeEach, describe, it } from 'node:test';
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
});
