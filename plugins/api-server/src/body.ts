import { Readable } from 'node:stream';
import { EngineError, errorMessage } from '@tsengine/core';
import type { FastifyInstance } from 'fastify';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The handler takes the body as a raw stream whatever its Content-Type (load, import, build, archive). */
    rawBody?: boolean;
  }
}

/** JSON bodies larger than this are refused; tar and other bodies stream and have no limit. */
const JSON_BODY_LIMIT = 32 * 1024 * 1024;

/**
 * Docker clients send JSON with or without a Content-Type, and tar bodies as application/x-tar (or
 * nothing). JSON is parsed (unknown fields kept, so handlers ignore them); anything else, and every
 * body of a rawBody route, reaches the handler as the request stream itself.
 */
export function installBodyParsers(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', async (request: { headers: Record<string, unknown>; routeOptions: { config?: { rawBody?: boolean } } }, payload: Readable) => {
    if (request.routeOptions.config?.rawBody) return payload;
    const type = String(request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
    if (type === 'application/json' || type.endsWith('+json')) return parseJson(await readAll(payload));
    if (type !== '') return payload;
    const first = await firstChunk(payload);
    if (first === null) return undefined;
    const whole = Readable.from(prepend(first, payload));
    if (!looksLikeJson(first)) return whole;
    return parseJson(await readAll(whole));
  });
}

async function* prepend(first: Buffer, rest: Readable): AsyncGenerator<Buffer> {
  yield first;
  for await (const chunk of rest) yield chunk as Buffer;
}

function looksLikeJson(chunk: Buffer): boolean {
  const text = chunk.subarray(0, 64).toString('utf8').trimStart();
  return text.startsWith('{') || text.startsWith('[');
}

function parseJson(buffer: Buffer): unknown {
  const text = buffer.toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new EngineError('invalid', `invalid JSON in request body: ${errorMessage(err)}`);
  }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream) {
    size += (chunk as Buffer).length;
    if (size > JSON_BODY_LIMIT) throw Object.assign(new EngineError('invalid', `request body is larger than ${JSON_BODY_LIMIT} bytes`), { statusCode: 413 });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

function firstChunk(stream: Readable): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const cleanup = () => {
      stream.off('readable', onReadable);
      stream.off('end', onEnd);
      stream.off('error', onError);
    };
    const onReadable = () => {
      const chunk = stream.read() as Buffer | null;
      if (chunk !== null) {
        cleanup();
        resolve(chunk);
      }
    };
    const onEnd = () => {
      cleanup();
      resolve(null);
    };
    const onError = (err: Error) => {
      cleanup();
      reject(err);
    };
    stream.on('readable', onReadable);
    stream.on('end', onEnd);
    stream.on('error', onError);
  });
}
