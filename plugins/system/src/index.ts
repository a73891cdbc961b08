import { definePlugin } from '@tsengine/core';
import { SystemService } from './system.js';

export { SystemService } from './system.js';
export { cgroupFacts, goArch, osRelease, unameMachine } from './host.js';

/** system.version and system.info: the engine's, kernel's, OS's and drivers' facts in Docker's shapes. */
export const plugin = definePlugin({
  name: '@tsengine/system',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'system.version and system.info jobs',
  register(container, ctx) {
    const service = new SystemService(ctx.engine, ctx.settings, container, ctx.logger);
    ctx.handle('system.version', async () => service.version());
    ctx.handle('system.info', async () => service.info());
  },
});

export default plugin;
