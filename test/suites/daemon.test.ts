import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { BASE_PLUGINS, CLI_MAIN, type Daemon, runCommand, startDaemon, tsengine } from '../helpers/daemon.js';

const scratch: string[] = [];
async function tempDir(): Promise<string> {
  const dir = await mkdtemp(join(os.tmpdir(), 'tsengine-daemon-test-'));
  scratch.push(dir);
  return dir;
}
after(async () => {
  await Promise.all(scratch.map((d) => rm(d, { recursive: true, force: true })));
});

/** Runs `tsengine daemon` expecting it to fail at start-up (it is killed if it starts after all). */
async function daemonMustFail(dir: string, extra: string[]) {
  const args = [CLI_MAIN, 'daemon', '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '-H', `unix://${join(dir, 'run', 's.sock')}`, ...extra];
  return runCommand(process.execPath, args, { cwd: dir, timeoutMs: 20_000 });
}

async function writeConfig(dir: string, content: unknown): Promise<string> {
  const file = join(dir, 'tsengine.json');
  await writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

async function deadPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', '0']);
  await new Promise((r) => child.once('exit', r));
  return child.pid!;
}

async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((r) => server.close(r));
  return port;
}

describe('tsengine daemon', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon();
  });
  after(async () => {
    await daemon?.stop();
  });

  it('answers ping on a 0660 socket, writes its pid files and prints nothing to stdout', async () => {
    assert.equal((await stat(daemon.socket)).mode & 0o777, 0o660);
    assert.equal((await readFile(daemon.pidfile, 'utf8')).trim(), String(daemon.pid));
    assert.equal((await readFile(join(daemon.dataRoot, 'tsengine.pid'), 'utf8')).trim(), String(daemon.pid));
    assert.match(daemon.logs(), /API listening on unix:\/\//);
    assert.equal(daemon.stdout(), '');
  });

  it('refuses a second daemon on the same data root, naming the pid and the file', async () => {
    const dir = await tempDir();
    const args = [CLI_MAIN, 'daemon', '--plugins', daemon.configFile!, '--data-root', daemon.dataRoot, '--exec-root', join(dir, 'run'), '-H', `unix://${join(dir, 's.sock')}`];
    const second = await runCommand(process.execPath, args, { cwd: dir, timeoutMs: 20_000 });
    assert.equal(second.status, 1, second.stderr);
    assert.match(second.stderr, new RegExp(`already running with pid ${daemon.pid}`));
    assert.ok(second.stderr.includes(join(daemon.dataRoot, 'tsengine.pid')), second.stderr);
    assert.equal(existsSync(join(dir, 's.sock')), false);
    assert.equal((await readFile(join(daemon.dataRoot, 'tsengine.pid'), 'utf8')).trim(), String(daemon.pid));
  });

  it('prints the Server section with real values for tsengine version and info', async () => {
    const version = await tsengine(['version'], { host: daemon });
    assert.equal(version.status, 0, version.stderr);
    assert.match(version.stdout, /^Server: tsengine$/m);
    assert.match(version.stdout, /^ Engine:$/m);
    assert.match(version.stdout, /^  API version: +1\.45 \(minimum version 1\.24\)$/m);
    assert.ok(version.stdout.includes(os.release()), version.stdout);

    const info = await tsengine(['-H', daemon.host, 'info'], { env: { DOCKER_HOST: 'unix:///nonexistent.sock' } });
    assert.equal(info.status, 0, info.stderr);
    assert.match(info.stdout, /^Server:$/m);
    assert.match(info.stdout, new RegExp(`^ CPUs: ${os.cpus().length}$`, 'm'));
    assert.match(info.stdout, new RegExp(`^ Kernel Version: ${os.release().replace(/\./g, '\\.')}$`, 'm'));
    assert.match(info.stdout, new RegExp(`^ Docker Root Dir: ${daemon.dataRoot}$`, 'm'));
    assert.match(info.stdout, new RegExp(`^ Name: ${os.hostname()}$`, 'm'));
    assert.match(info.stdout, /^ Total Memory: \d+(\.\d+)?GiB$/m);
    assert.match(info.stdout, /^ Server Version: 0\.1\.0$/m);

    const ncpu = await tsengine(['info', '--format', '{{.NCPU}}', '-H', daemon.host]);
    assert.equal(ncpu.stdout.trim(), String(os.cpus().length));
  });

  it('shows --help for daemon, version and info', async () => {
    for (const command of ['daemon', 'version', 'info']) {
      const help = await tsengine([command, '--help']);
      assert.equal(help.status, 0, help.stderr);
      assert.match(help.stdout, new RegExp(`^Usage: tsengine ${command}`, 'm'));
    }
    assert.match((await tsengine(['daemon', '--help'])).stdout, /--data-root <dir>/);
  });

  it('exits 1 with docker-style messages for an unreachable daemon, a daemon error and an unknown command, 125 for a bad flag', async () => {
    const unreachable = await tsengine(['version'], { host: 'unix:///nonexistent/tsengine.sock' });
    assert.equal(unreachable.status, 1);
    assert.match(unreachable.stderr, /Cannot connect to the tsengine daemon at unix:\/\/\/nonexistent\/tsengine\.sock\. Is the daemon running\?/);
    const info = await tsengine(['info'], { host: 'unix:///nonexistent/tsengine.sock' });
    assert.equal(info.status, 1);
    assert.match(info.stderr, /Cannot connect to the tsengine daemon/);

    const unknown = await tsengine(['frobnicate']);
    assert.equal(unknown.status, 1);
    assert.match(unknown.stderr, /'frobnicate' is not a tsengine command/);
    const badFlag = await tsengine(['info', '--no-such-flag'], { host: daemon });
    assert.equal(badFlag.status, 125);
    assert.match(badFlag.stderr, /unknown option '--no-such-flag'/);
  });

  it('prints "Error response from daemon" when a job is missing (system plugin not loaded)', async () => {
    const bare = await startDaemon({ plugins: ['@tsengine/api-server'] });
    try {
      const info = await tsengine(['info'], { host: bare });
      assert.equal(info.status, 1);
      assert.match(info.stderr, /^Error response from daemon: system\.info is not available/m);
    } finally {
      await bare.stop();
    }
  });
});

