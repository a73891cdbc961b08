import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, readdirSync } from 'node:fs';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { gzipSync } from 'node:zlib';
import { type GunzipStream, GunzipWorker } from '../src/index.js';

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

/** Field 41 of /proc/self/task/TID/stat (counted after the command's parentheses). */
function schedulingPolicy(tid: string): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
}

function sha256(data: Buffer): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

/** Splits a buffer into chunks of the given sizes, over and over. */
function split(data: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, i = 0; at < data.length; i++) {
    const size = sizes[i % sizes.length]!;
    out.push(data.subarray(at, at + size));
    at += size;
  }
  return out;
}

/** Writes the chunks with backpressure and collects the output; rejects with the stream's error. */
async function run(stream: GunzipStream, chunks: Buffer[]): Promise<Buffer> {
  const out: Buffer[] = [];
  await Promise.all([
    pipeline(Readable.from(chunks), stream),
    (async () => {
      for await (const chunk of stream) out.push(chunk as Buffer);
    })(),
  ]);
  return Buffer.concat(out);
}

describe('gunzip worker', () => {
  const worker = new GunzipWorker(100);
  after(() => worker.close());

  it('inflates and hashes like gunzip and sha256, whatever the chunking', async () => {
    const data = Buffer.concat([randomBytes(3 * 1024 * 1024), Buffer.alloc(5 * 1024 * 1024 + 17, 'x')]);
    const gz = gzipSync(data);
    for (const sizes of [[1, 100, 65_536], [5 * 1024 * 1024], [3_000_000, 1]]) {
      const stream = worker.gunzip();
      const out = await run(stream, split(gz, sizes));
      assert.ok(out.equals(data), `chunks of ${sizes.join(', ')}`);
      assert.equal(await stream.digest(), sha256(data));
      assert.equal(stream.bytes, data.length);
    }
  });

  it('keeps concurrent streams apart, and reads multi-member gzip whole', async () => {
    const datas = Array.from({ length: 5 }, (_, i) => randomBytes(100_000 * (i + 1)));
    const results = await Promise.all(
      datas.map(async (data, i) => {
        const gz = i === 4 ? Buffer.concat([gzipSync(data.subarray(0, 1000)), gzipSync(data.subarray(1000))]) : gzipSync(data);
        const stream = worker.gunzip();
        return { out: await run(stream, split(gz, [30_000 + i])), digest: await stream.digest() };
      }),
    );
    results.forEach((r, i) => {
      assert.ok(r.out.equals(datas[i]!), `stream ${i}`);
      assert.equal(r.digest, sha256(datas[i]!));
    });
  });

  it('fails a truncated, corrupt or trailing-garbage stream, and its digest', async () => {
    const data = randomBytes(200_000);
    const gz = gzipSync(data);
    const corrupt = Buffer.from(gz);
    corrupt[corrupt.length - 8] ^= 0xff; // the CRC
    const cases: Array<[string, Buffer, RegExp]> = [
      ['truncated', gz.subarray(0, gz.length - 100), /gzip: unexpected end of data \(the layer is truncated\)$/],
      ['empty', Buffer.alloc(0), /gzip: unexpected end of data/],
      ['corrupt', corrupt, /gzip: incorrect data check$/],
      ['garbage after the end', Buffer.concat([gz, Buffer.from('not gzip')]), /gzip: incorrect header check$/],
    ];
    for (const [name, input, message] of cases) {
      const stream = worker.gunzip();
      await assert.rejects(run(stream, input.length ? [input] : []), message, name);
      await assert.rejects(stream.digest(), message, name);
    }
  });

  it('inflates no further ahead than its reader (a gzip bomb stalls, it does not fill memory)', async () => {
    const size = 64 * 1024 * 1024;
    const bomb = gzipSync(Buffer.alloc(size));
    const stream = worker.gunzip();
    stream.end(bomb);
    // A reader that takes one chunk and then stalls.
    let release!: () => void;
    let total = 0;
    const reader = new Writable({
      highWaterMark: 1,
      write(chunk: Buffer, _encoding, done) {
        total += chunk.length;
        if (total === chunk.length) release = done;
        else done();
      },
    });
    const read = pipeline(stream, reader);
    await sleep(500);
    // Four chunks on their way, what the readable side buffers and the one the reader holds, of 64.
    assert.ok(stream.bytes <= 8 * 1024 * 1024, `${stream.bytes} bytes inflated for a stalled reader`);
    release();
    await read;
    assert.equal(total, size);
    assert.equal(await stream.digest(), sha256(Buffer.alloc(size)));
  });

  it('drops a destroyed stream, then ends its thread when idle; close fails open streams', async () => {
    const stream = worker.gunzip();
    stream.write(gzipSync(randomBytes(100_000)).subarray(0, 50_000));
    stream.destroy();
    await assert.rejects(stream.digest(), /closed before its end/);
    const deadline = Date.now() + 5000;
    while (worker.running && Date.now() < deadline) await sleep(20);
    assert.equal(worker.running, false, 'the thread ends after its quiet spell');

    const open = worker.gunzip();
    assert.equal(worker.running, true);
    const failed = new Promise<Error>((resolve) => open.once('error', resolve));
    await worker.close();
    assert.match((await failed).message, /the gunzip worker was closed/);
    // Usable again afterwards: the next stream starts a new thread.
    const data = randomBytes(1000);
    assert.ok((await run(worker.gunzip(), [gzipSync(data)])).equals(data));
  });

  it('passes input that is not gzip through when asked to, with its digest; gzip is still inflated', async () => {
    const plain = randomBytes(2 * 1024 * 1024 + 5);
    for (const sizes of [[1, 1, 70_000], [3 * 1024 * 1024]]) {
      const stream = worker.gunzip({ plainToo: true });
      assert.ok((await run(stream, split(plain, sizes))).equals(plain), `chunks of ${sizes.join(', ')}`);
      assert.equal(await stream.digest(), sha256(plain));
    }
    const inflated = worker.gunzip({ plainToo: true });
    assert.ok((await run(inflated, split(gzipSync(plain), [1, 50_000]))).equals(plain));
    const empty = worker.gunzip({ plainToo: true });
    assert.equal((await run(empty, [])).length, 0);
    assert.equal(await empty.digest(), sha256(Buffer.alloc(0)));
    // Without plainToo, the same input is an error.
    await assert.rejects(run(worker.gunzip(), [plain]), /gzip/);
  });

  it('hashes its input when asked to, before the input ends (a registry blob checked before its end is let through)', async () => {
    const data = randomBytes(6 * 1024 * 1024 + 3);
    const gz = gzipSync(data, { level: 1 });
    for (const [input, options] of [[gz, {}], [data, { plainToo: true }]] as const) {
      const stream = worker.gunzip({ ...options, hashInput: true });
      const out: Buffer[] = [];
      const reading = (async () => {
        for await (const chunk of stream) out.push(chunk as Buffer);
      })();
      for (const chunk of split(input, [1, 70_000, 1024 * 1024])) await new Promise<void>((resolve, reject) => stream.write(chunk, (err) => (err ? reject(err) : resolve())));
      assert.equal(await stream.inputDigest(), sha256(input));
      stream.end();
      await reading;
      assert.ok(Buffer.concat(out).equals(data));
      assert.equal(await stream.digest(), sha256(data));
    }
    const unasked = worker.gunzip();
    await assert.rejects(unasked.inputDigest(), /not opened to hash its input/);
    unasked.destroy();
  });

  it("leaves gzip's CRC unchecked when asked to; the output's digest still tells", async () => {
    const data = randomBytes(300_000);
    const gz = gzipSync(data);
    gz[gz.length - 6] ^= 0xff;
    await assert.rejects(run(worker.gunzip(), [gz]), /incorrect data check/);
    const unchecked = worker.gunzip({ checkCrc: false });
    assert.ok((await run(unchecked, split(gz, [4096]))).equals(data));
    assert.equal(await unchecked.digest(), sha256(data));
  });

  it('lets a writer run as far ahead of its reader as it was allowed', async () => {
    const data = randomBytes(12 * 1024 * 1024);
    const gz = gzipSync(data, { level: 0 });
    const pieces = split(gz, [1024 * 1024]);
    const accepted = (stream: GunzipStream) => pieces.findIndex((piece) => !stream.write(piece));
    // Nobody reads yet. By default the writer is asked to wait once the 4 MiB ring is full.
    const bounded = worker.gunzip();
    const taken = accepted(bounded);
    assert.ok(taken >= 0 && taken <= 6, `the writer was asked to wait after ${taken} MiB`);
    bounded.destroy();
    const ahead = worker.gunzip({ aheadBytes: 16 * 1024 * 1024 });
    assert.equal(accepted(ahead), -1);
    ahead.end();
    const out: Buffer[] = [];
    for await (const chunk of ahead) out.push(chunk as Buffer);
    assert.ok(Buffer.concat(out).equals(data));
  });

  it('runs its thread under SCHED_BATCH, so that waking it does not preempt the main thread', async () => {
    const data = randomBytes(1000);
    assert.ok((await run(worker.gunzip(), [gzipSync(data)])).equals(data));
    const policies = readdirSync('/proc/self/task').map((tid) => ({ tid: Number(tid), policy: schedulingPolicy(tid) }));
    assert.equal(policies.find((t) => t.tid === process.pid)?.policy, SCHED_OTHER);
    const helpers = policies.filter((t) => t.tid !== process.pid);
    assert.deepEqual(helpers.filter((t) => t.policy !== SCHED_BATCH), []);
  });
});
