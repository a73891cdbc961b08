import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type BootedEngine, type DaemonSettings, type PluginDefinition, bootEngine, definePlugin, parseConfig } from '@tsengine/core';
import pino from 'pino';
import { plugin } from '../src/index.js';

/** Registers a job by name whatever its contract says (image.list and container.list belong to other plugins). */
type UntypedHandle = (name: string, handler: (job: { input: { all?: boolean } }) => Promise<unknown>) => void;

async function boot(dataRoot: string, extra: PluginDefinition<unknown>[] = []): Promise<BootedEngine> {
  const settings: DaemonSettings = { dataRoot, execRoot: join(dataRoot, 'run'), hosts: [], logLevel: 'info', pidfile: join(dataRoot, 'pid'), version: '9.8.7' };
  const builtins = new Map<string, PluginDefinition<unknown>>([[plugin.name, plugin as PluginDefinition<unknown>], ...extra.map((p) => [p.name, p] as [string, PluginDefinition<unknown>])]);
  const config = parseConfig({ plugins: [...builtins.keys()] }, join(dataRoot, 'config.json'));
  return bootEngine({ config, settings, logger: pino({ level: 'silent' }), builtins });
}

describe('@tsengine/system', () => {
  let dataRoot: string;
  before(async () => {
    dataRoot = await mkdtemp(join(os.tmpdir(), 'tsengine-system-'));
  });
  after(async () => {
    await rm(dataRoot, { recursive: true, force: true });
  });

  it('reports the host facts docker info shows', async () => {
    const { engine } = await boot(dataRoot);
    const info = await engine.run('system.info', {});
    assert.equal(info.NCPU, os.cpus().length);
    assert.equal(info.MemTotal, os.totalmem());
    assert.equal(info.KernelVersion, os.release());
    assert.equal(info.Name, os.hostname());
    assert.equal(info.DockerRootDir, dataRoot);
    assert.equal(info.ServerVersion, '9.8.7');
    assert.equal(info.OSType, 'linux');
    assert.equal(info.Architecture, process.arch === 'x64' ? 'x86_64' : info.Architecture);
    const pretty = /^PRETTY_NAME="?([^"\n]*)"?$/m.exec(await readFile('/etc/os-release', 'utf8'))?.[1];
    assert.equal(info.OperatingSystem, pretty);
    const v2 = await readFile('/sys/fs/cgroup/cgroup.controllers', 'utf8').then(() => true, () => false);
    assert.equal(info.CgroupVersion, v2 ? '2' : '1');
    assert.equal(info.Images, 0);
    assert.equal(info.Containers, 0);
    assert.equal(info.Driver, '');
    assert.deepEqual(info.Plugins.Volume, []);
  });

  it('keeps the engine ID in the data root across restarts', async () => {
    const first = await (await boot(dataRoot)).engine.run('system.info', {});
    const second = await (await boot(dataRoot)).engine.run('system.info', {});
    assert.match(first.ID, /^[0-9a-f-]{36}$/);
    assert.equal(second.ID, first.ID);
    assert.equal((await readFile(join(dataRoot, 'engine-id'), 'utf8')).trim(), first.ID);
  });

  it('counts images and containers through their jobs when those plugins are loaded', async () => {
    const fake = definePlugin({
      name: 'fake-store',
      version: '1.0.0',
      api: '^1.0.0',
      register(_c, ctx) {
        const handle = ctx.handle.bind(ctx) as unknown as UntypedHandle;
        handle('image.list', async () => [{}, {}, {}]);
        handle('container.list', async (job) => (job.input.all ? [{ State: 'running' }, { State: 'exited' }, { State: 'paused' }, { State: 'created' }] : []));
      },
    });
    const { engine } = await boot(dataRoot, [fake as PluginDefinition<unknown>]);
    const info = await engine.run('system.info', {});
    assert.equal(info.Images, 3);
    assert.equal(info.Containers, 4);
    assert.equal(info.ContainersRunning, 1);
    assert.equal(info.ContainersPaused, 1);
    assert.equal(info.ContainersStopped, 2);
  });

  it('reports the version with the API range and kernel', async () => {
    const { engine } = await boot(dataRoot);
    const version = await engine.run('system.version', {});
    assert.equal(version.Version, '9.8.7');
    assert.equal(version.ApiVersion, '1.45');
    assert.equal(version.MinAPIVersion, '1.24');
    assert.equal(version.KernelVersion, os.release());
    assert.equal(version.Os, 'linux');
    assert.equal(version.Components[0]?.Name, 'Engine');
  });
});
