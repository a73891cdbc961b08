import type { IncomingHttpHeaders } from 'node:http';
import net, { isIP } from 'node:net';
import { Readable } from 'node:stream';
import tls from 'node:tls';
import { EngineError, unavailable } from '@tsengine/core';

export interface RegistryResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
  /** The URL that answered (after redirects). */
  url: URL;
}

/** TLS material for one registry: CAs from certs.d, an optional client pair, and whether to verify at all. */
export interface TlsSettings {
  ca?: Buffer[];
  cert?: Buffer;
  key?: Buffer;
  verify: boolean;
}

export interface TransportSettings {
  tls: TlsSettings;
  stallTimeoutMs: number;
  stallBytes: number;
}

export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  url: URL;
  headers?: Record<string, string | string[]>;
  body?: Buffer | Readable;
  signal: AbortSignal;
  transport: TransportSettings;
  /** Where the answer's body is read into; by default a new buffer per MiB. */
  bodyBuffers?: BodyBuffers;
}

export const MAX_REDIRECTS = 10;

/** A failure in transit (connection refused or reset, TLS, stall, cut body): worth a retry, unlike an HTTP error status. */
export class TransportError extends EngineError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('unavailable', message, options);
  }
}

/**
 * One HTTP exchange with a registry. GET and HEAD follow redirects (blob storage backends redirect),
 * dropping Authorization when the redirect leaves the registry's origin; a redirect loop is an error.
 */
export async function send(request: RegistryRequest): Promise<RegistryResponse> {
  let url = request.url;
  let headers = request.headers ?? {};
  for (let hop = 0; ; hop++) {
    const response = await exchange({ ...request, url, headers });
    const location = response.headers.location;
    const redirect = [301, 302, 303, 307, 308].includes(response.status) && location && (request.method === 'GET' || request.method === 'HEAD');
    if (!redirect) return response;
    response.body.resume();
    if (hop >= MAX_REDIRECTS) throw new EngineError('unavailable', `${request.method} ${request.url.href}: stopped after ${MAX_REDIRECTS} redirects (last to ${location})`);
    const next = new URL(location, url);
    if (next.origin !== url.origin) headers = Object.fromEntries(Object.entries(headers).filter(([k]) => k.toLowerCase() !== 'authorization'));
    url = next;
  }
}

/** The least room a socket read is given (a read on loopback brings up to 64 KiB); a buffer with less left goes on, and a new one starts. */
const READ_BYTES = 64 * 1024;
/**
 * The body reaches its reader in pieces of buffers this large, filled across reads. Node's http
 * allocates two buffers per 64 KiB read (the socket's and its parser's copy of the body); on a pull
 * those allocations and the garbage collections they caused were most of the main thread's work.
 */
const BODY_BUFFER_BYTES = 1024 * 1024;
const MAX_HEAD_BYTES = 64 * 1024;

/**
 * Body buffers that are used again. The reader hands back each piece of body once it no longer needs
 * it (it has copied it), and a buffer is read into again once the exchange has moved past it and
 * every piece cut from it is back. A blob then goes through a few buffers instead of a new one
 * per MiB, each of which V8 counted toward its next full collection: on a pull those collections
 * were the largest share of the daemon's CPU. For readers that copy what they get; a piece never
 * handed back only keeps its buffer from being used again.
 */
export class BodyBuffers {
  private readonly free: Buffer[] = [];
  private readonly out = new Map<ArrayBufferLike, { buffer: Buffer; pieces: number; filling: boolean }>();

  /** A buffer for an exchange to read into. */
  take(): Buffer {
    const buffer = this.free.pop() ?? Buffer.allocUnsafe(BODY_BUFFER_BYTES);
    this.out.set(buffer.buffer, { buffer, pieces: 0, filling: true });
    return buffer;
  }

  /** The exchange passes on a piece of one of its buffers. */
  lend(piece: Buffer): void {
    const entry = this.out.get(piece.buffer);
    if (entry) entry.pieces++;
  }

