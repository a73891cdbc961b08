import { join } from 'node:path';
import {
  type CapabilityProviders,
  type VolumeDriver,
  VolumeDriverCapability,
  VolumeServiceCapability,
  definePlugin,
} from '@tsengine/core';
import { LocalVolumeDriver } from './local-driver.js';
import { LocalVolumeService } from './service.js';

export { LocalVolumeDriver, validateLocalOptions, directorySize } from './local-driver.js';
export { LocalVolumeService } from './service.js';
export { parseBind, parseApiMount, parseTmpfs, parseVolumesFrom, type MountRecord, type ApiMount } from './specs.js';
export { copyUp } from './copy-up.js';
export { validateVolumeName, ANONYMOUS_LABEL } from './names.js';
export { mountsUnder } from './mountinfo.js';

export default definePlugin({
  name: '@tsengine/volume-local',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'Named and anonymous volumes over volume drivers (the "local" one included), bind and tmpfs mounts.',
  provides: [
    { capability: VolumeServiceCapability.name, name: 'local' },
    { capability: VolumeDriverCapability.name, name: 'local' },
  ],
  requires: [],
  async register(container, ctx) {
    const root = join(ctx.settings.dataRoot, 'volumes');
    const local = new LocalVolumeDriver(root, ctx.logger);
    await local.restore();
    // Drivers are looked up when used, so driver plugins loaded after this one are found too.
    const service = new LocalVolumeService(root, () => container.resolve<CapabilityProviders<VolumeDriver>>(VolumeDriverCapability.providersToken), ctx.logger);
    await service.restore(local);
    ctx.provide(VolumeDriverCapability, 'local', () => local);
    ctx.provide(VolumeServiceCapability, 'local', () => service);
    ctx.handle('volume.create', async (job) => service.create(job.input));
    ctx.handle('volume.list', async (job) => service.list(job.input.filters));
    ctx.handle('volume.inspect', async (job) => service.inspect(job.input.name));
    ctx.handle('volume.remove', async (job) => service.remove(job.input.name, job.input.force ?? false));
    ctx.handle('volume.prune', async (job) => service.prune(job.input.filters));
    ctx.handle('volume.df', async () => service.diskUsage());
    // Runs after the containers plugin's shutdown (reverse load order), once every container has exited.
    ctx.onShutdown(() => local.shutdown());
  },
});
