import { join } from 'node:path';
import {
  type CapabilityProviders,
  type ExecDriver,
  ExecDriverCapability,
  type GraphDriver,
  GraphDriverCapability,
  type ImageService,
  ImageServiceCapability,
  type LogDriver,
  LogDriverCapability,
  NetworkServiceCapability,
  VolumeServiceCapability,
  definePlugin,
  eventBusOf,
} from '@tsengine/core';
import { ContainerManager } from './manager.js';
import { registerFilesystemJobs } from './filesystem.js';

export { ContainerManager, type ContainerRecord } from './manager.js';

export default definePlugin({
  name: '@tsengine/containers',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'Containers over the graph driver, the exec driver and the image service.',
  provides: [],
  requires: [GraphDriverCapability.name, ExecDriverCapability.name, ImageServiceCapability.name],
  uses: [NetworkServiceCapability.name, VolumeServiceCapability.name, LogDriverCapability.name],
  async register(container, ctx) {
    const graph = container.resolve<GraphDriver>(GraphDriverCapability.token);
    const exec = container.resolve<ExecDriver>(ExecDriverCapability.token);
    const images = container.resolve<ImageService>(ImageServiceCapability.token);
    const logProviders = ctx.use(LogDriverCapability) ? container.resolve<CapabilityProviders<LogDriver>>(LogDriverCapability.providersToken) : undefined;
    const events = eventBusOf(ctx.engine);
    const manager = new ContainerManager(join(ctx.settings.dataRoot, 'containers'), graph, exec, images, ctx.logger, ctx.use(NetworkServiceCapability), ctx.use(VolumeServiceCapability), {
      ...(logProviders ? { logDrivers: { get: (name: string) => logProviders.get(name), has: (name: string) => logProviders.has(name), ...(logProviders.selected ? { defaultName: logProviders.selected } : {}) } } : {}),
      events,
      imageSize: async (id) => (await ctx.engine.job('image.inspect', { name: id }).run()).Size,
    });
    await manager.restore();
    ctx.logger.info({ containers: manager.all().length }, 'container store restored');
    ctx.handle('container.create', async (job) => manager.create(job.input.name, job.input.body));
    ctx.handle('container.start', async (job) => manager.start(job.input.id));
    ctx.handle('container.wait', async (job) => manager.wait(job.input.id, job.input.condition ?? 'not-running', job.signal));
    ctx.handle('container.attach', async (job) => manager.attach(job.input.id, job.input.streams, job.signal));
    ctx.handle('container.list', async (job) => manager.list(job.input));
    ctx.handle('container.inspect', async (job) => manager.inspect(job.input.id));
    ctx.handle('container.remove', async (job) => manager.remove(job.input.id, job.input.force ?? false, job.input.volumes ?? false));
    ctx.handle('container.kill', async (job) => manager.kill(job.input.id, job.input.signal));
    ctx.handle('container.stop', async (job) => manager.stop(job.input.id, job.input.timeout));
    ctx.handle('container.logs', async (job) => manager.logs(job.input.id, job.input.options, job.input.streams, job.signal));
    ctx.handle('container.restart', async (job) => manager.restart(job.input.id, job.input.timeout));
    ctx.handle('container.rename', async (job) => manager.rename(job.input.id, job.input.name));
    ctx.handle('container.pause', async (job) => manager.pause(job.input.id));
    ctx.handle('container.unpause', async (job) => manager.unpause(job.input.id));
    ctx.handle('container.top', async (job) => manager.top(job.input.id, job.input.psArgs));
    ctx.handle('container.stats', async (job) => manager.stats(job.input.id, job.input.stream, job.stdout, job.signal));
    ctx.handle('container.resize', async (job) => manager.resize(job.input.id, job.input.height, job.input.width));
    ctx.handle('container.prune', async (job) => manager.prune(job.input.filters ?? {}));
    ctx.handle('exec.create', async (job) => manager.execs.create(job.input.container, job.input.body));
    ctx.handle('exec.inspect', async (job) => manager.execs.inspect(job.input.id));
    ctx.handle('exec.start', async (job) => manager.execs.start(job.input.id, job.input.detach === true, job.input.streams, job.input.consoleSize));
    ctx.handle('exec.resize', async (job) => manager.execs.resize(job.input.id, job.input.height, job.input.width));
    registerFilesystemJobs(ctx, manager, graph, images);
    ctx.onShutdown(() => manager.shutdown());
    // Not awaited: the daemon answers while containers with a restart policy come up.
    void manager.autoStart();
  },
});
