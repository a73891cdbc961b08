import assert from 'node:assert/strict';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { LogEntry } from '@tsengine/core';
import { JsonFileLogDriver, timeSeconds } from '../src/driver.js';
import { parseJsonFileOptions, parseSize } from '../src/options.js';

const root = mkdtempSync(join(tmpdir(), 'tsengine-jsonfile-rot-'));
after(() => rmSync(root, { recursive: true, force: true }));

function driverFor(id: string): JsonFileLogDriver {
  mkdirSync(join(root, id), { recursive: true });
  return new JsonFileLogDriver(root, (cid, message, err) => {
    throw new Error(`unexpected driver error for ${cid}: ${message}: ${String(err)}`);
  });
}

async function collect(it: AsyncIterable<LogEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of it) out.push(e.line.toString());
  return out;
}

function logFiles(id: string): string[] {
  return readdirSync(join(root, id)).sort();
}

function linesIn(path: string): string[] {
  const raw = readFileSync(path);
  const text = (path.endsWith('.gz') ? gunzipSync(raw) : raw).toString('utf8');
  return text
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { log: string }).log);
}

/** One line per write, as a shell loop writes them: "line 1\n" … "line N\n". */
function writeLines(w: { write(s: 'stdout' | 'stderr', c: Buffer): void }, from: number, to: number): void {
  for (let i = from; i <= to; i++) w.write('stdout', Buffer.from(`line ${i}\n`));
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => `line ${from + k}\n`);

describe('json-file options', () => {
  it("parses Docker's sizes (decimal units, as go-units' FromHumanSize)", () => {
    assert.equal(parseSize('10'), 10);
    assert.equal(parseSize('10k'), 10_000);
    assert.equal(parseSize('10K'), 10_000);
    assert.equal(parseSize('1.5m'), 1_500_000);
    assert.equal(parseSize('1g'), 1_000_000_000);
    assert.equal(parseSize('2kb'), 2000);
    assert.equal(parseSize('2KiB'), 2000);
    assert.equal(parseSize('10 m'), 10_000_000);
    assert.equal(parseSize('1k', true), 1024);
    assert.throws(() => parseSize('abc'), { message: "invalid size: 'abc'" });
    assert.throws(() => parseSize('-1'), { message: "invalid size: '-1'" });
    assert.throws(() => parseSize('10x'), { message: "invalid suffix: 'x'" });
    assert.throws(() => parseSize('10kbb'), { message: "invalid suffix: 'kbb'" });
    assert.throws(() => parseSize('1.2.3'), { message: 'strconv.ParseFloat: parsing "1.2.3": invalid syntax' });
  });

  it("accepts Docker's json-file keys and refuses others and bad values with Docker's messages", () => {
    assert.deepEqual(parseJsonFileOptions({}), { maxSize: -1, maxFile: 1, compress: false });
    assert.deepEqual(parseJsonFileOptions({ 'max-size': '1k', 'max-file': '3', compress: 'true' }), { maxSize: 1000, maxFile: 3, compress: true });
    // Accepted and ignored, as the common attrs options; max-file alone is accepted and inert, as in Docker.
    assert.deepEqual(parseJsonFileOptions({ labels: 'a,b', 'labels-regex': '^a', env: 'X', 'env-regex': '^X', tag: '{{.Name}}', 'max-file': '4' }), { maxSize: -1, maxFile: 4, compress: false });
    assert.deepEqual(parseJsonFileOptions({ mode: 'non-blocking', 'max-buffer-size': '4m' }), { maxSize: -1, maxFile: 1, compress: false });
    const refusals: Array<[Record<string, string>, string]> = [
      [{ foo: 'bar' }, "unknown log opt 'foo' for json-file log driver"],
      [{ 'max-file': '0', 'max-size': '1k' }, 'max-file cannot be less than 1'],
      [{ 'max-file': 'x' }, 'strconv.Atoi: parsing "x": invalid syntax'],
      [{ 'max-size': '0' }, 'max-size must be a positive number'],
      [{ 'max-size': 'lots' }, "invalid size: 'lots'"],
      [{ 'max-size': '-1' }, "invalid size: '-1'"],
      [{ compress: 'maybe' }, 'strconv.ParseBool: parsing "maybe": invalid syntax'],
      [{ compress: 'true', 'max-size': '1k' }, 'compress cannot be true when max-file is less than 2 or max-size is not set'],
      [{ compress: 'true', 'max-file': '3' }, 'compress cannot be true when max-file is less than 2 or max-size is not set'],
      [{ mode: 'fast' }, 'logger: logging mode not supported: fast'],
      [{ 'max-buffer-size': '4m' }, "logger: max-buffer-size option is only supported with 'mode=non-blocking'"],
    ];
    for (const [options, message] of refusals) {
      assert.throws(() => parseJsonFileOptions(options), (err: Error & { kind?: string }) => err.message === message && err.kind === 'invalid', JSON.stringify(options));
    }
    const driver = driverFor('validate');
    assert.throws(() => driver.validateOptions({ foo: '1' }), { message: "unknown log opt 'foo' for json-file log driver" });
    assert.throws(() => driver.open('validate', { 'max-file': '0' }), { message: 'max-file cannot be less than 1' });
  });
});

