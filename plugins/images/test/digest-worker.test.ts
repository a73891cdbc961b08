import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { DigestWorker } from '../src/index.js';

function expected(chunks: Buffer[]): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return 'sha256:' + hash.digest('hex');
}

/** Feeds the chunks in order, waiting whenever the worker's ring is full. */
async function feed(hash: ReturnType<DigestWorker['hash']>, chunks: Buffer[]): Promise<void> {
  for (const chunk of chunks) await hash.update(chunk);
}

describe('digest worker', () => {
  it('hashes like createHash, with chunks of every size and the ring wrapping many times', async () => {
    // A small ring: most chunks wrap it, wait for room, or are split into slices.
    const digests = new DigestWorker(64 * 1024);
    try {
      const sizes = [0, 1, 7, 511, 4096, 16_384, 16_385, 40_000, 65_536, 200_000, 3];
      const chunks = Array.from({ length: 60 }, (_, i) => randomBytes(sizes[i % sizes.length]!));
      const hash = digests.hash();
      await feed(hash, chunks);
      assert.equal(await hash.digest(), expected(chunks));
    } finally {
      await digests.close();
    }
  });

  it('keeps concurrent hashes apart', async () => {
    const digests = new DigestWorker(256 * 1024);
    try {
      const streams = Array.from({ length: 5 }, () => Array.from({ length: 40 }, () => randomBytes(1 + Math.floor(Math.random() * 50_000))));
      const results = await Promise.all(
        streams.map(async (chunks) => {
          const hash = digests.hash();
          await feed(hash, chunks);
          return hash.digest();
        }),
      );
      assert.deepEqual(results, streams.map(expected));
    } finally {
      await digests.close();
    }
  });

  it('hashes nothing to the digest of the empty string, and a discarded hash affects no other', async () => {
    const digests = new DigestWorker();
    try {
      const dropped = digests.hash();
      dropped.update(randomBytes(1000));
      dropped.discard();
      const empty = digests.hash();
      assert.equal(await empty.digest(), expected([]));
      await assert.rejects(empty.digest(), /already taken/);
    } finally {
      await digests.close();
    }
  });

  it('ends its thread when idle and starts a new one on the next use', async () => {
    const digests = new DigestWorker(1024 * 1024, 50);
    try {
      const first = digests.hash();
      await feed(first, [Buffer.from('a')]);
      assert.equal(await first.digest(), expected([Buffer.from('a')]));
      assert.equal(digests.running, true);
      const deadline = Date.now() + 5000;
      while (digests.running && Date.now() < deadline) await sleep(20);
      assert.equal(digests.running, false, 'the thread ended after the quiet spell');
      const second = digests.hash();
      await feed(second, [Buffer.from('b')]);
      assert.equal(await second.digest(), expected([Buffer.from('b')]));
    } finally {
      await digests.close();
    }
  });

  it('fails the open hashes when closed', async () => {
    const digests = new DigestWorker();
    const hash = digests.hash();
    hash.update(randomBytes(10));
    const settled = hash.digest().then(
      () => 'answered',
      (err: Error) => err.message,
    );
    await digests.close();
    assert.equal(await settled, 'the digest worker was closed');
    assert.equal(digests.running, false);
  });
});
