import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import http from 'node:http';
import net, { type AddressInfo } from 'node:net';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { BodyBuffers, type RegistryRequest, exchange, readAll, send } from '../src/http.js';

const transport = { tls: { verify: true }, stallTimeoutMs: 1000, stallBytes: 64 };

function request(url: string, init: Partial<RegistryRequest> = {}): RegistryRequest {
  return { method: 'GET', url: new URL(url), signal: new AbortController().signal, transport, ...init };
}

/** A server that answers every connection with `answer` (raw bytes, in the pieces given) and records what it was sent. */
async function rawServer(answer: (Buffer | string)[], options: { closeAfter?: boolean; gapMs?: number } = {}): Promise<{ url: string; received: () => string; close: () => Promise<void> }> {
  let received = '';
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => undefined);
    let answered = false;
    socket.on('data', async (data) => {
      received += data.toString('latin1');
      if (answered || !received.includes('\r\n\r\n')) return;
      answered = true;
      for (const piece of answer) {
        socket.write(piece);
        if (options.gapMs) await new Promise((r) => setTimeout(r, options.gapMs));
      }
      if (options.closeAfter !== false) socket.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    received: () => received,
    close: () =>
      new Promise((resolve) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => resolve());
      }),
  };
}

async function sha(body: Readable): Promise<{ digest: string; pieces: number; bytes: number }> {
  const hash = createHash('sha256');
  let pieces = 0;
  let bytes = 0;
  for await (const chunk of body) {
    hash.update(chunk as Buffer);
    pieces++;
    bytes += (chunk as Buffer).length;
  }
  return { digest: hash.digest('hex'), pieces, bytes };
}

