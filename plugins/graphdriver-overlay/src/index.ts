import { join } from 'node:path';
import { GraphDriverCapability, definePlugin } from '@tsengine/core';
import { OverlayDriver } from './driver.js';

export { OverlayDriver, MOUNT_DATA_LIMIT } from './driver.js';
export { isMountPoint, mountPoints, mountsUnder } from './mountinfo.js';

export default definePlugin({
  name: '@tsengine/graphdriver-overlay',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'graphdriver "overlay": overlayfs layers mounted through mount(2), laid out like Docker\'s overlay2.',
  provides: [{ capability: GraphDriverCapability.name, name: 'overlay' }],
  async register(_container, ctx) {
    const driver = new OverlayDriver(join(ctx.settings.dataRoot, 'overlay2'));
    // Throws PluginSkip with the reason when overlay cannot work on the data root's filesystem.
    await driver.init();
    ctx.provide(GraphDriverCapability, 'overlay', () => driver);
    ctx.onShutdown(() => driver.cleanup());
  },
});
