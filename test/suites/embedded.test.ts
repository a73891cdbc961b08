import assert from 'node:assert/strict';
import { readFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { REPO_ROOT, runCommand, startDaemon, type Daemon } from '../helpers/daemon.js';
import { busyboxRootfsTar } from '../helpers/images.js';

/** Builds an embedded bundle of `plugins` into a fresh directory; returns it, the bundle and the build's output. */
async function buildBundle(plugins: string): Promise<{ outdir: string; bundle: string; output: string }> {
  const outdir = await mkdtemp(join(tmpdir(), 'tsengine-embedded-'));
  const result = await runCommand(process.execPath, [join(REPO_ROOT, 'scripts', 'build-embedded.js'), '--plugins', plugins, '--outdir', outdir], { timeoutMs: 120_000 });
  assert.equal(result.status, 0, result.stderr);
  return { outdir, bundle: join(outdir, 'tsengine.js'), output: result.stdout };
}

describe('embedded build', () => {
  let outdir: string;
  let bundle: string;
  let buildOutput: string;
  let daemon: Daemon | undefined;

  before(async () => {
    ({ outdir, bundle, output: buildOutput } = await buildBundle('api-server,system'));
  });

  after(async () => {
    await daemon?.stop();
    rmSync(outdir, { recursive: true, force: true });
  });

  it('prints the bundle size and holds only the chosen plugins', () => {
    assert.match(buildOutput, /tsengine\.js\s+[\d.]+ KiB/);
    assert.match(buildOutput, /total\s+[\d.]+ KiB\s+\(plugins: @tsengine\/api-server, @tsengine\/system\)/);
    const code = readFileSync(bundle, 'utf8');
    assert.ok(code.includes('@tsengine/system'));
    // The CLI names every first-party plugin in its defaults; the overlay driver's own code is what must be absent.
    assert.ok(!code.includes(',upperdir='), 'a plugin that was not chosen is not bundled');
    assert.deepEqual(readdirSync(outdir), ['tsengine.js'], 'no koffi binary when no chosen plugin needs it');
  });

  it('starts as a daemon with no config file and answers /version', async () => {
    daemon = await startDaemon({ entry: bundle, configFile: false, logLevel: 'warn' });
    const version = await runCommand(process.execPath, [bundle, '-H', daemon.host, 'version', '--format', '{{.Server.Version}}']);
    assert.equal(version.status, 0, version.stderr);
    const expected = JSON.parse(readFileSync(join(REPO_ROOT, 'cli', 'package.json'), 'utf8')).version;
    assert.equal(version.stdout.trim(), expected);
    const describe = await runCommand('curl', ['-sf', '--unix-socket', daemon.socket, 'http://localhost/v1.45/version']);
    assert.equal(JSON.parse(describe.stdout).ApiVersion, '1.45');
  });
});

describe('embedded build with the image store', () => {
  let outdir: string;
  let bundle: string;
  let daemon: Daemon | undefined;

  before(async () => {
    ({ outdir, bundle } = await buildBundle('api-server,system,images,graphdriver-vfs'));
  });

  after(async () => {
    await daemon?.stop();
    rmSync(outdir, { recursive: true, force: true });
  });

  it('ships the gunzip thread beside the bundle and inflates a gzip layer with it', async () => {
    const files = readdirSync(outdir);
    assert.ok(files.includes('gunzip-thread.js'), files.join(', '));
    daemon = await startDaemon({ entry: bundle, configFile: false, logLevel: 'warn' });
    const tar = await busyboxRootfsTar();
    const imported = await runCommand(process.execPath, [bundle, '-H', daemon.host, 'import', '-', 'gz:imported'], { input: gzipSync(tar) });
    assert.equal(imported.status, 0, imported.stderr);
    const layers = await runCommand(process.execPath, [bundle, '-H', daemon.host, 'image', 'inspect', '-f', '{{json .RootFS.Layers}}', 'gz:imported']);
    assert.equal(layers.status, 0, layers.stderr);
    assert.deepEqual(JSON.parse(layers.stdout), ['sha256:' + createHash('sha256').update(tar).digest('hex')]);
  });
});
