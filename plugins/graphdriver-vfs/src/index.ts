import { join } from 'node:path';
import { GraphDriverCapability, definePlugin } from '@tsengine/core';
import { VfsDriver } from './driver.js';

export { VfsDriver } from './driver.js';

export default definePlugin({
  name: '@tsengine/graphdriver-vfs',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'graphdriver "vfs": each layer a plain directory copy of its parent; works on any filesystem.',
  provides: [{ capability: GraphDriverCapability.name, name: 'vfs' }],
  async register(_container, ctx) {
    const driver = new VfsDriver(join(ctx.settings.dataRoot, 'vfs'));
    await driver.init();
    ctx.provide(GraphDriverCapability, 'vfs', () => driver);
    ctx.onShutdown(() => driver.cleanup());
  },
});
