import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, readFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { MNT, MS, SyscallError, mount, umount } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'tsengine-linux-'));
after(() => rmSync(dir, { recursive: true, force: true }));

it('bind-mounts and unmounts through libc', () => {
  const src = join(dir, 'src');
  const dst = join(dir, 'dst');
  mkdirSync(src);
  mkdirSync(dst);
  writeFileSync(join(src, 'f'), 'hello');
  mount(src, dst, null, MS.BIND);
  try {
    assert.equal(readFileSync(join(dst, 'f'), 'utf8'), 'hello');
  } finally {
    umount(dst, MNT.DETACH);
  }
  assert.throws(() => readFileSync(join(dst, 'f')), /ENOENT/);
});

it('turns errno into a named SyscallError', () => {
  assert.throws(
    () => umount(join(dir, 'not-a-mount-point')),
    (err: unknown) => err instanceof SyscallError && (err.code === 'EINVAL' || err.code === 'ENOENT') && /umount2/.test(err.message),
  );
});
