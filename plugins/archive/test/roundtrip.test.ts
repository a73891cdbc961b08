import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, chownSync, linkSync, lstatSync, lutimesSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import { ChangeKind } from '@tsengine/core';
import { S_IF, lgetxattr, lsetxattr, makedev, mknod } from '@tsengine/linux';
import { applyLayer, changes, changesSize, exportChanges, exportOverlayUpper, overlayChanges } from '../src/index.js';
import { collect, listTar, makeTar, streamOf, tree } from './tar-helpers.js';

const base = mkdtempSync(join(tmpdir(), 'tsengine-archive-rt-'));
after(() => rmSync(base, { recursive: true, force: true }));

const T = new Date(1_700_000_000_000);

function fresh(name: string): string {
  const dir = join(base, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** A tree with every kind of file and metadata a layer carries. */
function buildSource(dir: string): void {
  mkdirSync(join(dir, 'bin'));
  writeFileSync(join(dir, 'bin/su'), 'setuid binary');
  chownSync(join(dir, 'bin/su'), 0, 0);
  chmodSync(join(dir, 'bin/su'), 0o4755);
  mkdirSync(join(dir, 'shared'));
  chownSync(join(dir, 'shared'), 1234, 5678);
  chmodSync(join(dir, 'shared'), 0o2775);
  mkdirSync(join(dir, 'tmp'));
  chmodSync(join(dir, 'tmp'), 0o1777);
  writeFileSync(join(dir, 'shared/owned'), 'owned by 1234:5678');
  chownSync(join(dir, 'shared/owned'), 1234, 5678);
  chmodSync(join(dir, 'shared/owned'), 0o640);
  lsetxattr(join(dir, 'shared/owned'), 'user.tsengine', 'hello xattr');
  writeFileSync(join(dir, 'bin/busybox'), 'multi-call');
  linkSync(join(dir, 'bin/busybox'), join(dir, 'bin/sh'));
  linkSync(join(dir, 'bin/busybox'), join(dir, 'bin/ls'));
  symlinkSync('busybox', join(dir, 'bin/link'));
  mkdirSync(join(dir, 'dev'));
  mknod(join(dir, 'dev/null'), S_IF.CHR | 0o666, makedev(1, 3));
  mknod(join(dir, 'dev/loop0'), S_IF.BLK | 0o660, makedev(7, 0));
  mknod(join(dir, 'dev/fifo'), S_IF.FIFO | 0o600);
  chmodSync(join(dir, 'dev/null'), 0o666);
  for (const p of ['bin/su', 'bin/busybox', 'shared/owned', 'dev/null', 'dev/loop0', 'dev/fifo']) utimesSync(join(dir, p), T, T);
  lutimesSync(join(dir, 'bin/link'), T, T);
  for (const p of ['bin', 'shared', 'tmp', 'dev']) utimesSync(join(dir, p), T, T);
}

function describeTree(dir: string): Array<Record<string, unknown>> {
  const inodes = new Map<number, string>();
  return tree(dir).map((rel) => {
    const p = join(dir, rel);
    const st = lstatSync(p);
    const firstName = inodes.get(st.ino);
    if (firstName === undefined) inodes.set(st.ino, rel);
    return {
      rel,
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      rdev: st.rdev,
      size: st.isDirectory() ? 0 : st.size,
      mtime: Math.floor(st.mtimeMs / 1000),
      link: st.isSymbolicLink() ? readlinkSync(p) : undefined,
      sameInodeAs: firstName,
      xattr: st.isSymbolicLink() ? null : lgetxattr(p, 'user.tsengine')?.toString() ?? null,
    };
  });
}

describe('apply and export round trip', () => {
  it('keeps modes, ownership, mtimes, xattrs, hard links, symlinks, devices and fifos', async () => {
    const src = fresh('src');
    buildSource(src);
    const tar = await collect(exportChanges(src, await changes(src, null)));
    const dst = fresh('dst');
    const applied = await applyLayer(dst, streamOf(tar), { whiteouts: 'delete' });
    assert.equal(applied, 'setuid binary'.length + 'owned by 1234:5678'.length + 'multi-call'.length);
    assert.deepEqual(describeTree(dst), describeTree(src));
    assert.equal(lstatSync(join(dst, 'bin/su')).mode & 0o7777, 0o4755);
    assert.equal(lstatSync(join(dst, 'bin/sh')).ino, lstatSync(join(dst, 'bin/busybox')).ino);

    const entries = await listTar(tar);
    const sh = entries.find((e) => e.header.name === 'bin/sh');
    const ls = entries.find((e) => e.header.name === 'bin/ls');
    assert.equal(entries.find((e) => e.header.name === 'bin/busybox')?.header.type, 'file');
    assert.equal(ls?.header.type, 'link');
    assert.equal(sh?.header.type, 'link');
    assert.equal(ls?.header.linkname, 'bin/busybox');

    // Same content, same bytes: the diffID of a re-export is stable.
    const again = await collect(exportChanges(dst, await changes(dst, null)));
    assert.equal(createHash('sha256').update(again).digest('hex'), createHash('sha256').update(tar).digest('hex'));
  });

  it('detects gzip by its magic bytes', async () => {
    const tar = await makeTar([{ name: 'etc/hostname', content: 'gz' }]);
    const dst = fresh('gz');
    await applyLayer(dst, streamOf(gzipSync(tar), 3), { whiteouts: 'delete' });
    assert.equal(readFileSync(join(dst, 'etc/hostname'), 'utf8'), 'gz');
    const plain = fresh('plain');
    await applyLayer(plain, streamOf(tar, 1), { whiteouts: 'delete' });
    assert.equal(readFileSync(join(plain, 'etc/hostname'), 'utf8'), 'gz');
  });

  it('fails cleanly on a truncated or corrupt stream', async () => {
    const tar = await makeTar([{ name: 'big', content: randomBytes(100_000) }]);
    await assert.rejects(applyLayer(fresh('trunc'), streamOf(gzipSync(tar).subarray(0, 500)), { whiteouts: 'delete' }));
  });
});

describe('whiteouts', () => {
  function lower(dir: string): void {
    mkdirSync(join(dir, 'a/sub'), { recursive: true });
    writeFileSync(join(dir, 'a/x'), 'x');
    writeFileSync(join(dir, 'a/sub/y'), 'y');
    mkdirSync(join(dir, 'b'));
    writeFileSync(join(dir, 'b/z'), 'z');
    writeFileSync(join(dir, 'keep'), 'k');
  }

  it("'delete' removes whited-out paths and empties opaque directories of lower content only", async () => {
    const dir = fresh('wh-delete');
    lower(dir);
    const tar = await makeTar([
      { name: '.wh.b' },
      { name: 'a/', type: 'directory', mode: 0o755 },
      { name: 'a/sub/', type: 'directory', mode: 0o755 },
      { name: 'a/sub/new', content: 'from this layer' },
      { name: 'a/.wh..wh..opq' },
      { name: 'a/after', content: 'after the marker' },
    ]);
    await applyLayer(dir, streamOf(tar), { whiteouts: 'delete' });
    assert.deepEqual(tree(dir), ['a', 'a/after', 'a/sub', 'a/sub/new', 'keep']);
  });

  it("'overlay' writes 0/0 character devices and the opaque xattr", async () => {
    const dir = fresh('wh-overlay');
    const tar = await makeTar([{ name: '.wh.b' }, { name: 'a/', type: 'directory', mode: 0o755 }, { name: 'a/.wh..wh..opq' }, { name: 'a/n', content: 'n' }]);
    await applyLayer(dir, streamOf(tar), { whiteouts: 'overlay' });
    const wh = lstatSync(join(dir, 'b'));
    assert.ok(wh.isCharacterDevice());
    assert.equal(wh.rdev, 0);
    assert.equal(lgetxattr(join(dir, 'a'), 'trusted.overlay.opaque')?.toString(), 'y');

    // And back: the upper dir exports OCI whiteouts.
    const entries = (await listTar(await collect(exportOverlayUpper(dir)))).map((e) => e.header.name);
    // Upper-dir order: the whiteout sorts by the name it hides ("b").
    assert.deepEqual(entries, ['a', 'a/.wh..wh..opq', 'a/n', '.wh.b']);

    const lowerDir = fresh('wh-overlay-lower');
    lower(lowerDir);
    const found = await overlayChanges(dir, [lowerDir]);
    assert.deepEqual(found, [
      { path: '/a', kind: ChangeKind.Deleted },
      { path: '/a/n', kind: ChangeKind.Added },
      { path: '/b', kind: ChangeKind.Deleted },
    ]);
  });
});

describe('changes by tree comparison', () => {
  it('reports added, modified and deleted paths, and directories holding changes', async () => {
    const parent = fresh('ch-parent');
    mkdirSync(join(parent, 'etc'));
    writeFileSync(join(parent, 'etc/passwd'), 'root');
    writeFileSync(join(parent, 'etc/group'), 'root');
    writeFileSync(join(parent, 'same'), 'same');
    for (const p of ['etc/passwd', 'etc/group', 'same', 'etc']) utimesSync(join(parent, p), T, T);
    const layer = fresh('ch-layer');
    mkdirSync(join(layer, 'etc'));
    writeFileSync(join(layer, 'etc/passwd'), 'root:x:0:0');
    writeFileSync(join(layer, 'same'), 'same');
    writeFileSync(join(layer, 'new'), 'new');
    for (const p of ['same', 'etc']) utimesSync(join(layer, p), T, T);
    const found = await changes(layer, parent);
    assert.deepEqual(found, [
      { path: '/etc', kind: ChangeKind.Modified },
      { path: '/etc/group', kind: ChangeKind.Deleted },
      { path: '/etc/passwd', kind: ChangeKind.Modified },
      { path: '/new', kind: ChangeKind.Added },
    ]);
    assert.equal(await changesSize(layer, found), 'root:x:0:0'.length + 'new'.length);
    const names = (await listTar(await collect(exportChanges(layer, found)))).map((e) => e.header.name);
    assert.deepEqual(names, ['etc', 'etc/.wh.group', 'etc/passwd', 'new']);
  });
});
