import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { gzipSync } from 'node:zlib';
import { it } from 'node:test';
import { GzipInflater } from '../src/index.js';

/** Feeds `gz` in `inStep`-byte pieces through `outStep`-byte output windows; returns what came out and how many members ended. */
function inflateAll(gz: Buffer, inStep: number, outStep: number, options?: { checkCrc?: boolean }): { out: Buffer; members: number; pendingInput: number } {
  const inflater = new GzipInflater(options);
  const parts: Buffer[] = [];
  let members = 0;
  let at = 0;
  let inMember = true;
  try {
    const out = Buffer.alloc(outStep);
    while (at < gz.length) {
      if (!inMember) {
        inflater.reset();
        inMember = true;
      }
      const step = inflater.inflate(gz.subarray(at, at + inStep), out);
      at += step.read;
      parts.push(Buffer.from(out.subarray(0, step.written)));
      if (step.memberEnded) {
        members++;
        inMember = false;
      }
      assert.ok(step.read > 0 || step.written > 0 || step.memberEnded, 'every call makes progress');
    }
    return { out: Buffer.concat(parts), members, pendingInput: inMember ? 1 : 0 };
  } finally {
    inflater.close();
  }
}

it('inflates gzip through zlib in any split of input and output', () => {
  const data = Buffer.concat([randomBytes(300_000), Buffer.alloc(700_000, 'a')]);
  const gz = gzipSync(data);
  for (const [inStep, outStep] of [
    [1, 4096],
    [7_777, 13],
    [65_536, 1 << 20],
    [gz.length, 1 << 21],
  ] as const) {
    const r = inflateAll(gz, inStep, outStep);
    assert.ok(r.out.equals(data), `input ${inStep}, output ${outStep}`);
    assert.equal(r.members, 1);
  }
});

it('reads a multi-member gzip stream member by member', () => {
  const a = randomBytes(50_000);
  const b = Buffer.from('second member\n'.repeat(1000));
  const r = inflateAll(Buffer.concat([gzipSync(a), gzipSync(b)]), 4096, 8192);
  assert.ok(r.out.equals(Buffer.concat([a, b])));
  assert.equal(r.members, 2);
});

it("reports corrupt data with zlib's own reason", () => {
  const gz = gzipSync(Buffer.from('hello world\n'.repeat(500)));
  const badCrc = Buffer.from(gz);
  badCrc[badCrc.length - 6] ^= 0xff;
  assert.throws(() => inflateAll(badCrc, 1024, 1024), /^Error: gzip: incorrect data check$/);
  assert.throws(() => inflateAll(Buffer.from('plain tar, not gzip'), 1024, 1024), /^Error: gzip: incorrect header check$/);
});

it('leaves the trailer unchecked when told to, in every member, and still refuses corrupt data', () => {
  const a = Buffer.from('first member\n'.repeat(300));
  const b = randomBytes(5000);
  const members = [gzipSync(a), gzipSync(b)];
  for (const member of members) member[member.length - 6] ^= 0xff; // CRC
  members[1]![members[1]!.length - 2] ^= 0xff; // length
  const both = Buffer.concat(members);
  assert.throws(() => inflateAll(both, 700, 1024), /incorrect data check/);
  const r = inflateAll(both, 700, 1024, { checkCrc: false });
  assert.ok(r.out.equals(Buffer.concat([a, b])));
  assert.equal(r.members, 2);
  const badData = gzipSync(a);
  badData[12] ^= 0xff;
  assert.throws(() => inflateAll(badData, 1024, 1024, { checkCrc: false }), /^Error: gzip: /);
});

it('leaves a truncated stream inside its member', () => {
  const gz = gzipSync(randomBytes(10_000));
  const r = inflateAll(gz.subarray(0, gz.length - 20), 1024, 1024);
  assert.equal(r.members, 0);
  assert.equal(r.pendingInput, 1);
});

it('refuses use after close', () => {
  const inflater = new GzipInflater();
  inflater.close();
  inflater.close();
  assert.throws(() => inflater.inflate(Buffer.alloc(1), Buffer.alloc(1)), /closed/);
});
