import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import { CONTAINER_PLUGINS, type CommandResult, type Daemon, docker, startDaemon } from '../helpers/daemon.js';
import { busyboxRootfsTar } from '../helpers/images.js';

const PLUGINS = CONTAINER_PLUGINS;

let daemon: Daemon;

async function ok(args: string[]): Promise<string> {
  const r = await docker(daemon, args, { timeoutMs: 120_000 });
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

async function eventually<T>(what: string, probe: () => T | undefined | false | Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, k) => `line ${from + k}`);
const LOOP_500 = 'for i in $(seq 1 500); do echo line $i; done';

function logDir(id: string): string {
  return join(daemon.dataRoot, 'containers', id);
}

/** The "log" texts of one json-file file, without their newlines. */
function linesOfFile(path: string): string[] {
  const raw = readFileSync(path);
  return (path.endsWith('.gz') ? gunzipSync(raw) : raw)
    .toString('utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { log: string }).log.replace(/\n$/, ''));
}

before(async () => {
  daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' } });
  const r = await docker(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], { input: await busyboxRootfsTar() });
  assert.equal(r.status, 0, r.stderr);
});

after(async () => {
  if (!daemon) return;
  const ids = (await docker(daemon, ['ps', '-aq'])).stdout.split('\n').filter(Boolean);
  if (ids.length) await docker(daemon, ['rm', '-f', ...ids]);
  const result = await daemon.stop();
  assert.equal(result.code, 0, `daemon exited with ${result.code ?? result.signal}:\n${daemon.logs().slice(-4000)}`);
});

