import { EngineError, type ImageFilters, type RegistryAuth } from '@tsengine/core';
import type { FastifyRequest } from 'fastify';
import { type RouteModule, parseFilters, queryBool } from '../helpers.js';

type Query = Record<string, string | string[] | undefined>;

function query(request: FastifyRequest): Query {
  return (request.query ?? {}) as Query;
}

function one(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[value.length - 1] : value;
}

function many(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

function filters(request: FastifyRequest): ImageFilters {
  return Object.fromEntries(parseFilters(one(query(request).filters)));
}

/** Image names carry `/` and `:` unescaped, so /images/{name}/{action} is matched as a wildcard. */
function splitNameAction(request: FastifyRequest, actions: string[]): { name: string; action: string } | undefined {
  const rest = (request.params as { '*': string })['*'];
  for (const action of actions) {
    if (rest.endsWith(`/${action}`) && rest.length > action.length + 1) return { name: decodeURIComponent(rest.slice(0, -action.length - 1)), action };
  }
  return undefined;
}

/** X-Registry-Auth: base64url JSON credentials from the docker CLI ("e30=" is {}); anything unreadable counts as none, as in dockerd. */
export function registryAuth(request: FastifyRequest): RegistryAuth | undefined {
  const header = request.headers['x-registry-auth'];
  const value = Array.isArray(header) ? header[0] : header;
  if (!value) return undefined;
  try {
    const parsed = JSON.parse(Buffer.from(value.replace(/-/g, '+').replace(/_/g, '/'), 'base64').toString('utf8')) as unknown;
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
    const auth: RegistryAuth = {};
    for (const key of ['username', 'password', 'auth', 'identitytoken', 'registrytoken', 'serveraddress'] as const) {
      const field = (parsed as Record<string, unknown>)[key];
      if (typeof field === 'string' && field !== '') auth[key] = field;
    }
    return Object.keys(auth).length ? auth : undefined;
  } catch {
    return undefined;
  }
}

const notFoundRoute = () => new EngineError('notfound', 'page not found');

export const imageRoutes: RouteModule = ({ app, engine, run, reply, stream }) => {
  app.get('/images/json', (request, res) => {
    const q = query(request);
    return reply(request, res, 'image.list', { all: queryBool(one(q.all)), digests: queryBool(one(q.digests)), filters: filters(request) });
  });

  app.get('/images/get', (request, res) => stream(request, res, 'image.save', { names: many(query(request).names) }, { contentType: 'application/x-tar' }));

  app.get('/images/*', (request, res) => {
    const target = splitNameAction(request, ['json', 'history', 'get']);
    if (!target) throw notFoundRoute();
    if (target.action === 'json') return reply(request, res, 'image.inspect', { name: target.name });
    if (target.action === 'history') return reply(request, res, 'image.history', { name: target.name });
    return stream(request, res, 'image.save', { names: [target.name] }, { contentType: 'application/x-tar' });
  });

  app.post('/images/*', async (request, res) => {
    const target = splitNameAction(request, ['tag', 'push']);
    if (!target) throw notFoundRoute();
    const q = query(request);
    if (target.action === 'push') {
      const auth = registryAuth(request);
      return stream(request, res, 'image.push', { name: target.name, ...(one(q.tag) ? { tag: one(q.tag)! } : {}), ...(auth ? { auth } : {}) }, { contentType: 'application/json' });
    }
    const repo = one(q.repo);
    if (!repo) throw new EngineError('invalid', 'repository name must have at least one component');
    await run(request, 'image.tag', { source: target.name, repo, tag: one(q.tag) ?? '' });
    return res.code(201).send();
  });

  app.delete('/images/*', (request, res) => {
    const name = decodeURIComponent((request.params as { '*': string })['*']);
    const q = query(request);
    return reply(request, res, 'image.remove', { name, force: queryBool(one(q.force)), noprune: queryBool(one(q.noprune)) });
  });

  app.post('/images/create', { config: { rawBody: true } }, (request, res) => {
    const q = query(request);
    const fromSrc = one(q.fromSrc);
    if (one(q.fromImage) !== undefined && fromSrc === undefined) {
      // The registry plugin adds image.pull; until one is loaded, say so plainly.
      if (!engine.has('image.pull')) throw new EngineError('notimplemented', 'pulling images is not supported: no registry plugin is loaded');
      const pull: { image: string; tag?: string; platform?: string; auth?: RegistryAuth } = { image: one(q.fromImage)! };
      for (const key of ['tag', 'platform'] as const) if (one(q[key])) pull[key] = one(q[key])!;
      const auth = registryAuth(request);
      if (auth) pull.auth = auth;
      return stream(request, res, 'image.pull', pull, { contentType: 'application/json' });
    }
    if (fromSrc !== '-') throw new EngineError('invalid', fromSrc ? 'importing from a URL is not supported; send the tar as the request body (fromSrc=-)' : 'fromImage or fromSrc is required');
    const input: { repo?: string; tag?: string; changes?: string[]; message?: string; platform?: string } = { changes: many(q.changes) };
    for (const key of ['repo', 'tag', 'message', 'platform'] as const) {
      const v = one(q[key]);
      if (v) input[key] = v;
    }
    return stream(request, res, 'image.import', input, { contentType: 'application/json', stdin: true, final: (out) => ({ status: out.id }) });
  });

  app.post('/images/load', { config: { rawBody: true } }, (request, res) =>
    stream(request, res, 'image.load', { quiet: queryBool(one(query(request).quiet)) }, { contentType: 'application/json', stdin: true }),
  );

  app.post('/images/prune', (request, res) => reply(request, res, 'image.prune', { filters: filters(request) }));

  // The images part; containers, volumes and the build cache join when their plugins provide df jobs.
  app.get('/system/df', async (request, res) => {
    const images = await run(request, 'image.df', {});
    const volumes = engine.has('volume.df') ? await run(request, 'volume.df', {}) : [];
    return res.type('application/json').send(JSON.stringify({ LayersSize: images.LayersSize, Images: images.Images, Containers: [], Volumes: volumes, BuildCache: null, BuilderSize: 0 }));
  });
};
