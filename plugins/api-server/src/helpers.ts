import type { OutgoingHttpHeaders, ServerResponse } from 'node:http';
import { PassThrough, Readable, Writable } from 'node:stream';
import {
  type DaemonSettings,
  type Engine,
  EngineError,
  type JobInput,
  type JobName,
  type JobOptions,
  type JobOutput,
  JobStatus,
  type Logger,
} from '@tsengine/core';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { errorLine } from './errors.js';
import type { HijackHandler } from './hijack.js';

/**
 * What a route module (src/routes/<area>.ts) gets. A module registers plain routes on `app` and uses:
 * - `run(request, name, input)`: runs a job tied to the client's connection (cancelled when it goes
 *   away); a job nobody registered (its plugin is not loaded) becomes a 404 naming the job.
 * - `reply(request, reply, name, input, status?)`: runs a job and answers its result as JSON
 *   (an undefined result answers `status`, default 204, with no body).
 * - `stream(request, reply, name, input, options)`: runs a job with the request body as job.stdin
 *   (`stdin: true`) and job.stdout streamed to the client as JSON lines or a tar (load, import,
 *   save, pull, build, events, wait). Errors before the first byte are normal HTTP errors; after it,
 *   JSON streams get an `{"errorDetail":{"message"},"error"}` line and tar streams are cut short.
 * - `hijack(method, path, handler)`: attach/exec-style hijacked connections (see hijack.ts).
 * - `parseFilters`, `queryBool`, `stdcopyWriter` are exported from the package index.
 * Routes that take a tar or other raw body set `config: { rawBody: true }`.
 */
export interface RouteContext {
  readonly app: FastifyInstance;
  readonly engine: Engine;
  readonly logger: Logger;
  readonly settings: DaemonSettings;
  run<N extends JobName>(request: FastifyRequest, name: N, input: JobInput<N>, options?: JobOptions): Promise<JobOutput<N>>;
  reply<N extends JobName>(request: FastifyRequest, reply: FastifyReply, name: N, input: JobInput<N>, status?: number): Promise<FastifyReply>;
  stream<N extends JobName>(request: FastifyRequest, reply: FastifyReply, name: N, input: JobInput<N>, options: StreamOptions<N>): Promise<FastifyReply>;
  hijack(method: 'POST' | 'GET', path: string, handler: HijackHandler): void;
}

export type RouteModule = (context: RouteContext) => void;

export interface StreamOptions<N extends JobName> {
  /** 'application/json' for JSON lines, 'application/x-tar' for archives, … */
  contentType: string;
  /** Hands the request body to job.stdin. */
  stdin?: boolean;
  /** Sends the status and headers at once instead of at the job's first byte (wait, events). */
  immediate?: boolean;
  /** Writes the job's result as a last JSON line, for jobs that report through their result. */
  final?: (result: JobOutput<N>) => unknown;
  status?: number;
}

const connectionSignals = new WeakMap<object, AbortSignal>();

/** Called for every request (onRequest hook): its signal aborts when the client goes away before the response finished. */
export function bindConnectionSignal(request: FastifyRequest, reply: FastifyReply): void {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort(new EngineError('cancelled', `client closed the connection (${request.method} ${request.url})`));
  });
  connectionSignals.set(request.raw, controller.signal);
}

/** The request's connection signal (see bindConnectionSignal); never aborts for requests built without the hook. */
export function connectionSignal(request: FastifyRequest): AbortSignal {
  return connectionSignals.get(request.raw) ?? new AbortController().signal;
}

