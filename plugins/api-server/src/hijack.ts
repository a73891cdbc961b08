import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '@tsengine/core';
import { EngineError, errorMessage } from '@tsengine/core';
import { httpError } from './errors.js';

/** What Docker answers to an attach or exec start that asked to upgrade; the CLI accepts nothing else. */
export const UPGRADE_RESPONSE =
  'HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.raw-stream\r\nConnection: Upgrade\r\nUpgrade: tcp\r\n\r\n';

export interface HijackRequest {
  method: string;
  /** Path without the /v1.xx prefix and without the query. */
  path: string;
  params: Record<string, string>;
  query: Record<string, string>;
  headers: IncomingHttpHeaders;
  /** The parsed JSON body (exec start sends {"Detach","Tty"}), or undefined. */
  body: unknown;
  /** True when the client asked to upgrade (101); false for a plain POST answered with 200 and a raw stream. */
  upgraded: boolean;
  /** Aborted when the client's connection closes. */
  signal: AbortSignal;
  log: Logger;
  /**
   * Answers the request (101 UPGRADED, or 200 with a raw stream) and returns the connection, raw
   * from then on. Throw before calling it to answer with a normal JSON error (e.g. 404 no such
   * container). Stdin arrives on the returned stream only for upgraded requests; the client may
   * half-close early and output can still be written. The connection is ended when the handler settles.
   */
  accept(): Duplex;
}

export type HijackHandler = (request: HijackRequest) => Promise<void> | void;

interface HijackRoute {
  method: string;
  pattern: string;
  regex: RegExp;
  names: string[];
  handler: HijackHandler;
}

/** Routes hijacked requests (attach, exec start) by method and a fastify-style path (`/containers/:id/attach`). */
export class HijackRouter {
  private readonly routes: HijackRoute[] = [];

  add(method: string, pattern: string, handler: HijackHandler): void {
    const names: string[] = [];
    const source = pattern
      .split('/')
      .map((segment) => {
        if (!segment.startsWith(':')) return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
        names.push(segment.slice(1));
        return '([^/]+)';
      })
      .join('/');
    this.routes.push({ method: method.toUpperCase(), pattern, regex: new RegExp(`^${source}/?$`), names, handler });
  }

  match(method: string, path: string): { handler: HijackHandler; params: Record<string, string> } | undefined {
    for (const route of this.routes) {
      if (route.method !== method.toUpperCase()) continue;
      const m = route.regex.exec(path);
      if (!m) continue;
      const params: Record<string, string> = {};
      route.names.forEach((name, i) => (params[name] = decodeURIComponent(m[i + 1]!)));
      return { handler: route.handler, params };
    }
    return undefined;
  }
}

export function queryRecord(search: string): Record<string, string> {
  return Object.fromEntries(new URLSearchParams(search));
}

/** Reads a Content-Length body that arrived before the upgrade took effect (head) and from the socket. */
export async function readUpgradeBody(request: IncomingMessage, socket: Duplex, head: Buffer): Promise<unknown> {
  const length = Number(request.headers['content-length'] ?? 0);
  let buffered = head;
  while (buffered.length < length) {
    const chunk = await new Promise<Buffer | null>((resolve, reject) => {
      const onData = (c: Buffer) => done(c);
      const onEnd = () => done(null);
      const onError = (err: Error) => {
        socket.off('data', onData);
        socket.off('end', onEnd);
        reject(err);
      };
      const done = (c: Buffer | null) => {
        socket.off('data', onData);
        socket.off('end', onEnd);
        socket.off('error', onError);
        socket.pause();
        resolve(c);
      };
      socket.on('data', onData);
      socket.on('end', onEnd);
      socket.on('error', onError);
      socket.resume();
    });
    if (chunk === null) break;
    buffered = Buffer.concat([buffered, chunk]);
  }
  const body = buffered.subarray(0, length);
  const rest = buffered.subarray(length);
  if (rest.length) socket.unshift(rest);
  if (length === 0 || body.toString('utf8').trim() === '') return undefined;
  try {
    return JSON.parse(body.toString('utf8'));
  } catch (err) {
    throw new EngineError('invalid', `invalid JSON in request body: ${errorMessage(err)}`);
  }
}

/** An HTTP error answered by hand on a connection that never reached fastify. */
export function writeRawError(socket: Duplex, err: unknown, extraHeaders: Record<string, string>): void {
  const { status, message } = httpError(err);
  if (status === 499) {
    socket.destroy();
    return;
  }
  const body = status === 304 ? '' : JSON.stringify({ message }) + '\n';
  const headers = { ...extraHeaders, 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)), Connection: 'close' };
  const lines = [`HTTP/1.1 ${status} ${STATUS_TEXT[status] ?? 'Error'}`, ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`)];
  socket.end(lines.join('\r\n') + '\r\n\r\n' + body);
}

const STATUS_TEXT: Record<number, string> = {
  304: 'Not Modified',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  409: 'Conflict',
  500: 'Internal Server Error',
  501: 'Not Implemented',
  503: 'Service Unavailable',
};
