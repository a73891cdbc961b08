import { Writable } from 'node:stream';
import { type AttachStreams, type ContainerCreateBody, EngineError, type WaitCondition, errorMessage } from '@tsengine/core';
import type { FastifyRequest } from 'fastify';
import { type RouteModule, openRawResponse, parseFilters, queryBool } from '../helpers.js';
import { StdStream, stdcopyWriter } from '../stdcopy.js';

type Query = Record<string, string | string[] | undefined>;

function q(request: FastifyRequest, key: string): string | undefined {
  const value = ((request.query ?? {}) as Query)[key];
  return Array.isArray(value) ? value[value.length - 1] : value;
}

function id(request: FastifyRequest): string {
  return (request.params as { id: string }).id;
}

const WAIT_CONDITIONS = new Set<WaitCondition>(['not-running', 'next-exit', 'removed']);

function waitCondition(raw: string | undefined): WaitCondition {
  if (raw === undefined || raw === '') return 'not-running';
  if (!WAIT_CONDITIONS.has(raw as WaitCondition)) throw new EngineError('invalid', `invalid condition: "${raw}"`);
  return raw as WaitCondition;
}

function optionalInt(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  const n = Number(raw);
  if (!Number.isInteger(n)) throw new EngineError('invalid', `invalid value for ${name}: ${raw}`);
  return n;
}

/** Raw TTY output: passes chunks through to the connection without ever ending it. */
function rawWriter(out: Writable): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (out.write(chunk)) done();
      else out.once('drain', () => done());
    },
  });
}

/** Docker's since/until: unix seconds with an optional fraction ("1700000000.123456789") or an RFC 3339 time. */
export function timeParam(raw: string | undefined, name: string): number | undefined {
  if (raw === undefined || raw === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(raw)) return Number(raw);
  const t = Date.parse(raw);
  if (Number.isNaN(t)) throw new EngineError('invalid', `invalid value for ${name}: ${raw}`);
  return t / 1000;
}

