import { ApiServerCapability, DaemonSettingsToken, type DaemonSettings, definePlugin } from '@tsengine/core';
import { DockerApiServer } from './server.js';

export { DockerApiServer, type DockerApiServerOptions } from './server.js';
export { buildApp, type AppOptions, type DockerApp } from './app.js';
export { type RouteContext, type RouteModule, type StreamOptions, connectionSignal, parseFilters, queryBool } from './helpers.js';
export { type HijackHandler, type HijackRequest, UPGRADE_RESPONSE } from './hijack.js';
export { StdStream, type StdStreamId, stdcopyFrame, stdcopyWriter } from './stdcopy.js';
export { STATUS_BY_KIND, errorLine, httpError } from './errors.js';
export { API_VERSION, MIN_API_VERSION } from './version.js';
export { parseHost, type ListenAddress } from './hosts.js';
export { routeModules } from './routes/index.js';

/** apiserver "docker": the Docker Engine API over unix sockets and TCP. */
export const plugin = definePlugin({
  name: '@tsengine/api-server',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'The Docker Engine API (fastify)',
  provides: [{ capability: ApiServerCapability.name, name: 'docker' }],
  register(_container, ctx) {
    let server: DockerApiServer | undefined;
    ctx.provide(ApiServerCapability, 'docker', (container) => {
      server ??= new DockerApiServer({ engine: ctx.engine, logger: ctx.logger, settings: container.resolve<DaemonSettings>(DaemonSettingsToken) });
      return server;
    });
    ctx.onShutdown(() => server?.close());
  },
});

export default plugin;
