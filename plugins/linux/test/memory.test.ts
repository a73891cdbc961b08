import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { it } from 'node:test';
import koffi from 'koffi';
import { alignedBuffer, libc, releaseFreeHeap } from '../src/index.js';

const malloc = libc.func('void *malloc(size_t size)');
const memset = libc.func('void *memset(void *s, int c, size_t n)');
const free = libc.func('void free(void *ptr)');

function rssKiB(): number {
  return Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]);
}

it('gives freed C heap memory back to the kernel', () => {
  // 96 MiB in blocks below glibc's mmap threshold, so that they come from the heap, all touched.
  const blocks = Array.from({ length: 1536 }, () => {
    const block = malloc(64 * 1024);
    memset(block, 1, 64 * 1024);
    return block;
  });
  // Freed but the last, which keeps free() from trimming the heap's top by itself.
  for (const block of blocks.slice(0, -1)) free(block);
  const before = rssKiB();
  assert.equal(releaseFreeHeap(), true);
  const released = before - rssKiB();
  free(blocks.at(-1));
  assert.ok(released > 64 * 1024, `only ${released} KiB of the 96 MiB freed went back`);
});

it('cuts buffers that start on the alignment asked for', () => {
  for (const alignment of [512, 4096, 65536]) {
    for (let i = 0; i < 8; i++) {
      const buffer = alignedBuffer(1024 * 1024 + i, alignment);
      assert.equal(buffer.length, 1024 * 1024 + i);
      assert.equal(Number((koffi.address(buffer) as bigint) % BigInt(alignment)), 0, `alignment ${alignment}`);
    }
  }
});
