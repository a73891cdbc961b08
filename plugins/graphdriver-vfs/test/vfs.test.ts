import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { backingFilesystem } from '@tsengine/linux';
import { VfsDriver } from '../src/index.js';

const base = mkdtempSync(join(tmpdir(), 'tsengine-vfs-'));
after(() => rmSync(base, { recursive: true, force: true }));

it('marks its layers directory on ext4 so that each layer goes to a block group of its own (chattr +T)', async (t) => {
  if ((await backingFilesystem(base)) !== 'extfs') return t.skip(`${base} is not on ext4`);
  const driver = new VfsDriver(base);
  await driver.init();
  assert.match(execFileSync('lsattr', ['-d', join(base, 'dir')], { encoding: 'utf8' }).split(' ')[0]!, /T/);
});
