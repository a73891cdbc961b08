import { join } from 'node:path';
import { LogDriverCapability, definePlugin } from '@tsengine/core';
import { JsonFileLogDriver } from './driver.js';

export { JsonFileLogDriver, nowRfc3339Nano, timeSeconds } from './driver.js';

export default definePlugin({
  name: '@tsengine/logdriver-json-file',
  version: '0.1.0',
  api: '^1.0.0',
  description: "Docker's json-file log driver: <data-root>/containers/<id>/<id>-json.log.",
  provides: [{ capability: LogDriverCapability.name, name: 'json-file' }],
  register(_container, ctx) {
    ctx.provide(LogDriverCapability, 'json-file', () => new JsonFileLogDriver(join(ctx.settings.dataRoot, 'containers')));
  },
});
