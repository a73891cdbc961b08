import assert from 'node:assert/strict';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Daemon, docker, startDaemon } from '../helpers/daemon.js';
import { layerTar } from '../helpers/images.js';
import { type HostileRegistry, startHostileRegistry } from '../helpers/registry.js';

const GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64' };
/** Small bounds so that every misbehaviour ends quickly; the assertions allow far more. */
const REGISTRY_OPTIONS = { stallTimeoutMs: 1000, stallBytes: 64, retries: 2, retryDelayMs: 50, maxManifestBytes: 64 * 1024 };
const BOUND_MS = 45_000;

async function layerRecords(daemon: Daemon): Promise<string[]> {
  const dir = join(daemon.dataRoot, 'image', 'overlay', 'layerdb', 'sha256');
  return (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
}

describe('registry-v2: a hostile registry gets a clear error in bounded time and leaves nothing behind', () => {
  let hostile: HostileRegistry;
  let daemon: Daemon;

  before(async () => {
    // A layer of a few hundred kB, so that "half way" and a drip are real.
    const big = Buffer.alloc(300 * 1024);
    for (let i = 0; i < big.length; i++) big[i] = (i * 7919) % 251;
    const layer = await layerTar({ files: { 'hostile/data.bin': big, 'hostile/hello.txt': 'hello\n' } });
    hostile = await startHostileRegistry({ layer, architecture: GOARCH[process.arch] ?? process.arch });
    daemon = await startDaemon({
      plugins: ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', { plugin: '@tsengine/registry-v2', options: REGISTRY_OPTIONS }],
      config: { graphdriver: 'overlay' },
    });
  });
  after(async () => {
    await daemon?.stop();
    await hostile?.close();
  });

  async function refused(mode: string, message: RegExp): Promise<void> {
    const started = Date.now();
    const r = await docker(daemon, ['pull', `${hostile.host}/hostile/${mode}:1`], { timeoutMs: BOUND_MS + 15_000 });
    const took = Date.now() - started;
    assert.equal(r.status, 1, `pull of ${mode} should fail: ${r.stdout}`);
    assert.match(r.stderr + r.stdout, message);
    assert.ok(took < BOUND_MS, `pull of ${mode} took ${took} ms`);
    assert.equal((await docker(daemon, ['images', '-a', '-q'])).stdout.trim(), '', `an image was registered after ${mode}`);
    assert.deepEqual(await layerRecords(daemon), [], `a layer was left in the store after ${mode}`);
  }

  it('wrong digest', () => refused('wrongdigest', /digest mismatch for blob sha256:[a-f0-9]{64}: the registry sent content with digest sha256:/));
  it('wrong config digest', () => refused('wrongconfig', new RegExp(`digest mismatch for blob ${hostile.configDigest}: the registry sent content with digest sha256:`)));
  it('truncated blob, every time', () => refused('truncated', /the download (broke off|ended) after \d+ of \d+ bytes/));
  it('endless manifest', () => refused('hugemanifest', /the manifest exceeds 65536 bytes/));
  it('manifest announcing 64 MiB', () => refused('bigmanifest', /the manifest is 67108864 bytes, more than the 65536 bytes a manifest may have/));
  it('redirect loop', () => refused('redirect', /stopped after 10 redirects/));
  it('slow drip', () => refused('slowdrip', /the registry stalled while sending the body \(fewer than 64 bytes in 1000 ms\)/));
  it('no answer at all', () => refused('slowheaders', /the registry stalled \(fewer than 64 bytes in 1000 ms\)/));

  it('a download cut half way resumes with a Range request', async () => {
    const r = await docker(daemon, ['pull', `${hostile.host}/hostile/resume:1`]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    const ranged = hostile.requests.filter((q) => q.path.endsWith(hostile.layerDigest) && q.path.includes('/resume/') && q.range);
    assert.equal(ranged.length, 1, JSON.stringify(hostile.requests.filter((q) => q.path.includes('/resume/'))));
    assert.match(ranged[0]!.range!, /^bytes=\d+-$/);
    assert.notEqual(ranged[0]!.range, 'bytes=0-');
    assert.equal((await docker(daemon, ['image', 'inspect', '-f', '{{.Id}}', `${hostile.host}/hostile/resume:1`])).stdout.trim(), hostile.configDigest);
    assert.equal((await docker(daemon, ['rmi', `${hostile.host}/hostile/resume:1`])).status, 0);
  });

  it('a download cut half way from a registry without Range starts over and skips what was passed on', async () => {
    const r = await docker(daemon, ['pull', `${hostile.host}/hostile/restart:1`]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.equal((await docker(daemon, ['rmi', `${hostile.host}/hostile/restart:1`])).status, 0);
  });

  it('a 503 is retried', async () => {
    const r = await docker(daemon, ['pull', `${hostile.host}/hostile/flaky:1`]);
    assert.equal(r.status, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /Retrying in/);
    assert.equal((await docker(daemon, ['rmi', `${hostile.host}/hostile/flaky:1`])).status, 0);
    assert.deepEqual(await layerRecords(daemon), []);
  });
});
