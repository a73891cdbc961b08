import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { type DaemonSettings, Engine, EngineError, type ErrorKind, type VersionInfo } from '@tsengine/core';
import pino from 'pino';
import { DockerApiServer, type RouteModule, UPGRADE_RESPONSE, buildApp, parseFilters, queryBool, routeModules, stdcopyFrame, stdcopyWriter } from '../src/index.js';

declare module '@tsengine/core' {
  interface JobMap {
    'apitest.fail': { in: { kind: ErrorKind }; out: void };
    'apitest.echo': { in: { body: unknown }; out: unknown };
    'apitest.lines': { in: { failAfter: boolean; failBefore: boolean }; out: { done: boolean } };
    'apitest.cat': { in: Record<string, never>; out: void };
    'apitest.missing': { in: Record<string, never>; out: void };
    'apitest.hang': { in: Record<string, never>; out: void };
    'apitest.silent': { in: Record<string, never>; out: void };
  }
}

const logger = pino({ level: 'silent' });
const settings: DaemonSettings = { dataRoot: '/nonexistent', execRoot: '/nonexistent', hosts: [], logLevel: 'info', pidfile: '/nonexistent', version: '1.2.3' };
const VERSION = { Version: '1.2.3', ApiVersion: '1.45' } as VersionInfo;

function testEngine(): Engine {
  const engine = new Engine(logger);
  engine.register('system.version', async () => VERSION);
  engine.register('apitest.fail', async (job) => {
    throw new EngineError(job.input.kind, `failed as ${job.input.kind}`);
  });
  engine.register('apitest.echo', async (job) => job.input.body);
  engine.register('apitest.lines', async (job) => {
    if (job.input.failBefore) throw new EngineError('notfound', 'No such image: nothing:latest');
    job.stdout.write(JSON.stringify({ status: 'one' }) + '\n');
    job.stdout.write(JSON.stringify({ status: 'two' }) + '\n');
    if (job.input.failAfter) throw new Error('disk on fire');
    return { done: true };
  });
  engine.register('apitest.cat', async (job) => {
    for await (const chunk of job.stdin) job.stdout.write(chunk);
  });
  engine.register('apitest.silent', async (job) => {
    await new Promise<void>((resolve) => job.signal.addEventListener('abort', () => resolve(), { once: true }));
  });
  engine.register('apitest.hang', async (job) => {
    job.stdout.write('{"status":"waiting"}\n');
    await new Promise<void>((resolve) => job.signal.addEventListener('abort', () => resolve(), { once: true }));
    cancelled.push(String(job.signal.reason));
    throw job.signal.reason;
  });
  return engine;
}

const cancelled: string[] = [];

/** Test-only routes: each error kind, a job nobody registered, JSON echo, streams, and a hijacked echo. */
const testRoutes: RouteModule = ({ app, reply, stream, hijack }) => {
  app.get('/fail/:kind', (request, res) => reply(request, res, 'apitest.fail', { kind: (request.params as { kind: ErrorKind }).kind }));
  app.get('/missing', (request, res) => reply(request, res, 'apitest.missing', {}));
  app.post('/echo', (request, res) => reply(request, res, 'apitest.echo', { body: request.body ?? null }, 200));
  app.post('/kind', async (request) => ({ stream: request.body instanceof Readable, body: request.body instanceof Readable ? null : request.body }));
  app.post('/lines', (request, res) => {
    const q = request.query as Record<string, string>;
    return stream(request, res, 'apitest.lines', { failAfter: queryBool(q.failAfter), failBefore: queryBool(q.failBefore) }, { contentType: 'application/json', final: (r) => ({ aux: r }) });
  });
  app.post('/hang', (request, res) => stream(request, res, 'apitest.hang', {}, { contentType: 'application/json' }));
  app.post('/silent', (request, res) => stream(request, res, 'apitest.silent', {}, { contentType: 'application/json', immediate: true }));
  app.post('/cat', { config: { rawBody: true } }, (request, res) => stream(request, res, 'apitest.cat', {}, { contentType: 'application/x-tar', stdin: true }));
  hijack('POST', '/echo/:id/attach', async (request) => {
    if (request.params.id === 'missing') throw new EngineError('notfound', 'No such container: missing');
    const conn = request.accept();
    const out = stdcopyWriter(conn, 1);
    out.write(Buffer.from(`hello ${request.params.id} ${JSON.stringify(request.body ?? null)} upgraded=${request.upgraded}\n`));
    if (request.query.hold === '1') return new Promise<void>((resolve) => conn.once('close', () => resolve()));
    if (!request.upgraded) return;
    for await (const chunk of conn) await new Promise<void>((resolve) => out.write(chunk, () => resolve()));
  });
};

