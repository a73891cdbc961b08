import { type AttachStreams, type ExecCreateBody, EngineError, errorMessage } from '@tsengine/core';
import type { FastifyRequest } from 'fastify';
import { Writable } from 'node:stream';
import type { RouteModule } from '../helpers.js';
import { StdStream, stdcopyFrame, stdcopyWriter } from '../stdcopy.js';

function id(request: FastifyRequest): string {
  return (request.params as { id: string }).id;
}

function intQuery(request: FastifyRequest, key: string): number {
  const raw = (request.query as Record<string, string | undefined>)[key];
  const n = Number(raw ?? 0);
  if (!Number.isInteger(n)) throw new EngineError('invalid', `invalid value for ${key}: ${raw}`);
  return n;
}

/** Docker's exec API: create, start (hijacked unless detached), resize, inspect. */
export const execRoutes: RouteModule = ({ app, engine, run, reply, hijack }) => {
  app.post('/containers/:id/exec', async (request, res) => {
    const created = await run(request, 'exec.create', { container: id(request), body: (request.body ?? {}) as ExecCreateBody });
    return res.code(201).type('application/json').send(JSON.stringify(created));
  });

  app.get('/exec/:id/json', (request, res) => reply(request, res, 'exec.inspect', { id: id(request) }));

  app.post('/exec/:id/resize', (request, res) => reply(request, res, 'exec.resize', { id: id(request), height: intQuery(request, 'h'), width: intQuery(request, 'w') }, 200));

  hijack('POST', '/exec/:id/start', async (request) => {
    const execId = request.params.id!;
    const body = (request.body ?? {}) as { Detach?: boolean; Tty?: boolean; ConsoleSize?: [number, number] | null };
    const info = await engine.job('exec.inspect', { id: execId }).run();
    const consoleSize = Array.isArray(body.ConsoleSize) && body.ConsoleSize.length === 2 ? body.ConsoleSize : undefined;
    if (body.Detach) {
      await engine.job('exec.start', { id: execId, detach: true, streams: {}, ...(consoleSize ? { consoleSize } : {}) }).run();
      request.accept();
      return;
    }
    const connection = request.accept();
    const tty = info.ProcessConfig.tty;
    const streams: AttachStreams = {};
    if (tty) {
      if (info.OpenStdout || info.OpenStderr) streams.stdout = passThrough(connection);
    } else {
      if (info.OpenStdout) streams.stdout = stdcopyWriter(connection, StdStream.stdout);
      if (info.OpenStderr) streams.stderr = stdcopyWriter(connection, StdStream.stderr);
    }
    if (info.OpenStdin && request.upgraded) streams.stdin = connection;
    try {
      await engine.job('exec.start', { id: execId, streams, ...(consoleSize ? { consoleSize } : {}) }).run();
    } catch (err) {
      // After the 101 the only way to tell the client is the stream itself; the exit code follows from exec inspect.
      const text = Buffer.from(`OCI runtime exec failed: exec failed: unable to start container process: ${errorMessage(err)}: unknown\r\n`);
      if (!connection.destroyed) connection.write(tty ? text : stdcopyFrame(StdStream.stderr, text));
    }
  });
};

/** Raw TTY output to the connection, which it never ends. */
function passThrough(out: Writable): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (out.write(chunk)) done();
      else out.once('drain', () => done());
    },
  });
}
