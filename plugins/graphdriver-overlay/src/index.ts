import { join } from 'node:path';
import { GraphDriverCapability, definePlugin } from '@tsengine/core';
import { OverlayDriver, type OverlayOptions } from './driver.js';

export { OverlayDriver, MOUNT_DATA_LIMIT, type OverlayOptions } from './driver.js';
export { isMountPoint, mountPoints, mountsUnder } from './mountinfo.js';

function parseOptions(raw: unknown): OverlayOptions {
  if (raw === undefined || raw === null) return { volatile: true };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw new Error('options must be an object');
  const { volatile, ...rest } = raw as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length) throw new Error(`unknown option "${unknown[0]}" (known: volatile)`);
  if (volatile !== undefined && typeof volatile !== 'boolean') throw new Error('"volatile" must be true or false');
  return { volatile: volatile ?? true };
}

export default definePlugin<OverlayOptions>({
  name: '@tsengine/graphdriver-overlay',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'graphdriver "overlay": overlayfs layers mounted through mount(2), laid out like Docker\'s overlay2.',
  provides: [{ capability: GraphDriverCapability.name, name: 'overlay' }],
  parseOptions,
  async register(_container, ctx) {
    const driver = new OverlayDriver(join(ctx.settings.dataRoot, 'overlay2'), ctx.options);
    // Throws PluginSkip with the reason when overlay cannot work on the data root's filesystem.
    await driver.init();
    ctx.provide(GraphDriverCapability, 'overlay', () => driver);
    ctx.onShutdown(() => driver.cleanup());
  },
});
