import { definePlugin, eventBusOf } from '@tsengine/core';
import { serveEvents } from './events.js';
import { SystemService } from './system.js';

export { SystemService } from './system.js';
export { cgroupFacts, goArch, osRelease, unameMachine } from './host.js';

/** system.version, system.info and system.events (the engine's event bus as Docker's /events stream): the engine's, kernel's, OS's and drivers' facts in Docker's shapes. */
export const plugin = definePlugin({
  name: '@tsengine/system',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'system.version, system.info and system.events jobs',
  register(container, ctx) {
    const service = new SystemService(ctx.engine, ctx.settings, container, ctx.logger);
    ctx.handle('system.version', async () => service.version());
    ctx.handle('system.info', async () => service.info());
    ctx.handle('system.events', async (job) => serveEvents(eventBusOf(ctx.engine), job.input, job.stdout, job.signal));
  },
});

export default plugin;
