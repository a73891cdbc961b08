import assert from 'node:assert/strict';
import { lstatSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { S_IF, SyscallError, lgetxattr, llistxattr, lremovexattr, lsetxattr, major, makedev, minor, mknod } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'tsengine-linux-xattr-'));
after(() => rmSync(dir, { recursive: true, force: true }));

it('sets, lists, reads and removes binary xattrs without following symlinks', () => {
  const file = join(dir, 'f');
  writeFileSync(file, '');
  const value = Buffer.from([0, 1, 2, 0xff]);
  lsetxattr(file, 'user.bin', value);
  lsetxattr(file, 'user.text', 'hello');
  assert.deepEqual(llistxattr(file).sort(), ['user.bin', 'user.text']);
  assert.deepEqual(lgetxattr(file, 'user.bin'), value);
  assert.equal(lgetxattr(file, 'user.missing'), null);
  lremovexattr(file, 'user.text');
  assert.deepEqual(llistxattr(file), ['user.bin']);
  symlinkSync(file, join(dir, 'link'));
  assert.deepEqual(llistxattr(join(dir, 'link')), [], 'the symlink itself has no xattrs');
  assert.throws(() => lsetxattr(join(dir, 'nope'), 'user.a', 'x'), (err: unknown) => err instanceof SyscallError && err.code === 'ENOENT');
});

it('creates device nodes and fifos with glibc dev_t encoding', () => {
  const dev = makedev(259, 70000);
  assert.equal(major(dev), 259);
  assert.equal(minor(dev), 70000);
  mknod(join(dir, 'null'), S_IF.CHR | 0o666, makedev(1, 3));
  const st = lstatSync(join(dir, 'null'));
  assert.ok(st.isCharacterDevice());
  assert.equal(st.rdev, 0x103);
  mknod(join(dir, 'fifo'), S_IF.FIFO | 0o600);
  assert.ok(lstatSync(join(dir, 'fifo')).isFIFO());
  assert.throws(() => mknod(join(dir, 'fifo'), S_IF.FIFO | 0o600), (err: unknown) => err instanceof SyscallError && err.code === 'EEXIST');
});