describe('HTTP/1.1 client', () => {
  const servers: Array<{ close: () => Promise<void> }> = [];
  after(async () => {
    for (const s of servers) await s.close();
  });

  it('delivers a large Content-Length body byte for byte, in a few large pieces', async () => {
    const payload = randomBytes(5 * 1024 * 1024 + 17);
    const server = http.createServer((_req, res) => {
      res.setHeader('Content-Length', payload.length);
      res.end(payload);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => new Promise((resolve) => server.close(() => resolve())) });
    const response = await exchange(request(`http://127.0.0.1:${(server.address() as AddressInfo).port}/blob`));
    assert.equal(response.status, 200);
    assert.equal(response.headers['content-length'], String(payload.length));
    const got = await sha(response.body);
    assert.equal(got.bytes, payload.length);
    assert.equal(got.digest, createHash('sha256').update(payload).digest('hex'));
    assert.ok(got.pieces < payload.length / (64 * 1024), `${got.pieces} pieces for ${payload.length} bytes`);
  });

  it('decodes a chunked body split at every awkward place, with extensions and trailers', async () => {
    const parts = ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\nX-A: 2\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\nContent-Type: one\r\nContent-Type: two\r\n\r\n', '5;ext=1\r\nhel', 'lo\r', '\n6\r\n world\r\n0\r\nTrailer: x\r\n\r\n'];
    const server = await rawServer(parts, { gapMs: 20 });
    servers.push(server);
    const response = await exchange(request(`${server.url}/x?y=1`));
    assert.equal((await readAll(response.body, 1024)).toString(), 'hello world');
    assert.equal(response.headers['x-a'], '1, 2');
    assert.deepEqual(response.headers['set-cookie'], ['a=1', 'b=2']);
    assert.equal(response.headers['content-type'], 'one');
    assert.match(server.received(), /^GET \/x\?y=1 HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/);
    assert.match(server.received(), /\r\nConnection: close\r\n\r\n$/);
  });

  it('skips an interim 100 answer and reads a body that ends with the connection', async () => {
    const server = await rawServer(['HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\nuntil', ' the end']);
    servers.push(server);
    const response = await exchange(request(server.url));
    assert.equal(response.status, 200);
    assert.equal((await readAll(response.body, 1024)).toString(), 'until the end');
  });

  it('ends HEAD and 204 answers without a body even when they declare a length', async () => {
    const server = await rawServer(['HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n'], { closeAfter: false });
    servers.push(server);
    const response = await exchange(request(server.url, { method: 'HEAD' }));
    assert.equal(response.headers['content-length'], '1234');
    assert.equal((await readAll(response.body, 1024)).length, 0);
  });

  it('fails a body cut short of its length or of its last chunk', async () => {
    for (const answer of ['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this', 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n']) {
      const server = await rawServer([answer]);
      servers.push(server);
      const response = await exchange(request(server.url));
      await assert.rejects(readAll(response.body, 1024), /the response broke off: the connection closed after \d+ bytes of the body/);
    }
  });

  it('refuses answers that are not HTTP, malformed chunk sizes and endless headers', async () => {
    const cases: Array<[(Buffer | string)[], RegExp, boolean]> = [
      [['SSH-2.0-OpenSSH\r\n\r\n'], /is not HTTP\/1\.1/, false],
      [['HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n'], /malformed Content-Length/, false],
      [['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'], /malformed chunk size/, true],
      [['HTTP/1.1 200 OK\r\n', 'X: ' + 'a'.repeat(70 * 1024)], /headers exceed 65536 bytes/, false],
      [[], /closed before an answer came/, false],
    ];
    for (const [answer, message, inBody] of cases) {
      const server = await rawServer(answer);
      servers.push(server);
      if (inBody) await assert.rejects(exchange(request(server.url)).then((r) => readAll(r.body, 1024)), message);
      else await assert.rejects(exchange(request(server.url)), message);
    }
  });

  it('sends Buffer bodies with a length and streams without one chunked', async () => {
    const seen: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];
    const server = http.createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      seen.push({ headers: req.headers, body });
      res.writeHead(201, { Location: '/next' }).end();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => new Promise((resolve) => server.close(() => resolve())) });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    await exchange(request(base, { method: 'PUT', body: Buffer.from('monolithic') }));
    await exchange(request(base, { method: 'PATCH', body: Readable.from([Buffer.from('one,'), Buffer.from('two')]) }));
    await exchange(request(base, { method: 'POST' }));
    assert.equal(seen[0]!.body, 'monolithic');
    assert.equal(seen[0]!.headers['content-length'], '10');
    assert.equal(seen[1]!.body, 'one,two');
    assert.equal(seen[1]!.headers['transfer-encoding'], 'chunked');
    assert.equal(seen[2]!.headers['content-length'], '0');
    await assert.rejects(exchange(request(base, { headers: { 'X-Evil': 'a\r\nInjected: 1' } })), /contains a line break/);
  });

  it('stops reading an upload when the registry closes the connection part way', async () => {
    const server = await rawServer(['HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n']);
    servers.push(server);
    let sent = 0;
    const endless = new Readable({
      read() {
        sent += 64 * 1024;
        this.push(Buffer.alloc(64 * 1024));
      },
    });
    const response = await exchange(request(server.url, { method: 'PATCH', body: endless }));
    assert.equal(response.status, 401);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the upload source is still open after ${sent} bytes`)), 5000);
      endless.once('close', () => {
        clearTimeout(timer);
        resolve();
      });
    });
    assert.ok(endless.destroyed);
  });

  it('holds the connection while its reader is paused and is not taken for a stall', async () => {
    const payload = randomBytes(8 * 1024 * 1024);
    const server = http.createServer((_req, res) => res.writeHead(200, { 'Content-Length': payload.length }).end(payload));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => new Promise((resolve) => server.close(() => resolve())) });
    const response = await exchange(request(`http://127.0.0.1:${(server.address() as AddressInfo).port}`));
    // Two stall windows without reading: backpressure, not a stall.
    await new Promise((r) => setTimeout(r, 2200));
    assert.ok(response.body.readableLength <= 2 * 1024 * 1024, `buffered ${response.body.readableLength} bytes while paused`);
    const got = await sha(response.body);
    assert.equal(got.digest, createHash('sha256').update(payload).digest('hex'));
  });

  it('cancels on abort, before and during the answer', async () => {
    const server = await rawServer(['HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nsome'], { closeAfter: false });
    servers.push(server);
    const early = new AbortController();
    early.abort();
    await assert.rejects(exchange(request(server.url, { signal: early.signal })), /request cancelled/);
    const late = new AbortController();
    const response = await exchange(request(server.url, { signal: late.signal }));
    const reading = readAll(response.body, 1024);
    late.abort();
    await assert.rejects(reading, /request cancelled/);
  });

  it('follows redirects through send, and stops a loop', async () => {
    const server = http.createServer((req, res) => {
      if (req.url === '/loop') res.writeHead(302, { Location: '/loop' }).end();
      else if (req.url === '/from') res.writeHead(307, { Location: '/to' }).end('ignored');
      else res.writeHead(200, { 'Content-Length': 2 }).end(req.url === '/to' ? 'ok' : 'no');
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push({ close: () => new Promise((resolve) => server.close(() => resolve())) });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const response = await send(request(`${base}/from`));
    assert.equal(response.url.pathname, '/to');
    assert.equal((await readAll(response.body, 16)).toString(), 'ok');
    await assert.rejects(send(request(`${base}/loop`)), /stopped after 10 redirects/);
  });

  it('reads into body buffers again once their pieces are back, and never into one still lent', async () => {
    const data = randomBytes(6 * 1024 * 1024 + 123);
    const server = await rawServer([`HTTP/1.1 200 OK\r\nContent-Length: ${data.length}\r\n\r\n`, data]);
    servers.push(server);
    const readWith = async (giveBack: boolean): Promise<{ copy: Buffer; buffers: number }> => {
      const bodyBuffers = new BodyBuffers();
      const response = await exchange(request(server.url, { bodyBuffers }));
      const kept: Buffer[] = [];
      const copies: Buffer[] = [];
      const seen = new Set<ArrayBufferLike>();
      await new Promise<void>((resolve, reject) => {
        response.body.on('data', (piece: Buffer) => {
          seen.add(piece.buffer);
          if (giveBack) {
            copies.push(Buffer.from(piece));
            bodyBuffers.giveBack(piece);
          } else kept.push(piece);
        });
        response.body.once('end', resolve).once('error', reject);
      });
      // Kept pieces still hold their bytes: nothing was read over them.
      return { copy: giveBack ? Buffer.concat(copies) : Buffer.concat(kept), buffers: seen.size };
    };
    const reused = await readWith(true);
    assert.ok(reused.copy.equals(data));
    assert.ok(reused.buffers <= 3, `${reused.buffers} buffers for 6 MiB`);
    const kept = await readWith(false);
    assert.ok(kept.copy.equals(data));
    assert.ok(kept.buffers >= 7, `only ${kept.buffers} buffers while every piece was kept`);
  });
});