describe('json-file rotation', () => {
  it('rotates at max-size into <id>-json.log.N, keeps max-file files and reads them oldest first', async () => {
    const driver = driverFor('r1');
    const w = driver.open('r1', { 'max-size': '1k', 'max-file': '3' });
    writeLines(w, 1, 500);
    w.close();
    assert.deepEqual(logFiles('r1'), ['r1-json.log', 'r1-json.log.1', 'r1-json.log.2']);
    const base = join(root, 'r1', 'r1-json.log');
    // Docker rotates before the entry that finds the file at or past max-size: at most one entry over.
    const entryBytes = Buffer.byteLength(readFileSync(`${base}.1`, 'utf8').split('\n')[0]!) + 1;
    for (const f of [`${base}.2`, `${base}.1`]) {
      const size = statSync(f).size;
      assert.ok(size >= 1000 && size < 1000 + entryBytes, `${f} is ${size} bytes`);
    }
    assert.ok(statSync(base).size <= 1000 + entryBytes);
    const kept = [...linesIn(`${base}.2`), ...linesIn(`${base}.1`), ...linesIn(base)];
    const first = Number(/line (\d+)/.exec(kept[0]!)![1]);
    assert.ok(first > 1, 'the oldest lines are gone');
    assert.deepEqual(kept, range(first, 500));
    assert.deepEqual(await collect(driver.read('r1', {})), kept);
    assert.deepEqual(await collect(driver.read('r1', { tail: 5 })), range(496, 500));
    // A tail longer than the current file reaches into the rotated ones.
    const inCurrent = linesIn(base).length;
    assert.deepEqual(await collect(driver.read('r1', { tail: inCurrent + 3 })), kept.slice(-(inCurrent + 3)));
    assert.deepEqual(await collect(driver.read('r1', { tail: 100_000 })), kept);
    await driver.remove('r1');
    assert.deepEqual(logFiles('r1'), []);
  });

  it('applies since and until across rotated files', async () => {
    const driver = driverFor('r7');
    const w = driver.open('r7', { 'max-size': '300', 'max-file': '50' });
    writeLines(w, 1, 20);
    // since/until are seconds as doubles (sub-microsecond steps blur): keep the two halves apart.
    await new Promise((r) => setTimeout(r, 5));
    writeLines(w, 21, 40);
    w.close();
    const entries: LogEntry[] = [];
    for await (const e of driver.read('r7', {})) entries.push(e);
    const timeOf = (n: number) => timeSeconds(entries.find((e) => e.line.toString() === `line ${n}\n`)!.time);
    assert.ok(!linesIn(join(root, 'r7', 'r7-json.log')).includes('line 21\n'), 'line 21 is in a rotated file');
    assert.deepEqual(await collect(driver.read('r7', { since: timeOf(21) })), range(21, 40));
    assert.deepEqual(await collect(driver.read('r7', { until: timeOf(20) })), range(1, 20));
    assert.deepEqual(await collect(driver.read('r7', { since: timeOf(21), tail: 2 })), range(39, 40));
  });

  it('reads a tail backwards across blocks, records longer than a block and damaged lines', async () => {
    const driver = driverFor('r8');
    const w = driver.open('r8');
    writeLines(w, 1, 3000);
    // Control bytes become \u00XX escapes: this 16 KiB line is a ~96 KiB record, longer than a read block.
    const wide = Buffer.alloc(16 * 1024 - 1, 1);
    w.write('stdout', Buffer.concat([wide, Buffer.from('\n')]));
    writeLines(w, 3001, 3002);
    w.close();
    // A torn last record (a crash mid-write) and a line that is not JSON are skipped, not counted.
    appendFileSync(driver.path('r8'), 'not json\n{"log":"torn');
    const all = [...range(1, 3000), `${wide.toString()}\n`, ...range(3001, 3002)];
    assert.deepEqual(await collect(driver.read('r8', {})), all);
    for (const tail of [1, 2, 3, 4, 1500, 2999, 3003, 5000]) assert.deepEqual(await collect(driver.read('r8', { tail })), all.slice(-tail), `tail ${tail}`);
  });

  it('with max-file 1 starts the file afresh at max-size', async () => {
    const driver = driverFor('r2');
    const w = driver.open('r2', { 'max-size': '500' });
    writeLines(w, 1, 100);
    w.close();
    assert.deepEqual(logFiles('r2'), ['r2-json.log']);
    const lines = await collect(driver.read('r2', {}));
    assert.ok(lines.length > 0 && lines.length < 20, `${lines.length} lines kept`);
    assert.deepEqual(lines, range(101 - lines.length, 100));
  });

  it('keeps appending across runs and rotates with the options of each run', async () => {
    const driver = driverFor('r3');
    const first = driver.open('r3');
    writeLines(first, 1, 50);
    first.close();
    // The file is already past max-size: the first entry of the next run rotates it.
    const second = driver.open('r3', { 'max-size': '100', 'max-file': '2' });
    writeLines(second, 51, 51);
    second.close();
    assert.deepEqual(linesIn(join(root, 'r3', 'r3-json.log.1')), range(1, 50));
    assert.deepEqual(linesIn(join(root, 'r3', 'r3-json.log')), range(51, 51));
    assert.deepEqual(await collect(driver.read('r3', {})), range(1, 51));
  });

  it('gzips rotated files with compress and reads them back', async () => {
    const driver = driverFor('r4');
    const w = driver.open('r4', { 'max-size': '1k', 'max-file': '4', compress: 'true' });
    writeLines(w, 1, 300);
    // Reads while compressions run see each rotated file once, plain or gzipped.
    const during = await collect(driver.read('r4', {}));
    w.close();
    await driver.idle();
    assert.deepEqual(logFiles('r4'), ['r4-json.log', 'r4-json.log.1.gz', 'r4-json.log.2.gz', 'r4-json.log.3.gz']);
    const base = join(root, 'r4', 'r4-json.log');
    const kept = [...linesIn(`${base}.3.gz`), ...linesIn(`${base}.2.gz`), ...linesIn(`${base}.1.gz`), ...linesIn(base)];
    const first = Number(/line (\d+)/.exec(kept[0]!)![1]);
    assert.deepEqual(kept, range(first, 300));
    assert.deepEqual(during, kept);
    assert.deepEqual(await collect(driver.read('r4', {})), kept);
    assert.deepEqual(await collect(driver.read('r4', { tail: 2 })), range(299, 300));
    await driver.remove('r4');
    assert.deepEqual(logFiles('r4'), []);
  });

  it('follows across rotations without losing or doubling a line', async () => {
    const driver = driverFor('r5');
    const w = driver.open('r5', { 'max-size': '300', 'max-file': '2' });
    writeLines(w, 1, 3);
    const reading = collect(driver.read('r5', { follow: true, tail: 2 }));
    await new Promise((r) => setTimeout(r, 20));
    writeLines(w, 4, 60);
    w.close();
    assert.deepEqual(await reading, range(2, 60));
    assert.ok(existsSync(join(root, 'r5', 'r5-json.log.1')));
  });

  it('a reader holding files keeps its snapshot while the writer rotates them away', async () => {
    const driver = driverFor('r6');
    const w = driver.open('r6', { 'max-size': '200', 'max-file': '2' });
    writeLines(w, 1, 20);
    const iterator = driver.read('r6', {})[Symbol.asyncIterator]();
    const firstLine = await iterator.next();
    writeLines(w, 21, 200);
    w.close();
    const rest: string[] = [];
    for (let r = await iterator.next(); !r.done; r = await iterator.next()) rest.push(r.value.line.toString());
    const seen = [firstLine.value!.line.toString(), ...rest];
    const first = Number(/line (\d+)/.exec(seen[0]!)![1]);
    assert.deepEqual(seen, range(first, first + seen.length - 1));
    assert.ok(seen.at(-1) !== 'line 200\n', 'the snapshot ends where the read began');
  });
});
