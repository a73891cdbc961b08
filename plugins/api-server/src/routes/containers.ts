import { Writable } from 'node:stream';
import { type AttachStreams, type ContainerCreateBody, EngineError, type WaitCondition, errorMessage } from '@tsengine/core';
import type { FastifyRequest } from 'fastify';
import { type RouteModule, openRawResponse, queryBool } from '../helpers.js';
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

export const containerRoutes: RouteModule = ({ app, engine, run, reply, hijack }) => {
  app.post('/containers/create', async (request, res) => {
    const body = (request.body ?? {}) as ContainerCreateBody;
    const name = q(request, 'name');
    const created = await run(request, 'container.create', { body, ...(name ? { name } : {}) });
    return res.code(201).type('application/json').send(JSON.stringify(created));
  });

  app.get('/containers/json', (request, res) => reply(request, res, 'container.list', { all: queryBool(q(request, 'all')) }));

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
