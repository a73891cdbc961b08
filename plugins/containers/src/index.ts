import { join } from 'node:path';
import {
  type ExecDriver,
  ExecDriverCapability,
  type GraphDriver,
  GraphDriverCapability,
  type ImageService,
  ImageServiceCapability,
  NetworkServiceCapability,
  VolumeServiceCapability,
  definePlugin,
} from '@tsengine/core';
import { ContainerManager } from './manager.js';

export { ContainerManager, type ContainerRecord } from './manager.js';

export default definePlugin({
  name: '@tsengine/containers',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'Containers over the graph driver, the exec driver and the image service.',
  provides: [],
  requires: [GraphDriverCapability.name, ExecDriverCapability.name, ImageServiceCapability.name],
  uses: [NetworkServiceCapability.name, VolumeServiceCapability.name],
  async register(container, ctx) {
    const graph = container.resolve<GraphDriver>(GraphDriverCapability.token);
    const exec = container.resolve<ExecDriver>(ExecDriverCapability.token);
    const images = container.resolve<ImageService>(ImageServiceCapability.token);
    const manager = new ContainerManager(join(ctx.settings.dataRoot, 'containers'), graph, exec, images, ctx.logger, ctx.use(NetworkServiceCapability), ctx.use(VolumeServiceCapability));
    await manager.restore();
    ctx.logger.info({ containers: manager.all().length }, 'container store restored');
    ctx.handle('container.create', async (job) => manager.create(job.input.name, job.input.body));
    ctx.handle('container.start', async (job) => manager.start(job.input.id));
    ctx.handle('container.wait', async (job) => manager.wait(job.input.id, job.input.condition ?? 'not-running', job.signal));
    ctx.handle('container.attach', async (job) => manager.attach(job.input.id, job.input.streams, job.signal));
    ctx.handle('container.list', async (job) =>
      manager
        .all()
        .filter((c) => job.input.all || c.running)
        .sort((a, b) => b.record.Created.localeCompare(a.record.Created))
        .map((c) => manager.summary(c.record)),
    );
    ctx.handle('container.inspect', async (job) => manager.inspect(job.input.id));
    ctx.handle('container.remove', async (job) => manager.remove(job.input.id, job.input.force ?? false, job.input.volumes ?? false));
    ctx.handle('container.kill', async (job) => manager.kill(job.input.id, job.input.signal));
    ctx.handle('container.stop', async (job) => manager.stop(job.input.id, job.input.timeout));
    ctx.onShutdown(() => manager.shutdown());
  },
});