describe('json-file log options through the docker CLI', () => {
  it('rotates at max-size, keeps max-file files and docker logs reads them in order', async () => {
    const out = await ok(['run', '--name', 'rot', '--log-opt', 'max-size=1k', '--log-opt', 'max-file=3', 'busybox', 'sh', '-c', LOOP_500]);
    assert.deepEqual(out.trim().split('\n'), range(1, 500), 'the attached output is complete');
    const id = (await ok(['inspect', '-f', '{{.Id}}', 'rot'])).trim();
    const base = `${id}-json.log`;
    assert.equal((await ok(['inspect', '-f', '{{.LogPath}}', 'rot'])).trim(), join(logDir(id), base));
    assert.equal((await ok(['inspect', '-f', '{{json .HostConfig.LogConfig}}', 'rot'])).trim(), '{"Type":"json-file","Config":{"max-file":"3","max-size":"1k"}}');
    const files = readdirSync(logDir(id)).filter((n) => n.startsWith(base)).sort();
    assert.deepEqual(files, [base, `${base}.1`, `${base}.2`]);
    // 1k is 1000 bytes (Docker's decimal units); a file is rotated once it has reached it.
    for (const f of [`${base}.1`, `${base}.2`]) {
      const size = statSync(join(logDir(id), f)).size;
      assert.ok(size >= 1000 && size < 1100, `${f}: ${size} bytes`);
    }
    const onDisk = [`${base}.2`, `${base}.1`, base].flatMap((f) => linesOfFile(join(logDir(id), f)));
    const first = Number(onDisk[0]!.split(' ')[1]);
    assert.ok(first > 400, `the oldest lines were dropped (first kept: ${onDisk[0]})`);
    assert.deepEqual(onDisk, range(first, 500));
    const logs = (await ok(['logs', 'rot'])).trim().split('\n');
    assert.deepEqual(logs, onDisk);
    assert.equal(logs.at(-1), 'line 500');
    assert.deepEqual((await ok(['logs', '--tail', '3', 'rot'])).trim().split('\n'), range(498, 500));
    // A tail reaching past the current file takes the rest from the rotated ones.
    const tail = onDisk.length - 5;
    assert.deepEqual((await ok(['logs', '--tail', String(tail), 'rot'])).trim().split('\n'), onDisk.slice(5));
  });

  it('--since and --until reach into the rotated files', async () => {
    // A pause between the halves: the engine compares times as doubles (sub-microsecond steps blur).
    const script = 'for i in $(seq 1 40); do echo line $i; done; sleep 0.3; for i in $(seq 41 80); do echo line $i; done';
    await ok(['run', '--name', 'window', '--log-opt', 'max-size=1k', '--log-opt', 'max-file=20', 'busybox', 'sh', '-c', script]);
    const id = (await ok(['inspect', '-f', '{{.Id}}', 'window'])).trim();
    assert.ok(linesOfFile(join(logDir(id), `${id}-json.log.1`)).length > 0, 'the log was rotated');
    assert.ok(!linesOfFile(join(logDir(id), `${id}-json.log`)).includes('line 41'), 'line 41 is in a rotated file');
    const stamped = (await ok(['logs', '-t', 'window'])).trim().split('\n');
    assert.equal(stamped.length, 80);
    const timeOf = (line: string) => stamped.find((l) => l.endsWith(` ${line}`))!.split(' ')[0]!;
    assert.deepEqual((await ok(['logs', '--since', timeOf('line 41'), 'window'])).trim().split('\n'), range(41, 80));
    assert.deepEqual((await ok(['logs', '--until', timeOf('line 40'), 'window'])).trim().split('\n'), range(1, 40));
  });

  it('with max-file=1 keeps only the current file', async () => {
    await ok(['run', '--name', 'one', '--log-opt', 'max-size=1k', 'busybox', 'sh', '-c', LOOP_500]);
    const id = (await ok(['inspect', '-f', '{{.Id}}', 'one'])).trim();
    assert.deepEqual(readdirSync(logDir(id)).filter((n) => n.includes('-json.log')), [`${id}-json.log`]);
    const logs = (await ok(['logs', 'one'])).trim().split('\n');
    assert.ok(logs.length > 0 && logs.length < 30, `${logs.length} lines kept`);
    assert.deepEqual(logs, range(501 - logs.length, 500));
  });

  it('gzips rotated files with compress=true and docker logs decompresses them', async () => {
    await ok(['run', '--name', 'gz', '--log-opt', 'max-size=1k', '--log-opt', 'max-file=4', '--log-opt', 'compress=true', 'busybox', 'sh', '-c', LOOP_500]);
    const id = (await ok(['inspect', '-f', '{{.Id}}', 'gz'])).trim();
    const base = `${id}-json.log`;
    const expected = [base, `${base}.1.gz`, `${base}.2.gz`, `${base}.3.gz`];
    await eventually('the rotated files to be compressed', () => {
      const names = readdirSync(logDir(id)).filter((n) => n.startsWith(base)).sort();
      return JSON.stringify(names) === JSON.stringify(expected);
    });
    const onDisk = [`${base}.3.gz`, `${base}.2.gz`, `${base}.1.gz`, base].flatMap((f) => linesOfFile(join(logDir(id), f)));
    assert.deepEqual(onDisk, range(Number(onDisk[0]!.split(' ')[1]), 500));
    assert.deepEqual((await ok(['logs', 'gz'])).trim().split('\n'), onDisk);
  });

  it('docker logs -f follows across rotations without losing a line', async () => {
    const script = 'echo ready; while [ ! -e /go ]; do sleep 0.05; done; for i in $(seq 1 300); do echo line $i; done';
    await ok(['run', '-d', '--name', 'follow', '--log-opt', 'max-size=1k', '--log-opt', 'max-file=2', 'busybox', 'sh', '-c', script]);
    const follower = spawn('docker', ['logs', '-f', 'follow'], { env: { ...process.env, DOCKER_HOST: daemon.host }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    follower.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    follower.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const exited = new Promise<number | null>((resolve) => follower.once('close', (code) => resolve(code)));
    const killer = setTimeout(() => follower.kill('SIGKILL'), 120_000);
    try {
      await eventually('docker logs -f to show "ready"', () => stdout.includes('ready\n'));
      await ok(['exec', 'follow', 'touch', '/go']);
      assert.equal(await exited, 0, stderr);
    } finally {
      clearTimeout(killer);
      if (follower.exitCode === null) follower.kill('SIGKILL');
    }
    assert.deepEqual(stdout.trim().split('\n'), ['ready', ...range(1, 300)]);
    const id = (await ok(['inspect', '-f', '{{.Id}}', 'follow'])).trim();
    assert.ok(existsSync(join(logDir(id), `${id}-json.log.1`)), 'the log was rotated while followed');
    assert.ok(!(await ok(['logs', 'follow'])).includes('ready'), 'the first lines are rotated away');
  });

  it("refuses unknown options and bad values with Docker's messages and exit code 125", async () => {
    const cases: Array<[string[], string]> = [
      [['--log-opt', 'foo=bar'], "unknown log opt 'foo' for json-file log driver"],
      [['--log-opt', 'max-size=1k', '--log-opt', 'max-file=0'], 'max-file cannot be less than 1'],
      [['--log-opt', 'max-size=lots'], "invalid size: 'lots'"],
      [['--log-opt', 'max-size=1k', '--log-opt', 'compress=true'], 'compress cannot be true when max-file is less than 2 or max-size is not set'],
    ];
    const before = (await ok(['ps', '-aq'])).trim();
    for (const [options, message] of cases) {
      const r: CommandResult = await docker(daemon, ['run', '--rm', ...options, 'busybox', 'true']);
      assert.equal(r.status, 125, `${options.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, new RegExp(`Error response from daemon: ${message.replace(/[()[\]'.*+?]/g, '\\$&')}`));
    }
    assert.equal((await ok(['ps', '-aq'])).trim(), before, 'no container was created');
    // Docker's shared attrs options are accepted (and not added to the lines).
    assert.equal(await ok(['run', '--rm', '--log-opt', 'labels=a', '--log-opt', 'env=X', '--log-opt', 'tag={{.Name}}', 'busybox', 'echo', 'tagged']), 'tagged\n');
  });
});
