import { Readable, Writable } from 'node:stream';
import type { Logger } from 'pino';
import { EngineError, errorKind } from '../errors.js';
import type { JobInput, JobName, JobOutput } from './job-map.js';

/** Exit statuses as in Docker 1.x's engine: 0 success, 127 no such job, 1 any other failure. */
export const JobStatus = { ok: 0, failed: 1, cancelled: 130, notFound: 127 } as const;

export interface JobOptions {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  /** Cancels the job when aborted (the API server ties this to the client's connection). */
  signal?: AbortSignal;
}

export type JobHandler<N extends JobName> = (job: Job<N>) => Promise<JobOutput<N>>;

/** One unit of work: typed input and result, streams, an exit status, cancellation and a logger. */
export class Job<N extends JobName = JobName> {
  readonly stdin: Readable;
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly log: Logger;
  status: number | undefined;
  error: Error | undefined;
  private readonly controller = new AbortController();
  private started = false;

  constructor(
    readonly name: N,
    readonly input: JobInput<N>,
    private readonly handler: JobHandler<N> | undefined,
    logger: Logger,
    options: JobOptions = {},
  ) {
    this.stdin = options.stdin ?? Readable.from([]);
    this.stdout = options.stdout ?? discard();
    this.stderr = options.stderr ?? discard();
    this.log = logger.child({ job: name });
    if (options.signal) {
      const outer = options.signal;
      if (outer.aborted) this.controller.abort(outer.reason);
      else outer.addEventListener('abort', () => this.controller.abort(outer.reason), { once: true });
    }
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  cancel(reason: unknown = new EngineError('cancelled', `job ${this.name} cancelled`)): void {
    this.controller.abort(reason);
  }

  /** Runs the handler once; the result is returned and the failure rethrown after status/error are set. */
  async run(): Promise<JobOutput<N>> {
    if (this.started) throw new EngineError('conflict', `job ${this.name} has already been run`);
    this.started = true;
    if (!this.handler) {
      this.status = JobStatus.notFound;
      this.error = new EngineError('notfound', `no such job: ${this.name}`);
      throw this.error;
    }
    try {
      this.signal.throwIfAborted();
      const out = await this.handler(this);
      this.status = JobStatus.ok;
      return out;
    } catch (err) {
      this.error = err instanceof Error ? err : new Error(String(err));
      this.status = errorKind(err) === 'cancelled' ? JobStatus.cancelled : JobStatus.failed;
      throw this.error;
    }
  }
}

function discard(): Writable {
  return new Writable({ write: (_chunk, _enc, done) => done() });
}
