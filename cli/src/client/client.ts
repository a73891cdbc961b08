import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex, Readable } from 'node:stream';

export type Query = Record<string, string | number | boolean | undefined>;

export interface RequestOptions {
  query?: Query;
  /** A JSON-serialisable value, or a Buffer/stream sent as is (set Content-Type in headers). */
  body?: unknown;
  headers?: Record<string, string>;
}

export interface StreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Readable;
}

/**
 * Everything a client command needs from a daemon. Commands use only this interface, so an
 * in-process engine can serve the same commands. Paths are unversioned (`/containers/json`).
 * Failures are DaemonError (the daemon answered with an error) or ConnectionError (no daemon).
 */
export interface DockerClient {
  /** What the user would call the daemon's address, for messages. */
  readonly host: string;
  /** Runs a request and returns its JSON result (undefined for an empty body, e.g. 204). */
  request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T>;
  /** Runs a request and returns the response body as a stream once the status is known to be a success. */
  stream(method: string, path: string, options?: RequestOptions): Promise<StreamResponse>;
  /** Upgrades the connection (attach, exec start) and returns it raw. */
  hijack(method: string, path: string, options?: RequestOptions): Promise<Duplex>;
}

/** The daemon answered with an error status; printed as "Error response from daemon: …". */
export class DaemonError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
    this.name = 'DaemonError';
  }
}

export class ConnectionError extends Error {
  constructor(
    readonly host: string,
    override readonly cause?: unknown,
  ) {
    super(`Cannot connect to the tsengine daemon at ${host}. Is the daemon running?`);
    this.name = 'ConnectionError';
  }
}