function inject() {
  return buildApp({ engine: testEngine(), logger, settings, routes: [...routeModules, testRoutes] }).app;
}

describe('api-server over fastify inject', () => {
  const app = inject();
  after(() => app.close());

  it('answers HEAD and GET /_ping with the headers the docker CLI reads', async () => {
    for (const method of ['HEAD', 'GET'] as const) {
      const res = await app.inject({ method, url: '/_ping' });
      assert.equal(res.statusCode, 200);
      assert.equal(res.headers['api-version'], '1.45');
      assert.equal(res.headers['ostype'], 'linux');
      assert.equal(res.headers['docker-experimental'], 'false');
      assert.equal(res.headers['cache-control'], 'no-cache, no-store, must-revalidate');
      assert.equal(res.headers['pragma'], 'no-cache');
      assert.equal(res.headers['server'], 'tsengine/1.2.3 (linux)');
      assert.equal(res.body, method === 'GET' ? 'OK' : '');
    }
  });

  it('accepts a /v1.xx prefix or none and runs system.version', async () => {
    for (const url of ['/version', '/v1.45/version', '/v1.24/version', '/v1.41/version?x=1']) {
      const res = await app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 200, url);
      assert.deepEqual(res.json(), VERSION);
      assert.equal(res.headers['api-version'], '1.45');
    }
  });

  it('refuses versions above 1.45 and below 1.24 with docker wording', async () => {
    const tooNew = await app.inject({ method: 'GET', url: '/v1.99/version' });
    assert.equal(tooNew.statusCode, 400);
    assert.deepEqual(tooNew.json(), { message: 'client version 1.99 is too new. Maximum supported API version is 1.45' });
    const tooOld = await app.inject({ method: 'GET', url: '/v1.12/_ping' });
    assert.equal(tooOld.statusCode, 400);
    assert.match(tooOld.json().message, /^client version 1\.12 is too old\. Minimum supported API version is 1\.24/);
  });

  it('answers unknown endpoints with 404 page not found', async () => {
    for (const url of ['/nope', '/v1.45/containers/x/nothing']) {
      const res = await app.inject({ method: 'GET', url });
      assert.equal(res.statusCode, 404);
      assert.deepEqual(res.json(), { message: 'page not found' });
      assert.equal(res.headers['content-type'], 'application/json', 'the docker CLI decodes error bodies only for exactly application/json');
      assert.equal(res.headers['api-version'], '1.45');
      assert.equal(res.headers['server'], 'tsengine/1.2.3 (linux)');
    }
  });

  it('maps error kinds to HTTP status codes with a JSON message', async () => {
    const expected: Record<string, number> = { notfound: 404, invalid: 400, conflict: 409, forbidden: 403, unauthorized: 401, notimplemented: 501, unavailable: 503, system: 500 };
    for (const [kind, status] of Object.entries(expected)) {
      const res = await app.inject({ method: 'GET', url: `/v1.45/fail/${kind}` });
      assert.equal(res.statusCode, status, kind);
      assert.match(String(res.headers['content-type']), /^application\/json/);
      assert.deepEqual(res.json(), { message: `failed as ${kind}` });
    }
    const notModified = await app.inject({ method: 'GET', url: '/fail/notmodified' });
    assert.equal(notModified.statusCode, 304);
    assert.equal(notModified.body, '');
  });

  it('turns a job no plugin registered (status 127) into a 404 naming the job', async () => {
    const res = await app.inject({ method: 'GET', url: '/missing' });
    assert.equal(res.statusCode, 404);
    assert.match(res.json().message, /apitest\.missing/);
  });

  it('parses JSON with or without Content-Type, keeps unknown fields, and refuses malformed JSON', async () => {
    const body = JSON.stringify({ Image: 'busybox', SomethingNew: [1, 2] });
    const typed = await app.inject({ method: 'POST', url: '/echo', payload: body, headers: { 'content-type': 'application/json' } });
    assert.deepEqual(typed.json(), { Image: 'busybox', SomethingNew: [1, 2] });
    const untyped = await app.inject({ method: 'POST', url: '/echo', payload: body, headers: { 'content-type': undefined as unknown as string } });
    assert.deepEqual(untyped.json(), { Image: 'busybox', SomethingNew: [1, 2] });
    const bad = await app.inject({ method: 'POST', url: '/echo', payload: '{"Image": x}', headers: { 'content-type': 'application/json' } });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().message, /invalid JSON/);
    const empty = await app.inject({ method: 'POST', url: '/echo', payload: '', headers: { 'content-type': 'application/json' } });
    assert.equal(empty.statusCode, 200);
    assert.equal(empty.body, 'null');
  });

  it('hands tar and untyped non-JSON bodies to handlers as streams', async () => {
    const tar = await app.inject({ method: 'POST', url: '/kind', payload: Buffer.from('layer.tar\0\0\0'), headers: { 'content-type': 'application/x-tar' } });
    assert.deepEqual(tar.json(), { stream: true, body: null });
    const untyped = await app.inject({ method: 'POST', url: '/kind', payload: Buffer.from('file.txt\0data'), headers: { 'content-type': undefined as unknown as string } });
    assert.deepEqual(untyped.json(), { stream: true, body: null });
  });

  it('streams JSON lines, and reports errors as HTTP before the first byte and as an errorDetail line after it', async () => {
    const ok = await app.inject({ method: 'POST', url: '/lines' });
    assert.equal(ok.statusCode, 200);
    assert.equal(ok.headers['content-type'], 'application/json');
    assert.deepEqual(ok.body.trim().split('\n').map((l) => JSON.parse(l)), [{ status: 'one' }, { status: 'two' }, { aux: { done: true } }]);
    const before = await app.inject({ method: 'POST', url: '/lines?failBefore=1' });
    assert.equal(before.statusCode, 404);
    assert.deepEqual(before.json(), { message: 'No such image: nothing:latest' });
    const afterStart = await app.inject({ method: 'POST', url: '/lines?failAfter=True' });
    assert.equal(afterStart.statusCode, 200);
    const lines = afterStart.body.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.at(-1), { errorDetail: { message: 'disk on fire' }, error: 'disk on fire' });
  });

  it('passes the raw request body to job.stdin and streams job.stdout back', async () => {
    const payload = Buffer.alloc(200_000, 7);
    const res = await app.inject({ method: 'POST', url: '/cat', payload, headers: { 'content-type': 'application/json' } });
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['content-type'], 'application/x-tar');
    assert.deepEqual(res.rawPayload, payload);
  });
});

