import assert from 'node:assert/strict';
import { PassThrough, Readable } from 'node:stream';
import { describe, it } from 'node:test';
import pino from 'pino';
import { Engine, EngineError, JobStatus, errorKind } from '../src/index.js';

declare module '../src/kernel/job-map.js' {
  interface JobMap {
    'test.add': { in: { a: number; b: number }; out: number };
    'test.echo': { in: Record<string, never>; out: void };
    'test.wait': { in: Record<string, never>; out: string };
    'test.fail': { in: Record<string, never>; out: void };
    'test.unknown': { in: Record<string, never>; out: void };
  }
}

const logger = pino({ level: 'silent' });

describe('Engine', () => {
  it('runs a registered job with typed input and output and status 0', async () => {
    const engine = new Engine(logger);
    engine.register('test.add', async (job) => job.input.a + job.input.b);
    const job = engine.job('test.add', { a: 2, b: 3 });
    assert.equal(await job.run(), 5);
    assert.equal(job.status, JobStatus.ok);
    assert.equal(job.error, undefined);
  });

  it('refuses a second handler for the same job name, naming both owners', () => {
    const engine = new Engine(logger);
    engine.register('test.add', async () => 1, 'plugin-a');
    assert.throws(
      () => engine.register('test.add', async () => 2, 'plugin-b'),
      (err: unknown) => err instanceof EngineError && err.kind === 'conflict' && /plugin-a/.test(err.message) && /plugin-b/.test(err.message),
    );
  });

  it('gives an unknown job status 127 and a clear not-found error', async () => {
    const engine = new Engine(logger);
    const job = engine.job('test.unknown', {});
    await assert.rejects(job.run(), /no such job: test.unknown/);
    assert.equal(job.status, 127);
    assert.equal(errorKind(job.error), 'notfound');
  });

  it('forwards unknown jobs to the catchall when one is set', async () => {
    const engine = new Engine(logger);
    engine.setCatchall(async (job) => `forwarded ${job.name}`);
    assert.equal(await engine.run('test.wait', {}), 'forwarded test.wait');
  });

  it('sets status 1 and keeps the error when the handler fails', async () => {
    const engine = new Engine(logger);
    engine.register('test.fail', async () => {
      throw new EngineError('invalid', 'bad input');
    });
    const job = engine.job('test.fail', {});
    await assert.rejects(job.run(), /bad input/);
    assert.equal(job.status, JobStatus.failed);
    assert.equal(errorKind(job.error), 'invalid');
  });

  it('connects stdin and stdout streams to the handler', async () => {
    const engine = new Engine(logger);
    engine.register('test.echo', async (job) => {
      for await (const chunk of job.stdin) job.stdout.write(String(chunk).toUpperCase());
      job.stdout.end();
    });
    const out = new PassThrough();
    const collected: string[] = [];
    out.on('data', (c) => collected.push(String(c)));
    await engine.run('test.echo', {}, { stdin: Readable.from(['hello ', 'world']), stdout: out });
    assert.equal(collected.join(''), 'HELLO WORLD');
  });

  it('cancels a running job through its AbortSignal, with status 130', async () => {
    const engine = new Engine(logger);
    engine.register('test.wait', (job) => new Promise((_resolve, reject) => job.signal.addEventListener('abort', () => reject(job.signal.reason))));
    const outer = new AbortController();
    const job = engine.job('test.wait', {}, { signal: outer.signal });
    const running = job.run();
    outer.abort(new EngineError('cancelled', 'client went away'));
    await assert.rejects(running, /client went away/);
    assert.equal(job.status, JobStatus.cancelled);
  });

  it('refuses to run the same job twice', async () => {
    const engine = new Engine(logger);
    engine.register('test.add', async () => 1);
    const job = engine.job('test.add', { a: 0, b: 0 });
    await job.run();
    await assert.rejects(job.run(), /already been run/);
  });

  it('runs shutdown hooks in reverse order and reports failures', async () => {
    const engine = new Engine(logger);
    const order: string[] = [];
    engine.onShutdown('first', () => void order.push('first'));
    engine.onShutdown('broken', () => {
      throw new Error('boom');
    });
    engine.onShutdown('last', async () => void order.push('last'));
    const report = await engine.shutdown(1000);
    assert.deepEqual(order, ['last', 'first']);
    assert.deepEqual(report.completed, ['last', 'first']);
    assert.deepEqual(report.failed, [{ name: 'broken', error: 'boom' }]);
  });

  it('stops waiting for a hook at the deadline and still runs the others', async () => {
    const engine = new Engine(logger);
    const ran: string[] = [];
    engine.onShutdown('quick', () => void ran.push('quick'));
    engine.onShutdown('stuck', () => new Promise(() => undefined));
    const started = Date.now();
    const report = await engine.shutdown(100);
    assert.ok(Date.now() - started < 2000);
    assert.deepEqual(report.timedOut, ['stuck']);
    assert.deepEqual(ran, ['quick']);
  });

  it('runs many shutdown hooks without piling listeners on the deadline signal', async () => {
    const engine = new Engine(logger);
    let ran = 0;
    for (let i = 0; i < 20; i++) engine.onShutdown(`hook ${i}`, () => void ran++);
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      await engine.shutdown(1000);
      // Warnings are emitted on a later tick.
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    assert.equal(ran, 20);
    assert.deepEqual(warnings.map((w) => w.message), []);
  });

  it('runs shutdown only once even when asked twice', async () => {
    const engine = new Engine(logger);
    let count = 0;
    engine.onShutdown('count', () => void count++);
    await Promise.all([engine.shutdown(), engine.shutdown()]);
    assert.equal(count, 1);
  });

  it('describes its jobs and plugins through the engine.describe job', async () => {
    const engine = new Engine(logger);
    engine.register('test.add', async () => 1, 'calc');
    engine.setPluginStatus({ name: 'calc', version: '1.0.0', source: 'x', state: 'loaded', provides: [], jobs: ['test.add'] });
    engine.setPluginStatus({ name: 'broken', version: '1.0.0', source: 'y', state: 'failed', reason: 'no overlay', provides: [], jobs: [] });
    const description = await engine.run('engine.describe', {});
    assert.deepEqual(
      description.jobs.map((j) => `${j.name}@${j.owner}`),
      ['engine.describe@kernel', 'test.add@calc'],
    );
    assert.deepEqual(
      description.plugins.map((p) => [p.name, p.state, p.reason]),
      [
        ['calc', 'loaded', undefined],
        ['broken', 'failed', 'no overlay'],
      ],
    );
  });
});