  /** The exchange reads no more into `buffer`. */
  retire(buffer: Buffer): void {
    const entry = this.out.get(buffer.buffer);
    if (!entry || !entry.filling) return;
    entry.filling = false;
    this.settle(entry);
  }

  /** The reader is done with a piece it was lent (each piece is handed back once). */
  giveBack(piece: Buffer): void {
    const entry = this.out.get(piece.buffer);
    if (!entry || entry.pieces === 0) return;
    entry.pieces--;
    this.settle(entry);
  }

  private settle(entry: { buffer: Buffer; pieces: number; filling: boolean }): void {
    if (entry.filling || entry.pieces > 0) return;
    this.out.delete(entry.buffer.buffer);
    this.free.push(entry.buffer);
  }
}
const MAX_CHUNK_LINE_BYTES = 1024;

/** Headers whose repeats Node's http drops (it keeps the first); set-cookie always is a list. */
const SINGLE_VALUED = new Set(['age', 'authorization', 'content-length', 'content-type', 'etag', 'expires', 'from', 'host', 'if-modified-since', 'if-unmodified-since', 'last-modified', 'location', 'max-forwards', 'proxy-authorization', 'referer', 'retry-after', 'server', 'user-agent']);

function describe(method: string, url: URL): string {
  return `${method} ${url.href}`;
}

/**
 * Watches a transfer: fewer than stallBytes moved in a stallTimeoutMs window fails it, except while
 * the consumer holds it back (a full buffer is backpressure, not a stall).
 */
function watch(request: RegistryRequest, held: () => boolean, onStall: () => void): { moved(bytes: number): void; stop(): void } {
  const { stallBytes, stallTimeoutMs } = request.transport;
  let moved = 0;
  let atWindowStart = 0;
  const timer = setInterval(() => {
    if (!held() && moved - atWindowStart < stallBytes) onStall();
    atWindowStart = moved;
  }, stallTimeoutMs);
  return {
    moved: (bytes) => (moved += bytes),
    stop: () => clearInterval(timer),
  };
}

function parseHead(text: string, method: string, url: URL): { status: number; headers: IncomingHttpHeaders } {
  const lines = text.split('\r\n');
  const match = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(lines[0] ?? '');
  if (!match) throw new TransportError(`${describe(method, url)}: the answer is not HTTP/1.1 (${JSON.stringify((lines[0] ?? '').slice(0, 80))})`);
  const headers: Record<string, string | string[]> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) throw new TransportError(`${describe(method, url)}: a malformed header line in the answer (${JSON.stringify(line.slice(0, 80))})`);
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const previous = headers[name];
    if (name === 'set-cookie') headers[name] = [...((previous as string[] | undefined) ?? []), value];
    else if (previous === undefined) headers[name] = value;
    else if (!SINGLE_VALUED.has(name)) headers[name] = `${previous as string}, ${value}`;
  }
  return { status: Number(match[1]), headers: headers as IncomingHttpHeaders };
}

type Framing = { kind: 'none' } | { kind: 'length'; remaining: number } | { kind: 'chunked' } | { kind: 'close' };

function framingOf(method: string, status: number, headers: IncomingHttpHeaders, url: URL): Framing {
  if (method === 'HEAD' || status === 204 || status === 304) return { kind: 'none' };
  if (/(^|,)\s*chunked\s*$/i.test(String(headers['transfer-encoding'] ?? ''))) return { kind: 'chunked' };
  const declared = headers['content-length'];
  if (declared !== undefined) {
    if (!/^\d+$/.test(declared)) throw new TransportError(`${describe(method, url)}: a malformed Content-Length ${JSON.stringify(declared)}`);
    return { kind: 'length', remaining: Number(declared) };
  }
  return { kind: 'close' };
}

/**
 * One HTTP/1.1 exchange on a fresh connection (closed afterwards), without following redirects. The
 * socket reads straight into 1 MiB buffers (the request's BodyBuffers, or new ones), and the body goes
 * on in pieces of them: whatever arrived in one turn of the event loop, so a fast registry fills whole
 * buffers and a slow one is not waited for.
 */
