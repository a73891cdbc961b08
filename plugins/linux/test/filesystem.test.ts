import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { MNT, backingFilesystem, mount, spreadSubdirectories, umount } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'tsengine-linux-fs-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** The attribute letters lsattr shows for a directory itself. */
function attributes(path: string): string {
  return execFileSync('lsattr', ['-d', path], { encoding: 'utf8' }).split(' ')[0]!;
}

it('marks a directory on ext4 to spread its subdirectories (chattr +T); keeps its other flags', async (t) => {
  if ((await backingFilesystem(dir)) !== 'extfs') return t.skip(`${dir} is not on ext4`);
  const home = join(dir, 'home');
  mkdirSync(home);
  execFileSync('chattr', ['+A', home]);
  assert.doesNotMatch(attributes(home), /T/);
  assert.equal(spreadSubdirectories(home), true);
  assert.match(attributes(home), /T/);
  assert.match(attributes(home), /A/);
  assert.equal(spreadSubdirectories(home), true, 'again: already marked');
});

it('answers false where the file system has no such flag, and throws for a missing directory', () => {
  const tmpfs = join(dir, 'tmpfs');
  mkdirSync(tmpfs);
  mount('tmpfs', tmpfs, 'tmpfs', 0, 'size=1m');
  try {
    assert.equal(spreadSubdirectories(tmpfs), false);
  } finally {
    umount(tmpfs, MNT.DETACH);
  }
  assert.throws(() => spreadSubdirectories(join(dir, 'missing')), /ENOENT/);
});
