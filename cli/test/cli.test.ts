import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { ConnectionError, DaemonError, HttpDockerClient, bytesSize, formatTable, humanDuration, humanSize, renderTemplate, runCli, timeAgo } from '../src/index.js';
import { PidFileError, acquirePidFile, releasePidFile } from '../src/daemon/pidfile.js';

describe('format helpers', () => {
  it('prints sizes like go-units', () => {
    assert.equal(humanSize(1_240_000), '1.24MB');
    assert.equal(humanSize(4_860), '4.86kB');
    assert.equal(humanSize(512), '512B');
    assert.equal(humanSize(2_000_000_000), '2GB');
    assert.equal(bytesSize(25_276_510_208), '23.54GiB');
    assert.equal(bytesSize(1024), '1KiB');
  });

  it('prints durations like go-units', () => {
    assert.equal(humanDuration(500), 'Less than a second');
    assert.equal(humanDuration(1000), '1 second');
    assert.equal(humanDuration(45_000), '45 seconds');
    assert.equal(humanDuration(61_000), 'About a minute');
    assert.equal(humanDuration(10 * 60_000), '10 minutes');
    assert.equal(humanDuration(3_600_000), 'About an hour');
    assert.equal(humanDuration(2 * 3_600_000), '2 hours');
    assert.equal(humanDuration(3 * 86_400_000), '3 days');
    assert.equal(humanDuration(21 * 86_400_000), '3 weeks');
    assert.equal(humanDuration(90 * 86_400_000), '3 months');
    assert.equal(humanDuration(800 * 86_400_000), '2 years');
    assert.equal(timeAgo(new Date(Date.now() - 2 * 3_600_000)), '2 hours ago');
  });

  it('aligns tables like docker tabwriter (3 spaces of padding, min width 10)', () => {
    const table = formatTable(['REPOSITORY', 'TAG', 'SIZE'], [['busybox', 'latest', '1.24MB'], ['a-very-long-repository-name', 'v1', '5MB']]);
    assert.equal(
      table,
      'REPOSITORY                    TAG       SIZE\n' + 'busybox                       latest    1.24MB\n' + 'a-very-long-repository-name   v1        5MB\n',
    );
  });

  it('renders the supported template subset', () => {
    assert.equal(renderTemplate('{{.NCPU}}', { NCPU: 4 }), '4\n');
    assert.equal(renderTemplate('{{json .}}', { a: [1] }), '{"a":[1]}\n');
    assert.equal(renderTemplate('{{.Server.Version}}\\t{{json .Server.Os}}', { Server: { Version: '1', Os: 'linux' } }), '1\t"linux"\n');
    assert.throws(() => renderTemplate('{{range .}}', {}), /unsupported/);
  });
});

describe('pid files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(os.tmpdir(), 'tsengine-pid-'));
  });
  after(() => rm(dir, { recursive: true, force: true }));

  it('takes a free pid file, refuses one held by a live daemon, and replaces a stale one', async () => {
    const file = join(dir, 'a.pid');
    await acquirePidFile(file, 4242);
    assert.equal(await readFile(file, 'utf8'), '4242\n');

    // A live process whose command line says "daemon" holds it.
    const holder = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)', 'daemon']);
    try {
      await writeFile(file, `${holder.pid}\n`);
      await assert.rejects(acquirePidFile(file), (err: unknown) => err instanceof PidFileError && err.pid === holder.pid && err.message.includes(file));
    } finally {
      holder.kill('SIGKILL');
      await new Promise((r) => holder.once('exit', r));
    }
    // Now dead: stale.
    await acquirePidFile(file);
    assert.equal((await readFile(file, 'utf8')).trim(), String(process.pid));
    releasePidFile(file);
    await assert.rejects(readFile(file), /ENOENT/);
  });

  it('treats a live process that is not a daemon (a reused pid) as stale', async () => {
    const file = join(dir, 'b.pid');
    const other = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)']);
    try {
      await writeFile(file, `${other.pid}\n`);
      await acquirePidFile(file);
      assert.equal((await readFile(file, 'utf8')).trim(), String(process.pid));
    } finally {
      other.kill('SIGKILL');
    }
  });
});

