import assert from 'node:assert/strict';
import { it } from 'node:test';
import v8 from 'node:v8';
import { withCollectionsPutOff } from '../src/collection-pacing.js';

it('puts full collections off while any layer transfer runs, and restores V8 after the last, failed or not', async () => {
  const set: string[] = [];
  const original = v8.setFlagsFromString;
  v8.setFlagsFromString = (flags: string) => {
    set.push(flags);
    original(flags);
  };
  try {
    let release!: () => void;
    const first = withCollectionsPutOff(() => new Promise<void>((resolve) => (release = resolve)));
    const second = withCollectionsPutOff(() => Promise.reject(new Error('layer failed')));
    await assert.rejects(second, /layer failed/);
    assert.deepEqual(set, ['--heap-growing-percent=300']);
    release();
    await first;
    assert.deepEqual(set, ['--heap-growing-percent=300', '--heap-growing-percent=0']);
    assert.equal(await withCollectionsPutOff(async () => 'done'), 'done');
    assert.deepEqual(set.slice(2), ['--heap-growing-percent=300', '--heap-growing-percent=0']);
  } finally {
    v8.setFlagsFromString = original;
  }
});
