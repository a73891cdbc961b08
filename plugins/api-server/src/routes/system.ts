import type { RouteModule } from '../helpers.js';

export const systemRoutes: RouteModule = ({ app, engine, reply }) => {
  const ping = {
    'Cache-Control': 'no-cache, no-store, must-revalidate',
    Pragma: 'no-cache',
    'Content-Type': 'text/plain; charset=utf-8',
  };
  app.get('/_ping', { exposeHeadRoute: false }, async (_request, res) => res.headers(ping).send('OK'));
  app.head('/_ping', async (_request, res) => res.headers({ ...ping, 'Content-Length': '0' }).send());
  app.get('/version', (request, res) => reply(request, res, 'system.version', {}));
  app.get('/info', (request, res) => reply(request, res, 'system.info', {}));
  // Not a Docker endpoint: lists jobs and plugins (loaded, skipped, failed and why) for debugging.
  app.get('/tsengine/describe', async () => engine.describe());
};
