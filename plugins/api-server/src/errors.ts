import { type ErrorKind, errorKind, errorMessage } from '@tsengine/core';

/** HTTP status for each engine error kind; cancelled (499) never reaches the client: the connection is closed instead. */
export const STATUS_BY_KIND: Record<ErrorKind, number> = {
  invalid: 400,
  unauthorized: 401,
  forbidden: 403,
  notfound: 404,
  conflict: 409,
  notmodified: 304,
  notimplemented: 501,
  unavailable: 503,
  cancelled: 499,
  system: 500,
};

/** The status and message to answer with; errors from fastify itself (415, 413 …) keep their own status. */
export function httpError(err: unknown): { status: number; message: string; kind: ErrorKind } {
  const kind = errorKind(err);
  const own = (err as { statusCode?: unknown; code?: unknown } | undefined) ?? {};
  if (kind === 'system' && typeof own.statusCode === 'number' && typeof own.code === 'string' && own.code.startsWith('FST_')) {
    return { status: own.statusCode, message: errorMessage(err), kind: own.statusCode < 500 ? 'invalid' : 'system' };
  }
  return { status: STATUS_BY_KIND[kind], message: errorMessage(err), kind };
}

/** A JSON line for errors that happen after a stream of JSON lines has started (pull, load, build …). */
export function errorLine(err: unknown): string {
  const message = errorMessage(err);
  return JSON.stringify({ errorDetail: { message }, error: message }) + '\n';
}
