/**
 * Errors carry a kind so that every front end can map them the same way
 * (the Docker API maps kinds to HTTP status codes, the CLI to exit codes).
 */
export type ErrorKind =
  | 'invalid'
  | 'notfound'
  | 'conflict'
  | 'forbidden'
  | 'unauthorized'
  | 'notmodified'
  | 'notimplemented'
  | 'unavailable'
  | 'cancelled'
  | 'system';

export class EngineError extends Error {
  readonly kind: ErrorKind;

  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'EngineError';
    this.kind = kind;
  }
}

export function errorKind(err: unknown): ErrorKind {
  if (err instanceof EngineError) return err.kind;
  if (isErrorWithKind(err)) return err.kind;
  if (err instanceof Error && err.name === 'AbortError') return 'cancelled';
  return 'system';
}

// Errors may cross package copies (a third-party plugin bundling its own core), so match by shape too.
function isErrorWithKind(err: unknown): err is { kind: ErrorKind } {
  return typeof err === 'object' && err !== null && (err as { name?: unknown }).name === 'EngineError' && typeof (err as { kind?: unknown }).kind === 'string';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export const notFound = (message: string, cause?: unknown) => new EngineError('notfound', message, { cause });
export const invalid = (message: string, cause?: unknown) => new EngineError('invalid', message, { cause });
export const conflict = (message: string, cause?: unknown) => new EngineError('conflict', message, { cause });
export const notModified = (message: string) => new EngineError('notmodified', message);
export const unavailable = (message: string, cause?: unknown) => new EngineError('unavailable', message, { cause });
export const systemError = (message: string, cause?: unknown) => new EngineError('system', message, { cause });