describe('query helpers', () => {
  it('parses both filter shapes', () => {
    assert.deepEqual([...parseFilters('{"name":{"web":true,"db":true}}')], [['name', ['web', 'db']]]);
    assert.deepEqual([...parseFilters('{"label":["a=b"],"dangling":{"true":true}}')], [['label', ['a=b']], ['dangling', ['true']]]);
    assert.equal(parseFilters(undefined).size, 0);
    assert.throws(() => parseFilters('{bad'), (err: unknown) => err instanceof EngineError && err.kind === 'invalid');
  });

  it('reads docker booleans', () => {
    for (const v of ['1', 'true', 'True']) assert.equal(queryBool(v), true, v);
    for (const v of ['0', 'false', 'False', '']) assert.equal(queryBool(v), false, v);
    assert.equal(queryBool(undefined, true), true);
  });

  it('frames stdcopy output', () => {
    assert.deepEqual(stdcopyFrame(2, Buffer.from('hi')), Buffer.from([2, 0, 0, 0, 0, 0, 0, 2, 0x68, 0x69]));
  });
});

/** Sends a raw HTTP request on a fresh connection and returns the socket and everything it receives. */
function rawRequest(socketPath: string, request: string): { socket: net.Socket; received: () => Buffer; closed: Promise<void> } {
  const socket = net.connect(socketPath);
  const chunks: Buffer[] = [];
  socket.on('data', (c: Buffer) => chunks.push(c));
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  socket.write(request);
  return { socket, received: () => Buffer.concat(chunks), closed };
}