describe('HttpDockerClient and runCli over a unix socket', () => {
  let dir: string;
  let socketPath: string;
  let server: http.Server;
  const seen: string[] = [];

  before(async () => {
    dir = await mkdtemp(join(os.tmpdir(), 'tsengine-client-'));
    socketPath = join(dir, 'd.sock');
    server = http.createServer((req, res) => {
      seen.push(`${req.method} ${req.url}`);
      if (req.url === '/v1.45/info') {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ NCPU: 3, Name: 'box' }));
      } else if (req.url === '/v1.45/version') {
        res.writeHead(500, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: 'engine on fire' }));
      } else if (req.url?.startsWith('/v1.45/echo')) {
        let body = '';
        req.on('data', (c) => (body += c));
        req.on('end', () => {
          res.writeHead(200, { 'Content-Type': 'application/json' });
          res.end(JSON.stringify({ body: JSON.parse(body), type: req.headers['content-type'] }));
        });
      } else {
        res.writeHead(404, { 'Content-Type': 'application/json' });
        res.end(JSON.stringify({ message: 'page not found' }));
      }
    });
    await new Promise<void>((r) => server.listen(socketPath, r));
  });
  after(async () => {
    await new Promise((r) => server.close(r));
    await rm(dir, { recursive: true, force: true });
  });

  it('sends versioned requests with queries and JSON bodies and maps errors', async () => {
    const client = new HttpDockerClient(`unix://${socketPath}`);
    assert.deepEqual(await client.request('GET', '/info'), { NCPU: 3, Name: 'box' });
    assert.deepEqual(await client.request('POST', '/echo', { query: { all: true, name: 'x y', skip: undefined }, body: { A: 1 } }), { body: { A: 1 }, type: 'application/json' });
    assert.equal(seen.at(-1), 'POST /v1.45/echo?all=1&name=x+y');
    await assert.rejects(client.request('GET', '/version'), (err: unknown) => err instanceof DaemonError && err.status === 500 && err.message === 'engine on fire');
    const gone = new HttpDockerClient(`unix://${join(dir, 'nothing.sock')}`);
    await assert.rejects(gone.request('GET', '/info'), (err: unknown) => err instanceof ConnectionError && /Cannot connect to the tsengine daemon at unix:\/\/.*nothing\.sock\. Is the daemon running\?/.test(err.message));
  });

  it('runs commands through runCli with docker exit codes and messages', async () => {
    const capture = () => {
      const stream = new PassThrough();
      let text = '';
      stream.on('data', (c) => (text += c));
      return { stream, text: () => text };
    };
    const out = capture();
    const err = capture();
    const argv = (...args: string[]) => ['node', 'tsengine', ...args];
    assert.equal(await runCli(argv('info', '--format', '{{.NCPU}}', '-H', `unix://${socketPath}`), { stdout: out.stream, stderr: err.stream }), 0);
    assert.equal(out.text(), '3\n');
    assert.equal(await runCli(argv('version'), { stdout: out.stream, stderr: err.stream, env: { DOCKER_HOST: `unix://${socketPath}` } }), 1);
    assert.match(err.text(), /^Error response from daemon: engine on fire$/m);
    assert.match(out.text(), /^Client: tsengine$/m);
    assert.equal(await runCli(argv('nope'), { stdout: out.stream, stderr: err.stream }), 1);
    assert.match(err.text(), /'nope' is not a tsengine command/);
    assert.equal(await runCli(argv('version', '--bogus'), { stdout: out.stream, stderr: err.stream }), 125);
    assert.equal(await runCli(argv('--help'), { stdout: out.stream, stderr: err.stream }), 0);
    assert.match(out.text(), /Usage: tsengine/);
  });
});
