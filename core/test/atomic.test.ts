import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { writeFileAtomic, writeJsonAtomic } from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'tsengine-atomic-'));
after(() => rmSync(dir, { recursive: true, force: true }));

it('replaces a file atomically and leaves no temp files', async () => {
  const file = join(dir, 'sub', 'state.json');
  await writeJsonAtomic(file, { a: 1 });
  await writeFileAtomic(file, 'second');
  assert.equal(readFileSync(file, 'utf8'), 'second');
  assert.deepEqual(readdirSync(join(dir, 'sub')), ['state.json']);
});
