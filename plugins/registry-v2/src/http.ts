import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { Readable } from 'node:stream';
import { EngineError, unavailable } from '@tsengine/core';

export interface RegistryResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: IncomingMessage;
}

export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH';
  url: URL;
  headers?: Record<string, string | string[]>;
  body?: Buffer | Readable;
  signal: AbortSignal;
}

const MAX_REDIRECTS = 5;

/** One HTTP exchange with a registry; GET and HEAD follow redirects (blob storage backends redirect). */
export async function send(request: RegistryRequest): Promise<RegistryResponse> {
  let url = request.url;
  for (let hop = 0; ; hop++) {
    const response = await exchange({ ...request, url });
    const location = response.headers.location;
    const redirect = [301, 302, 303, 307, 308].includes(response.status) && location && (request.method === 'GET' || request.method === 'HEAD');
    if (!redirect || hop >= MAX_REDIRECTS) return response;
    response.body.resume();
    url = new URL(location, url);
  }
}

function exchange({ method, url, headers = {}, body, signal }: RegistryRequest): Promise<RegistryResponse> {
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const outgoing: Record<string, string | string[]> = { 'User-Agent': 'tsengine', ...headers };
    if (Buffer.isBuffer(body)) outgoing['Content-Length'] = String(body.length);
    else if (body === undefined && (method === 'POST' || method === 'PUT')) outgoing['Content-Length'] = '0';
    const req = transport.request(url, { method, headers: outgoing, signal }, (res) => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res }));
    req.on('error', (err) => reject(signal.aborted ? new EngineError('cancelled', 'request cancelled', { cause: err }) : unavailable(`${method} ${url.href}: ${err.message}`, err)));
    if (body === undefined) req.end();
    else if (Buffer.isBuffer(body)) req.end(body);
    else {
      body.on('error', (err) => req.destroy(err));
      body.pipe(req);
    }
  });
}

export async function readAll(body: Readable, limit = 32 * 1024 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of body) {
    total += (chunk as Buffer).length;
    if (total > limit) {
      body.destroy();
      throw unavailable(`registry response exceeds ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}
