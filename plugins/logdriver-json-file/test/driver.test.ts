import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { LogEntry } from '@tsengine/core';
import { JsonFileLogDriver, timeSeconds } from '../src/driver.js';

const root = mkdtempSync(join(tmpdir(), 'tsengine-jsonfile-'));
after(() => rmSync(root, { recursive: true, force: true }));

function driverFor(id: string): JsonFileLogDriver {
  mkdirSync(join(root, id), { recursive: true });
  return new JsonFileLogDriver(root);
}

async function collect(it: AsyncIterable<LogEntry>): Promise<string[]> {
  const out: string[] = [];
  for await (const e of it) out.push(`${e.stream}:${e.line.toString()}`);
  return out;
}

describe('json-file log driver', () => {
  it("writes Docker's JSON lines, split at newlines, partial lines flushed at close", async () => {
    const driver = driverFor('c1');
    const w = driver.open('c1');
    // since/until are seconds as doubles (microsecond precision at today's epoch): keep the entries apart.
    const pause = () => new Promise((r) => setTimeout(r, 5));
    w.write('stdout', Buffer.from('a\nb'));
    await pause();
    w.write('stderr', Buffer.from('err\n'));
    await pause();
    w.write('stdout', Buffer.from('c\n'));
    await pause();
    w.write('stdout', Buffer.from('d'));
    w.close();
    const lines = readFileSync(driver.path('c1'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { log: string; stream: string; time: string });
    assert.deepEqual(
      lines.map((l) => [l.stream, l.log]),
      [
        ['stdout', 'a\n'],
        ['stderr', 'err\n'],
        ['stdout', 'bc\n'],
        ['stdout', 'd'],
      ],
    );
    assert.equal(driver.path('c1'), join(root, 'c1', 'c1-json.log'));
    for (let i = 1; i < lines.length; i++) assert.ok(lines[i]!.time > lines[i - 1]!.time, 'times increase strictly');
    assert.deepEqual(await collect(driver.read('c1', { tail: 2 })), ['stdout:bc\n', 'stdout:d']);
    assert.deepEqual(await collect(driver.read('c1', { tail: 0 })), []);
    const third = timeSeconds(lines[2]!.time);
    assert.deepEqual(await collect(driver.read('c1', { since: third })), ['stdout:bc\n', 'stdout:d']);
    assert.deepEqual(await collect(driver.read('c1', { until: third })), ['stdout:a\n', 'stderr:err\n', 'stdout:bc\n']);
  });

  it('follows new entries until the writer closes, appending across runs', async () => {
    const driver = driverFor('c2');
    const first = driver.open('c2');
    first.write('stdout', Buffer.from('run1\n'));
    first.close();
    const w = driver.open('c2');
    const reading = collect(driver.read('c2', { follow: true }));
    await new Promise((r) => setTimeout(r, 20));
    w.write('stdout', Buffer.from('live1\n'));
    w.write('stdout', Buffer.from('live2\n'));
    w.close();
    assert.deepEqual(await reading, ['stdout:run1\n', 'stdout:live1\n', 'stdout:live2\n']);
  });

  it('ends a follow at the signal and forgets the file on remove', async () => {
    const driver = driverFor('c3');
    const w = driver.open('c3');
    const controller = new AbortController();
    const reading = collect(driver.read('c3', { follow: true, signal: controller.signal }));
    w.write('stderr', Buffer.from('x\n'));
    setTimeout(() => controller.abort(), 20);
    assert.deepEqual(await reading, ['stderr:x\n']);
    w.close();
    await driver.remove('c3');
    assert.deepEqual(await collect(driver.read('c3', {})), []);
  });
});