async function until(check: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 5000;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

describe('api-server on a real unix socket', () => {
  let dir: string;
  let socketPath: string;
  let server: DockerApiServer;

  before(async () => {
    dir = await mkdtemp(join(os.tmpdir(), 'tsengine-api-'));
    socketPath = join(dir, 'run', 'api.sock');
    server = new DockerApiServer({ engine: testEngine(), logger, settings, routes: [...routeModules, testRoutes] });
    await server.listen([`unix://${socketPath}`, 'tcp://127.0.0.1:0']);
  });
  after(async () => {
    await server.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('creates the socket with mode 0660 and answers ping over it and over tcp', async () => {
    assert.equal((await stat(socketPath)).mode & 0o777, 0o660);
    const body = await new Promise<string>((resolve, reject) => {
      http.get({ socketPath, path: '/v1.45/_ping' }, (res) => {
        let data = '';
        res.on('data', (c) => (data += c));
        res.on('end', () => resolve(`${res.statusCode} ${res.headers['api-version']} ${data}`));
      }).on('error', reject);
    });
    assert.equal(body, '200 1.45 OK');
    const tcp = server.addresses().find((a) => a.startsWith('tcp://'))!;
    assert.match(tcp, /^tcp:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`http://${tcp.slice('tcp://'.length)}/_ping`);
    assert.equal(await res.text(), 'OK');
  });

  it('sends the headers of an immediate stream before the job writes anything (docker run blocks on them)', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request({ socketPath, path: '/silent', method: 'POST' }, (res) => {
        resolve(res.statusCode ?? 0);
        req.destroy();
      });
      req.on('error', () => undefined);
      req.once('error', reject);
      req.end();
    });
    assert.equal(status, 200);
  });

  it('cancels a streaming job when the client disconnects', async () => {
    await new Promise<void>((resolve, reject) => {
      const req = http.request({ socketPath, path: '/hang', method: 'POST' }, (res) => {
        res.once('data', () => req.destroy());
        res.on('error', () => undefined);
        resolve();
      });
      req.on('error', () => undefined);
      req.once('error', reject);
      req.end();
    });
    await until(() => cancelled.length > 0, 'the job to see the abort');
    assert.match(cancelled[0]!, /client closed the connection/);
  });

  it('upgrades a hijack request with the exact 101 line, then streams both ways', async () => {
    const body = '{"Detach":false,"Tty":false}';
    const { socket, received, closed } = rawRequest(
      socketPath,
      `POST /v1.45/echo/c1/attach?stream=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
    );
    await until(() => received().length >= UPGRADE_RESPONSE.length, '101 response');
    assert.equal(received().subarray(0, UPGRADE_RESPONSE.length).toString(), UPGRADE_RESPONSE);
    socket.write('ping-1');
    socket.end();
    await closed;
    const frames = received().subarray(UPGRADE_RESPONSE.length);
    const greeting = Buffer.from(`hello c1 ${body} upgraded=true\n`);
    assert.deepEqual(frames, Buffer.concat([stdcopyFrame(1, greeting), stdcopyFrame(1, Buffer.from('ping-1'))]));
  });

  it('answers a hijack that fails before accept with a normal JSON error', async () => {
    const { received, closed } = rawRequest(socketPath, `POST /v1.45/echo/missing/attach HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    await closed;
    const text = received().toString();
    assert.match(text, /^HTTP\/1\.1 404 Not Found\r\n/);
    assert.match(text, /\{"message":"No such container: missing"\}/);
  });

  it('answers a hijack path without Upgrade headers with 200 and the raw stream', async () => {
    const { received, closed } = rawRequest(socketPath, `POST /echo/c2/attach HTTP/1.1\r\nHost: docker\r\nContent-Length: 0\r\n\r\n`);
    await closed;
    const text = received();
    const headerEnd = text.indexOf('\r\n\r\n') + 4;
    assert.match(text.subarray(0, headerEnd).toString(), /^HTTP\/1\.1 200 OK\r\n[\s\S]*Content-Type: application\/vnd\.docker\.raw-stream\r\n/);
    assert.deepEqual(text.subarray(headerEnd), stdcopyFrame(1, Buffer.from('hello c2 null upgraded=false\n')));
  });

  it('refuses a socket path that is not a socket, removes a stale socket, and close() ends hijacked streams and removes the file', async () => {
    const notSocket = join(dir, 'plain-file');
    await writeFile(notSocket, 'x');
    const other = new DockerApiServer({ engine: testEngine(), logger, settings, routes: [...routeModules, testRoutes] });
    await assert.rejects(other.listen([`unix://${notSocket}`]), /not a socket/);

    const stalePath = join(dir, 'stale.sock');
    // A process killed while listening leaves its socket file behind.
    spawnSync(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stalePath)}, () => process.kill(process.pid, 'SIGKILL'))`]);
    assert.ok((await stat(stalePath)).isSocket());
    await other.listen([`unix://${stalePath}`]);
    const held = rawRequest(stalePath, `POST /echo/c3/attach?hold=1 HTTP/1.1\r\nHost: docker\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n`);
    await until(() => held.received().toString().startsWith(UPGRADE_RESPONSE), '101 response');
    await other.close();
    await held.closed;
    await assert.rejects(stat(stalePath), /ENOENT/);
  });
});