export function createRouteContext(app: FastifyInstance, engine: Engine, logger: Logger, settings: DaemonSettings, hijack: RouteContext['hijack']): RouteContext {
  const run = async <N extends JobName>(request: FastifyRequest, name: N, input: JobInput<N>, options: JobOptions = {}): Promise<JobOutput<N>> => {
    const job = engine.job(name, input, { ...options, signal: options.signal ?? connectionSignal(request) });
    try {
      return await job.run();
    } catch (err) {
      throw missingJob(job.status, name) ?? err;
    }
  };

  return {
    app,
    engine,
    logger,
    settings,
    hijack,
    run,
    async reply(request, reply, name, input, status) {
      const out = await run(request, name, input);
      if (out === undefined) return reply.code(status ?? 204).send();
      return reply.code(status ?? 200).type('application/json').send(JSON.stringify(out ?? null));
    },
    async stream(request, reply, name, input, options) {
      const out = new PassThrough();
      let markStarted!: () => void;
      const started = new Promise<'data'>((resolve) => (markStarted = () => resolve('data')));
      const sink = new Writable({
        write(chunk: Buffer, _encoding, done) {
          markStarted();
          if (out.destroyed) return done(new EngineError('cancelled', 'client went away'));
          if (out.write(chunk)) done();
          else out.once('drain', () => done());
        },
        // The helper ends the response itself so that it can still append an error line.
        final: (done) => done(),
      });
      const stdin = options.stdin ? (request.body instanceof Readable ? request.body : request.raw) : undefined;
      const job = engine.job(name, input, { stdout: sink, signal: connectionSignal(request), ...(stdin ? { stdin } : {}) });
      const settled = job.run().then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error: missingJob(job.status, name) ?? error }),
      );
      if (!options.immediate) {
        const first = await Promise.race([started, settled.then(() => 'done' as const)]);
        if (first === 'done') {
          const result = await settled;
          if (!result.ok) throw result.error;
        }
      }
      if (options.immediate) out.pipe(openRawResponse(reply, options.status ?? 200, options.contentType));
      else {
        reply.code(options.status ?? 200).header('Content-Type', options.contentType);
        void reply.send(out);
      }
      const result = await settled;
      if (result.ok) {
        if (options.final) out.write(JSON.stringify(options.final(result.value)) + '\n');
        out.end();
      } else if (options.contentType.includes('json')) {
        out.end(errorLine(result.error));
      } else {
        logger.warn({ job: name, err: String(result.error) }, 'stream failed after it started; cutting the response short');
        out.destroy(result.error instanceof Error ? result.error : new Error(String(result.error)));
      }
      return reply;
    },
  };
}

/**
 * Takes the response over and sends status and headers before any body byte. Node otherwise holds
 * headers until the first write, and the docker CLI blocks on them (wait before start, events).
 */
export function openRawResponse(reply: FastifyReply, status: number, contentType: string): ServerResponse {
  reply.hijack();
  const raw = reply.raw;
  raw.writeHead(status, { ...(reply.getHeaders() as OutgoingHttpHeaders), 'Content-Type': contentType });
  raw.flushHeaders();
  return raw;
}

function missingJob(status: number | undefined, name: string): EngineError | undefined {
  if (status !== JobStatus.notFound) return undefined;
  return new EngineError('notfound', `${name} is not available: no loaded plugin provides the job "${name}" (add the plugin that implements it to the daemon's config)`);
}

/**
 * Docker's `filters` query parameter: URL-decoded JSON, either `{"name":{"x":true}}` (what the CLI
 * sends) or the older `{"name":["x"]}`. Returns name → values.
 */
export function parseFilters(raw: string | undefined): Map<string, string[]> {
  const filters = new Map<string, string[]>();
  if (raw === undefined || raw.trim() === '') return filters;
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new EngineError('invalid', `invalid filter: ${raw} is not a JSON object`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new EngineError('invalid', `invalid filter: ${raw} is not a JSON object`);
  for (const [name, value] of Object.entries(parsed as Record<string, unknown>)) {
    if (Array.isArray(value)) filters.set(name, value.map(String));
    else if (typeof value === 'object' && value !== null) {
      filters.set(
        name,
        Object.entries(value as Record<string, unknown>)
          .filter(([, on]) => on === true || on === 'true')
          .map(([k]) => k),
      );
    } else throw new EngineError('invalid', `invalid filter '${name}': expected a list or a map of values`);
  }
  return filters;
}

/** Docker's boolean query values: absent, "", "0", "no", "false", "none" are false; anything else ("1", "true", "True") is true. */
export function queryBool(value: unknown, fallback = false): boolean {
  if (value === undefined || value === null) return fallback;
  const text = String(Array.isArray(value) ? value[value.length - 1] : value).trim().toLowerCase();
  return !['', '0', 'no', 'false', 'none'].includes(text);
}