export const containerRoutes: RouteModule = ({ app, engine, run, reply, stream, hijack }) => {
  app.post('/containers/create', async (request, res) => {
    const body = (request.body ?? {}) as ContainerCreateBody;
    const name = q(request, 'name');
    const created = await run(request, 'container.create', { body, ...(name ? { name } : {}) });
    return res.code(201).type('application/json').send(JSON.stringify(created));
  });

  app.get('/containers/json', (request, res) => {
    const limit = optionalInt(q(request, 'limit'), 'limit');
    return reply(request, res, 'container.list', {
      all: queryBool(q(request, 'all')),
      filters: Object.fromEntries(parseFilters(q(request, 'filters'))),
      size: queryBool(q(request, 'size')),
      ...(limit !== undefined && limit > 0 ? { limit } : {}),
    });
  });

  app.get('/containers/:id/logs', async (request, res) => {
    const info = await run(request, 'container.inspect', { id: id(request) });
    const stdout = queryBool(q(request, 'stdout'));
    const stderr = queryBool(q(request, 'stderr'));
    if (!stdout && !stderr) throw new EngineError('invalid', 'Bad parameters: you must choose at least one stream');
    const logType = (info.HostConfig.LogConfig as { Type?: string } | undefined)?.Type ?? 'none';
    if (logType === 'none') throw new EngineError('invalid', 'configured logging driver does not support reading');
    const tailRaw = q(request, 'tail');
    const tail = tailRaw === undefined || tailRaw === '' || tailRaw === 'all' ? undefined : optionalInt(tailRaw, 'tail');
    const since = timeParam(q(request, 'since'), 'since');
    const until = timeParam(q(request, 'until'), 'until');
    const raw = openRawResponse(res, 200, info.Config.Tty ? 'application/vnd.docker.raw-stream' : 'application/vnd.docker.multiplexed-stream');
    const streams: AttachStreams = info.Config.Tty ? { stdout: rawWriter(raw) } : { stdout: stdcopyWriter(raw, StdStream.stdout), stderr: stdcopyWriter(raw, StdStream.stderr) };
    try {
      await run(request, 'container.logs', {
        id: info.Id,
        options: { stdout, stderr, follow: queryBool(q(request, 'follow')), timestamps: queryBool(q(request, 'timestamps')), ...(tail !== undefined ? { tail } : {}), ...(since ? { since } : {}), ...(until ? { until } : {}) },
        streams,
      });
    } finally {
      if (!raw.destroyed) raw.end();
    }
    return res;
  });

  app.post('/containers/:id/restart', (request, res) => {
    const timeout = optionalInt(q(request, 't') ?? q(request, 'timeout'), 't');
    return reply(request, res, 'container.restart', { id: id(request), ...(timeout !== undefined ? { timeout } : {}) });
  });

  app.post('/containers/:id/rename', (request, res) => reply(request, res, 'container.rename', { id: id(request), name: q(request, 'name') ?? '' }));
  app.post('/containers/:id/pause', (request, res) => reply(request, res, 'container.pause', { id: id(request) }));
  app.post('/containers/:id/unpause', (request, res) => reply(request, res, 'container.unpause', { id: id(request) }));

  app.get('/containers/:id/top', (request, res) => {
    const psArgs = q(request, 'ps_args');
    return reply(request, res, 'container.top', { id: id(request), ...(psArgs ? { psArgs } : {}) });
  });

  app.get('/containers/:id/stats', async (request, res) => {
    const streaming = queryBool(q(request, 'stream'), true) && !queryBool(q(request, 'one-shot'));
    if (!streaming) return reply(request, res, 'container.stats', { id: id(request), stream: false });
    const info = await run(request, 'container.inspect', { id: id(request) });
    return stream(request, res, 'container.stats', { id: info.Id, stream: true }, { contentType: 'application/json', immediate: true });
  });

  app.post('/containers/:id/resize', (request, res) => reply(request, res, 'container.resize', { id: id(request), height: optionalInt(q(request, 'h'), 'h') ?? 0, width: optionalInt(q(request, 'w'), 'w') ?? 0 }, 200));

  app.post('/containers/prune', (request, res) => reply(request, res, 'container.prune', { filters: Object.fromEntries(parseFilters(q(request, 'filters'))) }));

  app.get('/containers/:id/json', (request, res) => reply(request, res, 'container.inspect', { id: id(request) }));

  app.post('/containers/:id/start', (request, res) => reply(request, res, 'container.start', { id: id(request) }));

  app.post('/containers/:id/wait', async (request, res) => {
    const condition = waitCondition(q(request, 'condition'));
    // A missing container must be a 404, not an error after the 200 that wait sends at once.
    await run(request, 'container.inspect', { id: id(request) });
    const result = run(request, 'container.wait', { id: id(request), condition }).then(
      (value) => value,
      (err: unknown) => ({ StatusCode: -1, Error: { Message: errorMessage(err) } }),
    );
    // The CLI blocks on these headers before it starts the container.
    const raw = openRawResponse(res, 200, 'application/json');
    const body = await result;
    if (!raw.destroyed) raw.end(JSON.stringify(body) + '\n');
    return res;
  });

  app.delete('/containers/:id', (request, res) => reply(request, res, 'container.remove', { id: id(request), force: queryBool(q(request, 'force')), volumes: queryBool(q(request, 'v')) }));

  app.post('/containers/:id/kill', (request, res) => {
    const signal = q(request, 'signal');
    return reply(request, res, 'container.kill', { id: id(request), ...(signal ? { signal } : {}) });
  });

  app.post('/containers/:id/stop', (request, res) => {
    const timeout = optionalInt(q(request, 't') ?? q(request, 'timeout'), 't');
    return reply(request, res, 'container.stop', { id: id(request), ...(timeout !== undefined ? { timeout } : {}) });
  });

  hijack('POST', '/containers/:id/attach', async (request) => {
    const target = request.params.id!;
    const info = await engine.job('container.inspect', { id: target }).run();
    const wantStdin = queryBool(request.query.stdin);
    const wantStdout = queryBool(request.query.stdout);
    const wantStderr = queryBool(request.query.stderr);
    const connection = request.accept();
    const streams: AttachStreams = {};
    if (info.Config.Tty) {
      if (wantStdout || wantStderr) streams.stdout = rawWriter(connection);
    } else {
      if (wantStdout) streams.stdout = stdcopyWriter(connection, StdStream.stdout);
      if (wantStderr) streams.stderr = stdcopyWriter(connection, StdStream.stderr);
    }
    if (wantStdin && request.upgraded) streams.stdin = connection;
    await engine.job('container.attach', { id: info.Id, streams }, { signal: request.signal }).run();
  });
};