describe('tsengine daemon lifecycle', () => {
  it('recovers a stale pid file left by a dead process', async () => {
    const dir = await tempDir();
    const dataRoot = join(dir, 'data');
    await mkdir(dataRoot, { recursive: true });
    const dead = await deadPid();
    await writeFile(join(dataRoot, 'tsengine.pid'), `${dead}\n`);
    const daemon = await startDaemon({ dataRoot });
    try {
      assert.equal((await readFile(join(dataRoot, 'tsengine.pid'), 'utf8')).trim(), String(daemon.pid));
    } finally {
      await daemon.stop();
    }
  });

  it('on SIGTERM closes the API, removes the socket and pid files and exits 0', async () => {
    const daemon = await startDaemon();
    try {
      daemon.process.kill('SIGTERM');
      const exit = await daemon.exited;
      assert.deepEqual(exit, { code: 0, signal: null }, daemon.logs());
      assert.equal(existsSync(daemon.socket), false);
      assert.equal(existsSync(daemon.pidfile), false);
      assert.equal(existsSync(join(daemon.dataRoot, 'tsengine.pid')), false);
      assert.match(daemon.logs(), /shutdown complete/);
    } finally {
      await daemon.stop();
    }
  });

  it('shuts down cleanly on a SIGTERM that comes the moment its socket appears', async () => {
    const dir = await tempDir();
    const socket = join(dir, 'run', 's.sock');
    const args = [CLI_MAIN, 'daemon', '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '-H', `unix://${socket}`, '--plugins', await writeConfig(dir, { plugins: BASE_PLUGINS })];
    const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    const deadline = Date.now() + 20_000;
    while (!existsSync(socket) && child.exitCode === null && Date.now() < deadline) await new Promise((r) => setTimeout(r, 1));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
    try {
      assert.deepEqual(await exited, { code: 0, signal: null }, stderr);
      assert.equal(existsSync(socket), false);
    } finally {
      clearTimeout(timer);
    }
  });

  it('exits at once on a second signal while a plugin is slow to shut down', async () => {
    const dir = await tempDir();
    const slow = join(dir, 'slow-plugin.js');
    await writeFile(
      slow,
      `module.exports = { name: 'slow-shutdown', version: '1.0.0', api: '^1.0.0', register() {}, shutdown() { return new Promise(() => {}); } };\n`,
    );
    const daemon = await startDaemon({ plugins: [...BASE_PLUGINS, slow] });
    try {
      daemon.process.kill('SIGINT');
      const deadline = Date.now() + 5000;
      while (!/shutting down/.test(daemon.logs()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
      const before = Date.now();
      daemon.process.kill('SIGTERM');
      const exit = await daemon.exited;
      assert.equal(exit.code, 130, daemon.logs());
      assert.ok(Date.now() - before < 3000, 'the forced exit was not immediate');
      assert.match(daemon.logs(), /second signal: forcing exit/);
    } finally {
      await daemon.stop();
    }
  });

  it('listens on tcp://127.0.0.1:PORT as well', async () => {
    const port = await freePort();
    const daemon = await startDaemon({ extraArgs: ['-H', `tcp://127.0.0.1:${port}`] });
    try {
      const res = await fetch(`http://127.0.0.1:${port}/v1.45/_ping`);
      assert.equal(await res.text(), 'OK');
      assert.equal(res.headers.get('api-version'), '1.45');
      const version = await tsengine(['-H', `tcp://127.0.0.1:${port}`, 'version']);
      assert.equal(version.status, 0, version.stderr);
      assert.match(version.stdout, /^Server: tsengine$/m);
    } finally {
      await daemon.stop();
    }
  });

  it('fails fast on a missing, malformed or unknown-key config, naming the file and key', async () => {
    const dir = await tempDir();
    const missing = join(dir, 'missing.json');
    const r1 = await daemonMustFail(dir, ['--plugins', missing]);
    assert.equal(r1.status, 1);
    assert.ok(r1.stderr.includes(missing), r1.stderr);
    assert.match(r1.stderr, /file not found/);

    const malformed = await writeConfig(dir, '{"plugins": [');
    const r2 = await daemonMustFail(dir, ['--plugins', malformed]);
    assert.equal(r2.status, 1);
    assert.ok(r2.stderr.includes(malformed), r2.stderr);
    assert.match(r2.stderr, /cannot be parsed/);

    const unknownKey = await writeConfig(dir, { plugins: BASE_PLUGINS, 'data-rooot': ['/x'] });
    const r3 = await daemonMustFail(dir, ['--plugins', unknownKey]);
    assert.equal(r3.status, 1);
    assert.ok(r3.stderr.includes(unknownKey), r3.stderr);
    assert.match(r3.stderr, /key "data-rooot"/);
    assert.equal(r3.stdout, '');
    assert.equal(existsSync(join(dir, 'run', 's.sock')), false);
  });

  it('fails fast naming a plugin that cannot be found', async () => {
    const dir = await tempDir();
    const config = await writeConfig(dir, { plugins: [...BASE_PLUGINS, 'tsengine-plugin-nope'] });
    const result = await daemonMustFail(dir, ['--plugins', config]);
    assert.equal(result.status, 1);
    assert.match(result.stderr, /plugin tsengine-plugin-nope: package not found/);
    assert.equal(existsSync(join(dir, 'data', 'tsengine.pid')), false, 'the pid file must be released');
  });

  it('takes daemon settings from the config file, and flags win over them', async () => {
    const dir = await tempDir();
    const fromFile = join(dir, 'from-file');
    const daemon = await startDaemon({ config: { 'data-root': fromFile, pidfile: join(dir, 'custom.pid') } });
    try {
      // startDaemon passes --data-root, which wins; the pidfile comes from the file.
      assert.equal((await readFile(join(dir, 'custom.pid'), 'utf8')).trim(), String(daemon.pid));
      assert.equal(existsSync(fromFile), false);
    } finally {
      await daemon.stop();
    }
    assert.equal(existsSync(join(dir, 'custom.pid')), false);
  });
});
