import { join } from 'node:path';
import { LogDriverCapability, definePlugin, errorMessage } from '@tsengine/core';
import { JsonFileLogDriver } from './driver.js';

export { JsonFileLogDriver, nowRfc3339Nano, timeSeconds } from './driver.js';
export { parseJsonFileOptions, parseSize, type JsonFileOptions } from './options.js';

export default definePlugin({
  name: '@tsengine/logdriver-json-file',
  version: '0.1.0',
  api: '^1.0.0',
  description: "Docker's json-file log driver: <data-root>/containers/<id>/<id>-json.log, rotated by max-size and max-file.",
  provides: [{ capability: LogDriverCapability.name, name: 'json-file' }],
  register(_container, ctx) {
    const driver = new JsonFileLogDriver(join(ctx.settings.dataRoot, 'containers'), (id, message, err) => ctx.logger.warn({ id, err: errorMessage(err) }, message));
    ctx.provide(LogDriverCapability, 'json-file', () => driver);
    // A rotated file being gzipped when the daemon stops would stay uncompressed until the next rotation.
    ctx.onShutdown(() => driver.idle());
  },
});