export function exchange(request: RegistryRequest): Promise<RegistryResponse> {
  const { method, url, signal, transport } = request;
  const secure = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    if (signal.aborted) {
      reject(new EngineError('cancelled', 'request cancelled'));
      return;
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = Number(url.port || (secure ? 443 : 80));
    let head: Buffer[] | undefined = [];
    let headBytes = 0;
    let framing: Framing = { kind: 'none' };
    let body: Readable | undefined;
    let bodyWatch: { moved(bytes: number): void; stop(): void } | undefined;
    // Reads land in the free end of `slab`; body bytes are kept (moved down over any framing) at
    // [flushedTo, filled) until flushed to the reader as one piece.
    let slab: Buffer = Buffer.allocUnsafe(0);
    let filled = 0;
    let flushedTo = 0;
    let flushScheduled = false;
    let chunkLine = '';
    let chunkState: 'size' | 'data' | 'data-end' | 'trailer' = 'size';
    let chunkRemaining = 0;
    let received = 0;
    let finished = false;

    const failBeforeAnswer = (err: Error) => {
      if (head === undefined) return;
      head = undefined;
      requestWatch.stop();
      socket.destroy();
      reject(err);
    };
    const failBody = (err: Error) => {
      bodyWatch?.stop();
      socket.destroy();
      const failed = body;
      if (!failed || failed.destroyed) return;
      // A body that fails in the packet that brought the head: its reader has not had the answer yet.
      if (failed.listenerCount('error') > 0) failed.destroy(err);
      else setImmediate(() => failed.destroy(err));
    };

    const flush = () => {
      if (filled > flushedTo && body && !body.destroyed) {
        const piece = slab.subarray(flushedTo, filled);
        flushedTo = filled;
        request.bodyBuffers?.lend(piece);
        if (!body.push(piece)) socket.pause();
      }
    };
    const room = (): Buffer => {
      if (slab.length - filled < READ_BYTES) {
        flush();
        request.bodyBuffers?.retire(slab);
        slab = request.bodyBuffers?.take() ?? Buffer.allocUnsafe(BODY_BUFFER_BYTES);
        filled = 0;
        flushedTo = 0;
      }
      return slab.subarray(filled);
    };
    const finish = () => {
      finished = true;
      bodyWatch?.stop();
      flush();
      body!.push(null);
      socket.destroy();
      request.bodyBuffers?.retire(slab);
    };
    /** Keeps slab[at, at + length) as body (at >= filled: it only ever moves down). */
    const keep = (at: number, length: number) => {
      if (at !== filled) slab.copyWithin(filled, at, at + length);
      filled += length;
    };

    /** Strips chunked framing from slab[at, end); returns false once the last chunk and its trailers are through. */
    const unchunk = (at: number, end: number): boolean => {
      while (at < end) {
        if (chunkState === 'data') {
          const n = Math.min(chunkRemaining, end - at);
          keep(at, n);
          at += n;
          chunkRemaining -= n;
          if (chunkRemaining === 0) chunkState = 'data-end';
          continue;
        }
        const newline = slab.indexOf(10, at);
        const lineEnd = newline < 0 || newline >= end ? end : newline + 1;
        chunkLine += slab.toString('latin1', at, lineEnd);
        at = lineEnd;
        if (chunkLine.length > MAX_CHUNK_LINE_BYTES) throw new TransportError(`${describe(method, url)}: a chunk header in the body is longer than ${MAX_CHUNK_LINE_BYTES} bytes`);
        if (!chunkLine.endsWith('\n')) continue;
        const line = chunkLine.replace(/\r?\n$/, '');
        chunkLine = '';
        if (chunkState === 'data-end') {
          if (line !== '') throw new TransportError(`${describe(method, url)}: a chunk in the body does not end where its size says`);
          chunkState = 'size';
        } else if (chunkState === 'size') {
          const size = /^([0-9a-fA-F]{1,12})\s*(;.*)?$/.exec(line);
          if (!size) throw new TransportError(`${describe(method, url)}: a malformed chunk size ${JSON.stringify(line.slice(0, 40))} in the body`);
          chunkRemaining = parseInt(size[1]!, 16);
          chunkState = chunkRemaining === 0 ? 'trailer' : 'data';
        } else if (line === '') return false;
      }
      return true;
    };

    /** Body bytes read into slab[at, at + length). */
    const onBody = (at: number, length: number) => {
      received += length;
      bodyWatch!.moved(length);
      if (framing.kind === 'length') {
        const take = Math.min(length, framing.remaining);
        keep(at, take);
        framing.remaining -= take;
        if (framing.remaining === 0) finish();
      } else if (framing.kind === 'chunked') {
        if (!unchunk(at, at + length)) finish();
      } else keep(at, length);
    };

    /** Head bytes; returns how many of them were head (the rest is body), or -1 while the head is incomplete. */
    const onHead = (bytes: Buffer): number => {
      head!.push(Buffer.from(bytes));
      headBytes += bytes.length;
      const all = Buffer.concat(head!);
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        if (headBytes > MAX_HEAD_BYTES) throw new TransportError(`${describe(method, url)}: the answer's headers exceed ${MAX_HEAD_BYTES} bytes`);
        return -1;
      }
      const { status, headers } = parseHead(all.toString('latin1', 0, end), method, url);
      const used = end + 4 - (headBytes - bytes.length);
      if (status >= 100 && status < 200) {
        // An interim answer (100 Continue): the real one follows.
        head = [];
        headBytes = 0;
        const more = used < bytes.length ? onHead(bytes.subarray(used)) : -1;
        return more < 0 ? -1 : used + more;
      }
      framing = framingOf(method, status, headers, url);
      head = undefined;
      requestWatch.stop();
      body = new Readable({
        highWaterMark: BODY_BUFFER_BYTES,
        read: () => socket.resume(),
        destroy: (err, done) => {
          bodyWatch?.stop();
          socket.destroy();
          done(err);
        },
      });
      bodyWatch = watch(request, () => body!.readableLength >= body!.readableHighWaterMark, () => {
        failBody(new TransportError(`${describe(method, url)}: the registry stalled while sending the body (fewer than ${transport.stallBytes} bytes in ${transport.stallTimeoutMs} ms)`));
      });
      resolve({ status, headers, body, url });
      if (framing.kind === 'none' || (framing.kind === 'length' && framing.remaining === 0)) finish();
      return used;
    };

    const onRead = (length: number): void => {
      try {
        if (finished) return;
        let at = filled;
        if (head) {
          const used = onHead(slab.subarray(at, at + length));
          if (used < 0 || finished) return;
          at += used;
          length -= used;
        }
        if (length > 0) onBody(at, length);
        // What arrived within one turn of the event loop goes on as one piece, so a fast registry
        // fills whole buffers and a slow one is not waited for.
        if (!finished && !flushScheduled) {
          flushScheduled = true;
          setImmediate(() => {
            flushScheduled = false;
            if (!finished) flush();
          });
        }
      } catch (err) {
        if (head) failBeforeAnswer(err as Error);
        else failBody(err as Error);
      }
    };

    const tlsOptions = secure
      ? {
          ...(transport.tls.ca && transport.tls.ca.length ? { ca: transport.tls.ca } : {}),
          ...(transport.tls.cert ? { cert: transport.tls.cert, key: transport.tls.key } : {}),
          rejectUnauthorized: transport.tls.verify,
          ...(isIP(host) ? {} : { servername: host }),
        }
      : {};
    const onread: net.OnReadOpts = {
      buffer: room,
      callback: (n) => {
        onRead(n);
        return true;
      },
    };
    // tls.connect passes onread to its socket; its types do not list it.
    const socket = secure ? tls.connect({ host, port, onread, ...tlsOptions } as tls.ConnectionOptions) : net.connect({ host, port, onread });
    // Until the answer comes, bytes sent count as progress: an upload is slow to answer but moves bytes.
    const requestWatch = watch(request, () => false, () => {
      failBeforeAnswer(new TransportError(`${describe(method, url)}: the registry stalled (fewer than ${transport.stallBytes} bytes in ${transport.stallTimeoutMs} ms)`));
    });

    const onAbort = () => {
      const err = new EngineError('cancelled', 'request cancelled');
      if (head) failBeforeAnswer(err);
      else if (!finished) failBody(err);
    };
    signal.addEventListener('abort', onAbort, { once: true });

    socket.on('error', (err) => {
      const wrapped = err instanceof EngineError ? err : new TransportError(head ? `${describe(method, url)}: ${err.message}` : `${describe(method, url)}: the response broke off: ${err.message}`, { cause: err });
      if (head) failBeforeAnswer(wrapped);
      else if (!finished) failBody(wrapped);
    });
    socket.on('close', () => {
      signal.removeEventListener('abort', onAbort);
      if (head) failBeforeAnswer(new TransportError(`${describe(method, url)}: the connection closed before an answer came`));
      else if (!finished) {
        if (framing.kind === 'close') finish();
        else failBody(new TransportError(`${describe(method, url)}: the response broke off: the connection closed after ${received} bytes of the body`));
      }
    });
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      void sendRequest(socket, request, requestWatch).catch((err: unknown) => {
        // A failed upload source (or a refused header) ends the exchange, answered or not.
        socket.destroy();
        failBeforeAnswer(err instanceof Error ? err : new Error(String(err)));
      });
    });
  });
}

