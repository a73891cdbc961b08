import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { type DaemonSettings, type Engine, EngineError, type Logger, errorMessage } from '@tsengine/core';
import Fastify, { type FastifyInstance, type FastifyReply } from 'fastify';
import { installBodyParsers } from './body.js';
import { httpError } from './errors.js';
import { type RouteModule, bindConnectionSignal, createRouteContext } from './helpers.js';
import { type HijackHandler, type HijackRequest, HijackRouter, UPGRADE_RESPONSE, queryRecord, readUpgradeBody, writeRawError } from './hijack.js';
import { API_VERSION, checkApiVersion, splitVersionPrefix } from './version.js';

export interface AppOptions {
  engine: Engine;
  logger: Logger;
  settings: DaemonSettings;
  routes: RouteModule[];
}

export interface DockerApp {
  app: FastifyInstance;
  /** Upgraded (hijacked) connections still open; close() destroys them. */
  upgraded: Set<Duplex>;
}

/** One fastify instance serving the Docker Engine API (a fastify instance listens once, so one per host). */
export function buildApp(options: AppOptions): DockerApp {
  const { engine, logger, settings } = options;
  const requestedVersions = new WeakMap<IncomingMessage, string>();
  const commonHeaders = {
    'Api-Version': API_VERSION,
    Ostype: 'linux',
    'Docker-Experimental': 'false',
    Server: `tsengine/${settings.version} (linux)`,
  };

  const app = Fastify({
    logger: false,
    forceCloseConnections: true,
    requestTimeout: 0,
    routerOptions: { ignoreTrailingSlash: true, maxParamLength: 4096 },
    // Docker clients prefix paths with /v1.xx/ (or not); routes are registered once, unprefixed.
    rewriteUrl(req) {
      const { version, url } = splitVersionPrefix(req.url ?? '/');
      if (version !== undefined) requestedVersions.set(req, version);
      return url;
    },
  });
  installBodyParsers(app);

  app.addHook('onRequest', async (request, reply) => {
    reply.headers(commonHeaders);
    bindConnectionSignal(request, reply);
    checkApiVersion(requestedVersions.get(request.raw));
  });
  app.addHook('onResponse', async (request, reply) => {
    logger.debug({ method: request.method, url: request.url, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'api request');
  });

  app.setNotFoundHandler(async (_request, reply) => sendError(reply, 404, 'page not found'));
  app.setErrorHandler(async (err, request, reply) => {
    const { status, message } = httpError(err);
    if (status === 499) {
      reply.hijack();
      reply.raw.destroy();
      return;
    }
    if (status >= 500) logger.error({ method: request.method, url: request.url, err: message }, 'api request failed');
    else logger.debug({ method: request.method, url: request.url, status, err: message }, 'api request refused');
    if (status === 304) return reply.code(304).send();
    return sendError(reply, status, message);
  });

  const router = new HijackRouter();
  const upgraded = new Set<Duplex>();
  const track = (socket: Duplex) => {
    upgraded.add(socket);
    socket.once('close', () => upgraded.delete(socket));
  };

  const hijack = (method: 'POST' | 'GET', path: string, handler: HijackHandler) => {
    router.add(method, path, handler);
    // Without Upgrade headers Docker still hijacks: 200 and a raw stream on the same connection.
    app.route({
      method,
      url: path,
      handler: async (request, reply) => {
        const socket = request.raw.socket;
        let accepted = false;
        const [, search = ''] = request.url.split('?', 2) as [string, string?];
        const hijackRequest: HijackRequest = {
          method: request.method,
          path: request.url.split('?')[0]!,
          params: request.params as Record<string, string>,
          query: queryRecord(search),
          headers: request.headers,
          body: request.body,
          upgraded: false,
          signal: abortOnClose(socket),
          log: logger,
          accept() {
            if (!accepted) {
              accepted = true;
              reply.hijack();
              track(socket);
              const head = Object.entries({ ...commonHeaders, 'Content-Type': 'application/vnd.docker.raw-stream', Connection: 'close' }).map(([k, v]) => `${k}: ${v}\r\n`);
              socket.write(`HTTP/1.1 200 OK\r\n${head.join('')}\r\n`);
            }
            return socket;
          },
        };
        await runHijack(handler, hijackRequest, socket, () => accepted);
        if (!accepted) throw new EngineError('system', `${request.method} ${hijackRequest.path}: the handler returned without answering`);
        return reply;
      },
    });
  };

  const runHijack = async (handler: HijackHandler, request: HijackRequest, socket: Duplex, accepted: () => boolean) => {
    try {
      await handler(request);
      if (accepted()) socket.end();
    } catch (err) {
      if (!accepted()) throw err;
      logger.warn({ path: request.path, err: errorMessage(err) }, 'hijacked stream failed');
      socket.destroy();
    }
  };

  const onUpgrade = async (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', (err) => logger.debug({ err: errorMessage(err) }, 'hijacked connection error'));
    const { version, url } = splitVersionPrefix(req.url ?? '/');
    const [path = '/', search = ''] = url.split('?', 2);
    let accepted = false;
    try {
      checkApiVersion(version);
      const match = router.match(req.method ?? 'GET', path);
      if (!match) throw new EngineError('notfound', 'page not found');
      track(socket);
      const body = await readUpgradeBody(req, socket, head);
      const request: HijackRequest = {
        method: req.method ?? 'GET',
        path,
        params: match.params,
        query: queryRecord(search),
        headers: req.headers,
        body,
        upgraded: true,
        signal: abortOnClose(socket),
        log: logger,
        accept() {
          if (!accepted) {
            accepted = true;
            socket.write(UPGRADE_RESPONSE);
          }
          return socket;
        },
      };
      await runHijack(match.handler, request, socket, () => accepted);
      if (!accepted) throw new EngineError('system', `${request.method} ${path}: the handler returned without answering`);
    } catch (err) {
      if (!accepted) writeRawError(socket, err, commonHeaders);
    }
  };
  app.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => void onUpgrade(req, socket, head));

  const context = createRouteContext(app, engine, logger, settings, hijack);
  for (const register of options.routes) register(context);
  return { app, upgraded };
}

function abortOnClose(socket: Duplex): AbortSignal {
  const controller = new AbortController();
  if (socket.destroyed) controller.abort(new EngineError('cancelled', 'client closed the connection'));
  else socket.once('close', () => controller.abort(new EngineError('cancelled', 'client closed the connection')));
  return controller.signal;
}

export type { Server };

/**
 * Docker's error body. Sent as a Buffer: for a string fastify appends "; charset=utf-8" to the
 * type, and the docker CLI decodes {"message"} only when Content-Type is exactly application/json.
 */
function sendError(reply: FastifyReply, status: number, message: string): FastifyReply {
  return reply.code(status).type('application/json').send(Buffer.from(JSON.stringify({ message })));
}
