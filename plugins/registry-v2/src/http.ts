import http, { type IncomingHttpHeaders } from 'node:http';
import https from 'node:https';
import { PassThrough, type Readable } from 'node:stream';
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

function describe(method: string, url: URL): string {
  return `${method} ${url.href}`;
}

/**
 * Watches a transfer: fewer than stallBytes moved in a stallTimeoutMs window fails it, except while
 * the consumer holds it back (a full buffer is backpressure, not a stall).
 */
function watch(transport: TransportSettings, held: () => boolean, onStall: () => void): { moved(bytes: number): void; stop(): void } {
  let moved = 0;
  let atWindowStart = 0;
  const timer = setInterval(() => {
    if (!held() && moved - atWindowStart < transport.stallBytes) onStall();
    atWindowStart = moved;
  }, transport.stallTimeoutMs);
  return {
    moved: (bytes) => (moved += bytes),
    stop: () => clearInterval(timer),
  };
}

function exchange({ method, url, headers = {}, body, signal, transport }: RegistryRequest): Promise<RegistryResponse> {
  const secure = url.protocol === 'https:';
  return new Promise((resolve, reject) => {
    const outgoing: Record<string, string | string[]> = { 'User-Agent': 'tsengine', ...headers };
    if (Buffer.isBuffer(body)) outgoing['Content-Length'] = String(body.length);
    else if (body === undefined && (method === 'POST' || method === 'PUT' || method === 'PATCH')) outgoing['Content-Length'] = '0';
    const tls = secure ? { ca: transport.tls.ca && transport.tls.ca.length ? transport.tls.ca : undefined, cert: transport.tls.cert, key: transport.tls.key, rejectUnauthorized: transport.tls.verify } : {};
    let settled = false;
    const fail = (err: Error) => {
      requestWatch.stop();
      if (settled) return;
      settled = true;
      reject(err);
    };
    // Until the answer comes, bytes sent count as progress: an upload is slow to answer but moves bytes.
    const requestWatch = watch(transport, () => false, () => {
      const err = new TransportError(`${describe(method, url)}: the registry stalled (fewer than ${transport.stallBytes} bytes in ${transport.stallTimeoutMs} ms)`);
      req.destroy(err);
      fail(err);
    });
    const req = (secure ? https : http).request(url, { method, headers: outgoing, signal, ...tls }, (res) => {
      requestWatch.stop();
      settled = true;
      const guarded = new PassThrough();
      const bodyWatch = watch(transport, () => guarded.readableLength >= guarded.readableHighWaterMark || guarded.writableNeedDrain, () => {
        bodyWatch.stop();
        const err = new TransportError(`${describe(method, url)}: the registry stalled while sending the body (fewer than ${transport.stallBytes} bytes in ${transport.stallTimeoutMs} ms)`);
        res.destroy(err);
        guarded.destroy(err);
      });
      res.on('error', (err) => {
        bodyWatch.stop();
        guarded.destroy(err instanceof EngineError ? err : new TransportError(`${describe(method, url)}: the response broke off: ${err.message}`, { cause: err }));
      });
      guarded.on('close', () => {
        bodyWatch.stop();
        if (!res.complete) res.destroy();
      });
      guarded.on('finish', () => bodyWatch.stop());
      // Counted on the way in, so the count does not depend on how the consumer reads.
      const write = guarded.write.bind(guarded);
      guarded.write = ((chunk: Buffer, ...rest: unknown[]) => {
        bodyWatch.moved(chunk.length);
        return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
      }) as typeof guarded.write;
      res.pipe(guarded);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: guarded, url });
    });
    req.on('error', (err) => {
      if (signal.aborted) fail(new EngineError('cancelled', 'request cancelled', { cause: err }));
      else if (err instanceof EngineError) fail(err);
      else fail(new TransportError(`${describe(method, url)}: ${err.message}`, { cause: err }));
    });
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) {
      requestWatch.moved(body.length);
      req.end(body);
    } else {
      body.on('data', (chunk: Buffer) => requestWatch.moved(chunk.length));
      body.on('error', (err) => req.destroy(err));
      body.pipe(req);
    }
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
