import { join } from 'node:path';
import {
  type GraphDriver,
  GraphDriverCapability,
  ImageServiceCapability,
  type ImageService,
  definePlugin,
} from '@tsengine/core';
import { diskUsage, importImage, pruneImages } from './jobs.js';
import { loadArchive } from './load.js';
import { saveArchive } from './save.js';
import { LocalImageService } from './service.js';
import { history, inspect, list } from './views.js';

export { LocalImageService } from './service.js';
export * from './reference.js';
export { chainIds, sha256 } from './digest.js';
export { DigestWorker, type OffThreadHash } from './digest-worker.js';
export { GunzipWorker, GunzipStream, type GunzipOptions } from './gunzip-worker.js';
export { applyChanges } from './changes.js';

export default definePlugin({
  name: '@tsengine/images',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'Image, layer and reference stores with the image jobs.',
  provides: [{ capability: ImageServiceCapability.name, name: 'local' }],
  requires: [GraphDriverCapability.name],
  async register(container, ctx) {
    const driver = container.resolve<GraphDriver>(GraphDriverCapability.token);
    const service = new LocalImageService(join(ctx.settings.dataRoot, 'image', driver.name), driver, ctx.logger);
    await service.restore();
    ctx.onShutdown(() => service.decoder.close());
    ctx.logger.info({ images: service.images.all().length, layers: service.layers.all().length, driver: driver.name }, 'image store restored');
    ctx.provide(ImageServiceCapability, 'local', (): ImageService => service);
    ctx.handle('image.list', async (job) => list(service, job.input));
    ctx.handle('image.inspect', async (job) => inspect(service, service.get(job.input.name)));
    ctx.handle('image.history', async (job) => history(service, service.get(job.input.name)));
    ctx.handle('image.tag', async (job) => service.tagReference(job.input.source, job.input.repo, job.input.tag));
    ctx.handle('image.remove', async (job) => service.remove(job.input.name, job.input.force ?? false, !(job.input.noprune ?? false)));
    ctx.handle('image.import', async (job) => ({ id: await importImage(service, job.input, job.stdin) }));
    ctx.handle('image.load', async (job) => ({
      loaded: await loadArchive(service, { quiet: job.input.quiet ?? false, stdin: job.stdin, stdout: job.stdout, signal: job.signal }),
    }));
    ctx.handle('image.save', async (job) => saveArchive(service, job.input.names, job.stdout, job.signal));
    ctx.handle('image.prune', async (job) => pruneImages(service, job.input));
    ctx.handle('image.df', async () => diskUsage(service));
    ctx.handle('image.resolve', async (job) => service.resolve(job.input.name));
  },
});
