import assert from 'node:assert/strict';
import os from 'node:os';
import { after, before, describe, it } from 'node:test';
import { type Daemon, docker, startDaemon } from '../helpers/daemon.js';

describe('the docker CLI against tsengine: version and info', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon();
  });
  after(async () => {
    await daemon?.stop();
  });

  it('docker version prints our Server section', async () => {
    const result = await docker(daemon, ['version']);
    assert.equal(result.status, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /error/i);
    assert.match(result.stdout, /^Server: tsengine$/m);
    assert.match(result.stdout, /^  Version: +0\.1\.0$/m);
    assert.match(result.stdout, /^  API version: +1\.45 \(minimum version 1\.24\)$/m);
    assert.match(result.stdout, /^ API version: +1\.45 \(downgraded from 1\.\d+\)$/m);
    const server = await docker(daemon, ['version', '--format', '{{.Server.Version}} {{.Server.KernelVersion}}']);
    assert.equal(server.stdout.trim(), `0.1.0 ${os.release()}`);
  });

  it('docker info prints our Server section with real values', async () => {
    const result = await docker(daemon, ['info']);
    assert.equal(result.status, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /error/i);
    assert.match(result.stdout, /^Server:$/m);
    assert.match(result.stdout, /^ Server Version: 0\.1\.0$/m);
    assert.match(result.stdout, new RegExp(`^ CPUs: ${os.cpus().length}$`, 'm'));
    assert.match(result.stdout, new RegExp(`^ Docker Root Dir: ${daemon.dataRoot}$`, 'm'));
    assert.match(result.stdout, new RegExp(`^ Name: ${os.hostname()}$`, 'm'));
    assert.match(result.stdout, /^ OSType: linux$/m);
  });

  it('docker prints our error messages as docker does, not as raw JSON', async () => {
    // No container plugin is loaded here: the route exists but its job does not.
    const result = await docker(daemon, ['ps']);
    assert.equal(result.status, 1);
    assert.match(result.stderr.trim(), /^Error response from daemon: container\.list is not available: no loaded plugin provides the job "container\.list"/);
    const unknown = await docker(daemon, ['plugin', 'ls']);
    assert.equal(unknown.status, 1);
    assert.equal(unknown.stderr.trim(), 'Error response from daemon: page not found');
  });

  it('docker info --format reads our fields', async () => {
    const ncpu = await docker(daemon, ['info', '--format', '{{.NCPU}}']);
    assert.equal(ncpu.status, 0, ncpu.stderr);
    assert.equal(ncpu.stdout.trim(), String(os.cpus().length));
    const mem = await docker(daemon, ['info', '--format', '{{.MemTotal}} {{.KernelVersion}}']);
    assert.equal(mem.stdout.trim(), `${os.totalmem()} ${os.release()}`);
  });
});