async function sendRequest(socket: net.Socket, request: RegistryRequest, progress: { moved(bytes: number): void }): Promise<void> {
  const { method, url, body } = request;
  const headers: Record<string, string | string[]> = { 'User-Agent': 'tsengine', ...request.headers };
  const has = (name: string) => Object.keys(headers).some((k) => k.toLowerCase() === name);
  if (Buffer.isBuffer(body)) headers['Content-Length'] = String(body.length);
  else if (body === undefined && (method === 'POST' || method === 'PUT' || method === 'PATCH')) headers['Content-Length'] = '0';
  const chunked = body !== undefined && !Buffer.isBuffer(body) && !has('content-length');
  if (chunked) headers['Transfer-Encoding'] = 'chunked';
  let text = `${method} ${url.pathname}${url.search} HTTP/1.1\r\nHost: ${url.host}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (/[\r\n]/.test(name) || /[\r\n]/.test(one)) throw new EngineError('invalid', `${describe(method, url)}: header ${name} contains a line break`);
      text += `${name}: ${one}\r\n`;
    }
  }
  text += 'Connection: close\r\n\r\n';
  // A registry may close the connection mid-upload: waiting for 'drain' alone would then never end.
  const write = (data: Buffer | string): Promise<void> | undefined => (socket.write(data) ? undefined : drained(socket));
  await write(text);
  if (body === undefined) return;
  if (Buffer.isBuffer(body)) {
    progress.moved(body.length);
    await write(body);
    return;
  }
  for await (const chunk of body) {
    if (socket.destroyed) break;
    const data = chunk as Buffer;
    if (data.length === 0) continue;
    progress.moved(data.length);
    if (chunked) write(`${data.length.toString(16)}\r\n`);
    const waiting = write(data);
    if (chunked) await write('\r\n');
    else await waiting;
    if (socket.destroyed) break;
  }
  if (socket.destroyed) body.destroy();
  else if (chunked) await write('0\r\n\r\n');
}

/** Waits until a writable wants more (or is gone), leaving no listeners behind. */
export function drained(stream: NodeJS.WritableStream & NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

/** Reads a whole (small) response; more than `limit` bytes is an error naming `what`. */
export async function readAll(body: Readable, limit: number, what = 'registry response'): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += (chunk as Buffer).length;
    if (total > limit) {
      body.destroy();
      throw new EngineError('invalid', `${what} exceeds ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

export { unavailable };
