import http, { type IncomingMessage } from 'node:http';
import { Readable, type Duplex } from 'node:stream';
import { API_VERSION } from '../version.js';
import { ConnectionError, DaemonError, type DockerClient, type Query, type RequestOptions, type StreamResponse } from './client.js';

export const DEFAULT_HOST = 'unix:///run/tsengine/tsengine.sock';

type Target = { socketPath: string } | { host: string; port: number };

export function parseClientHost(uri: string): Target {
  if (uri.startsWith('unix://')) return { socketPath: uri.slice('unix://'.length) };
  if (uri.startsWith('tcp://') || uri.startsWith('http://')) {
    const url = new URL(uri.replace(/^tcp:/, 'http:'));
    return { host: url.hostname.replace(/^\[(.*)\]$/, '$1'), port: url.port === '' ? 2375 : Number(url.port) };
  }
  throw new Error(`invalid host ${uri}: expected unix:///path or tcp://host:port`);
}

const CONNECT_ERRORS = new Set(['ECONNREFUSED', 'ENOENT', 'EACCES', 'ECONNRESET', 'EHOSTUNREACH', 'ENOTFOUND', 'EPIPE']);

/** The Docker Engine API over a unix socket or TCP with node:http; one connection per request. */
export class HttpDockerClient implements DockerClient {
  private readonly target: Target;

  constructor(readonly host: string) {
    this.target = parseClientHost(host);
  }

  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const res = await this.send(method, path, options);
    const text = await readText(res);
    if ((res.statusCode ?? 0) >= 400) throw daemonError(res, text);
    if (text.trim() === '') return undefined as T;
    if (String(res.headers['content-type'] ?? '').includes('json')) return JSON.parse(text) as T;
    return text as T;
  }

  async stream(method: string, path: string, options: RequestOptions = {}): Promise<StreamResponse> {
    const res = await this.send(method, path, options);
    if ((res.statusCode ?? 0) >= 400) throw daemonError(res, await readText(res));
    return { status: res.statusCode ?? 0, headers: res.headers, body: res };
  }

  hijack(method: string, path: string, options: RequestOptions = {}): Promise<Duplex> {
    return new Promise((resolve, reject) => {
      const req = this.build(method, path, options, { Connection: 'Upgrade', Upgrade: 'tcp' });
      req.once('upgrade', (_res, socket, head) => {
        if (head.length) socket.unshift(head);
        resolve(socket);
      });
      req.once('response', (res: IncomingMessage) => {
        void readText(res).then((text) => reject((res.statusCode ?? 0) >= 400 ? daemonError(res, text) : new DaemonError(res.statusCode ?? 0, `expected the daemon to upgrade ${path}, got ${res.statusCode}`)));
      });
      req.once('error', (err) => reject(this.connectionError(err)));
      this.writeBody(req, options.body);
    });
  }

  private send(method: string, path: string, options: RequestOptions): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      const req = this.build(method, path, options);
      req.once('response', resolve);
      req.once('error', (err) => reject(this.connectionError(err)));
      this.writeBody(req, options.body);
    });
  }

  private build(method: string, path: string, options: RequestOptions, extra: Record<string, string> = {}): http.ClientRequest {
    const headers: Record<string, string> = { ...extra, ...options.headers };
    const body = options.body;
    if (body !== undefined && !(body instanceof Readable) && !Buffer.isBuffer(body)) headers['Content-Type'] ??= 'application/json';
    return http.request({ ...this.target, method, path: `/v${API_VERSION}${path}${queryString(options.query)}`, headers, agent: false });
  }

  private writeBody(req: http.ClientRequest, body: unknown): void {
    if (body === undefined) req.end();
    else if (body instanceof Readable) body.pipe(req);
    else if (Buffer.isBuffer(body)) req.end(body);
    else req.end(JSON.stringify(body));
  }

  private connectionError(err: unknown): Error {
    const code = (err as NodeJS.ErrnoException).code;
    return code && CONNECT_ERRORS.has(code) ? new ConnectionError(this.host, err) : (err as Error);
  }
}

function queryString(query: Query | undefined): string {
  if (!query) return '';
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined) continue;
    params.set(key, typeof value === 'boolean' ? (value ? '1' : '0') : String(value));
  }
  const text = params.toString();
  return text ? `?${text}` : '';
}

async function readText(res: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of res) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function daemonError(res: IncomingMessage, text: string): DaemonError {
  let message = text.trim();
  try {
    const parsed = JSON.parse(text) as { message?: unknown };
    if (typeof parsed.message === 'string') message = parsed.message;
  } catch {
    // not JSON: keep the text
  }
  return new DaemonError(res.statusCode ?? 0, message || `${res.statusCode} ${res.statusMessage ?? ''}`.trim());
}
