import { Readable } from 'node:stream';
import { type ContainerConfig, type ContainerPathStat, EngineError } from '@tsengine/core';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { type RouteModule, queryBool } from '../helpers.js';

type Query = Record<string, string | string[] | undefined>;

function one(request: FastifyRequest, key: string): string | undefined {
  const value = ((request.query ?? {}) as Query)[key];
  return Array.isArray(value) ? value[value.length - 1] : value;
}

function many(request: FastifyRequest, key: string): string[] {
  const value = ((request.query ?? {}) as Query)[key];
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function id(request: FastifyRequest): string {
  return (request.params as { id: string }).id;
}

function archivePath(request: FastifyRequest): string {
  const path = one(request, 'path');
  if (path === undefined || path === '') throw new EngineError('invalid', 'path cannot be empty');
  return path;
}

const PATH_STAT_HEADER = 'X-Docker-Container-Path-Stat';

function setPathStat(res: FastifyReply, stat: ContainerPathStat): void {
  res.header(PATH_STAT_HEADER, Buffer.from(JSON.stringify(stat)).toString('base64'));
}

/** docker diff, export, commit and cp: GET …/changes, GET …/export, POST /commit, HEAD/GET/PUT …/archive. */
export const containerFileRoutes: RouteModule = ({ app, run, reply, stream }) => {
  app.get('/containers/:id/changes', (request, res) => reply(request, res, 'container.changes', { id: id(request) }));

  app.get('/containers/:id/export', (request, res) => stream(request, res, 'container.export', { id: id(request) }, { contentType: 'application/x-tar' }));

  app.post('/commit', async (request, res) => {
    const container = one(request, 'container');
    if (!container) throw new EngineError('invalid', 'container is required');
    const body = request.body;
    const config = body && typeof body === 'object' && !(body instanceof Readable) && !Array.isArray(body) ? (body as ContainerConfig) : null;
    const pauseRaw = one(request, 'pause');
    const input = {
      container,
      changes: many(request, 'changes'),
      // Docker pauses unless told not to (API ≥ 1.13).
      pause: pauseRaw === undefined || pauseRaw === '' ? true : queryBool(pauseRaw),
      config,
      ...Object.fromEntries((['repo', 'tag', 'comment', 'author'] as const).flatMap((key) => (one(request, key) ? [[key, one(request, key)!]] : []))),
    };
    const out = await run(request, 'container.commit', input);
    return res.code(201).type('application/json').send(JSON.stringify(out));
  });

  app.head('/containers/:id/archive', async (request, res) => {
    setPathStat(res, await run(request, 'container.archive.stat', { id: id(request), path: archivePath(request) }));
    return res.code(200).type('application/x-tar').send();
  });

  app.get('/containers/:id/archive', { exposeHeadRoute: false }, async (request, res) => {
    const input = { id: id(request), path: archivePath(request) };
    // The stat goes in a header, which must be set before the first byte of the tar.
    setPathStat(res, await run(request, 'container.archive.stat', input));
    return stream(request, res, 'container.archive.get', input, { contentType: 'application/x-tar' });
  });

  app.put('/containers/:id/archive', { config: { rawBody: true } }, async (request, res) => {
    const input = {
      id: id(request),
      path: archivePath(request),
      noOverwriteDirNonDir: queryBool(one(request, 'noOverwriteDirNonDir')),
      copyUIDGID: queryBool(one(request, 'copyUIDGID')),
    };
    const stdin = request.body instanceof Readable ? request.body : request.raw;
    await run(request, 'container.archive.put', input, { stdin });
    return res.code(200).send();
  });
};
