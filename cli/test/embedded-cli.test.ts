import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../src/index.js';
import { readEngineChoice } from '../src/embedded/flags.js';
import { PidFileError, acquirePidFile, releasePidFile } from '../src/daemon/pidfile.js';

async function cli(args: string[]): Promise<{ status: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const status = await runCli(['node', 'tsengine', ...args], { stdout, stderr, env: {} });
  return { status, stdout: out, stderr: err };
}

describe('readEngineChoice', () => {
  it('reads the global options before the command word only', () => {
    assert.deepEqual(readEngineChoice(['node', 'tsengine', '--embedded', '--data-root', '/d', 'run', '--rm', 'busybox']), {
      embedded: true,
      dataRoot: '/d',
      host: undefined,
      command: 'run',
    });
    assert.deepEqual(readEngineChoice(['node', 'tsengine', '--data-root=/x', '-H', 'unix:///s.sock', 'images']), {
      embedded: false,
      dataRoot: '/x',
      host: 'unix:///s.sock',
      command: 'images',
    });
    assert.equal(readEngineChoice(['node', 'tsengine', '-Hunix:///t.sock', 'ps']).host, 'unix:///t.sock');
    // After the command word the flags belong to the command (a container's own --embedded argument).
    const late = readEngineChoice(['node', 'tsengine', 'run', 'busybox', 'prog', '--embedded', '--data-root', '/y']);
    assert.equal(late.embedded, false);
    assert.equal(late.dataRoot, undefined);
  });
});

describe('tsengine --embedded', () => {
  it('is documented in --help with the fact that containers stop with the command', async () => {
    const help = await cli(['--help']);
    assert.equal(help.status, 0);
    assert.match(help.stdout, /--embedded\s+run the engine inside this command/);
    assert.match(help.stdout, /containers stop when the command\s+ends/);
    assert.match(help.stdout, /--data-root <dir>/);
  });

  it('fails with a clear message when the engine cannot start, and leaves no exec root behind', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tsengine-embedded-unit-'));
    try {
      const notADir = join(dir, 'file');
      writeFileSync(notADir, 'x');
      const result = await cli(['--embedded', '--data-root', join(notADir, 'data'), 'images']);
      assert.equal(result.status, 1);
      assert.match(result.stderr, /^cannot start an embedded engine: .*ENOTDIR/);
      assert.equal(result.stdout, '');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('embedded engine lock', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tsengine-embedded-lock-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('takes a free or stale pid file and releases only its own', async () => {
    const file = join(dir, 'stale.pid');
    writeFileSync(file, '999999999\n');
    await acquirePidFile(file);
    assert.equal(readFileSync(file, 'utf8'), `${process.pid}\n`);
    releasePidFile(file, process.pid + 1);
    assert.ok(existsSync(file), 'another pid does not release it');
    releasePidFile(file);
    assert.equal(existsSync(file), false);
  });

  it('refuses a pid file held by a live tsengine process, naming it', async () => {
    const file = join(dir, 'held.pid');
    const holder = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)', 'tsengine', '--embedded'], { stdio: 'ignore' });
    try {
      writeFileSync(file, `${holder.pid}\n`);
      await assert.rejects(acquirePidFile(file), (err: unknown) => err instanceof PidFileError && err.pid === holder.pid && err.holder === 'embedded engine');
      assert.equal(readFileSync(file, 'utf8'), `${holder.pid}\n`, 'the holder keeps its pid file');
    } finally {
      holder.kill('SIGKILL');
      await once(holder, 'exit');
    }
  });

  it('treats a live process that is not tsengine as stale', async () => {
    const file = join(dir, 'reused.pid');
    const other = spawn('sleep', ['30'], { stdio: 'ignore' });
    try {
      writeFileSync(file, `${other.pid}\n`);
      await acquirePidFile(file);
      assert.equal(readFileSync(file, 'utf8'), `${process.pid}\n`);
      releasePidFile(file);
    } finally {
      other.kill('SIGKILL');
      await once(other, 'exit');
    }
  });
});
