import type { Logger } from 'pino';
import { EngineError, errorMessage } from '../errors.js';
import { Job, type JobHandler, type JobOptions } from './job.js';
import type { JobInput, JobName, JobOutput } from './job-map.js';

export type PluginState = 'loaded' | 'skipped' | 'failed';

export interface PluginStatus {
  name: string;
  version: string;
  source: string;
  state: PluginState;
  reason?: string;
  provides: Array<{ capability: string; name: string }>;
  jobs: string[];
}

export interface JobInfo {
  name: string;
  /** The plugin that registered it, or "kernel". */
  owner: string;
}

export interface ShutdownReport {
  completed: string[];
  failed: Array<{ name: string; error: string }>;
  timedOut: string[];
}

/** Forwards jobs that no handler here knows, e.g. to another engine (Docker 1.x's catchall). */
export type Catchall = (job: Job) => Promise<unknown>;

interface Registration {
  handler: JobHandler<JobName>;
  owner: string;
}

/**
 * A registry of named job handlers, plus shutdown hooks. Linux-free and transport-free: the API
 * server and the in-process CLI both just build and run jobs.
 */
export class Engine {
  private readonly handlers = new Map<string, Registration>();
  private readonly shutdownHooks: Array<{ name: string; fn: (signal: AbortSignal) => unknown }> = [];
  private readonly pluginStatuses = new Map<string, PluginStatus>();
  private catchall: Catchall | undefined;
  private shuttingDown: Promise<ShutdownReport> | undefined;

  constructor(readonly logger: Logger) {
    this.register('engine.describe', async () => this.describe(), 'kernel');
  }

  register<N extends JobName>(name: N, handler: JobHandler<N>, owner = 'kernel'): void {
    const existing = this.handlers.get(name);
    if (existing) {
      throw new EngineError('conflict', `job "${name}" is already registered by ${existing.owner}; ${owner} cannot register it again`);
    }
    this.handlers.set(name, { handler: handler as unknown as JobHandler<JobName>, owner });
  }

  unregister(name: string): void {
    this.handlers.delete(name);
  }

  has(name: string): boolean {
    return this.handlers.has(name);
  }

  setCatchall(catchall: Catchall | undefined): void {
    this.catchall = catchall;
  }

  job<N extends JobName>(name: N, input: JobInput<N>, options?: JobOptions): Job<N> {
    const registration = this.handlers.get(name);
    let handler = registration?.handler as JobHandler<N> | undefined;
    const catchall = this.catchall;
    if (!handler && catchall) handler = (job) => catchall(job as unknown as Job) as Promise<JobOutput<N>>;
    return new Job(name, input, handler, this.logger, options);
  }

  run<N extends JobName>(name: N, input: JobInput<N>, options?: JobOptions): Promise<JobOutput<N>> {
    return this.job(name, input, options).run();
  }

  jobs(): JobInfo[] {
    return [...this.handlers.entries()].map(([name, r]) => ({ name, owner: r.owner })).sort((a, b) => a.name.localeCompare(b.name));
  }

  setPluginStatus(status: PluginStatus): void {
    this.pluginStatuses.set(status.name, status);
  }

  plugins(): PluginStatus[] {
    return [...this.pluginStatuses.values()];
  }

  describe(): EngineDescription {
    return { jobs: this.jobs(), plugins: this.plugins() };
  }

  /** Hooks run in reverse order of registration, like deferred cleanups. */
  onShutdown(name: string, fn: (signal: AbortSignal) => unknown): void {
    this.shutdownHooks.push({ name, fn });
  }

  get isShuttingDown(): boolean {
    return this.shuttingDown !== undefined;
  }

  /**
   * Runs every hook, newest first, each given what is left of the deadline; a hook still running
   * at the deadline is reported as timed out and the rest are still started (with an aborted
   * signal) so that quick cleanups are not lost behind a slow one.
   */
  shutdown(deadlineMs = 10_000): Promise<ShutdownReport> {
    this.shuttingDown ??= this.runShutdown(deadlineMs);
    return this.shuttingDown;
  }

  private async runShutdown(deadlineMs: number): Promise<ShutdownReport> {
    const report: ShutdownReport = { completed: [], failed: [], timedOut: [] };
    // A ref'd timer (AbortSignal.timeout is unref'd) so that a stuck hook cannot let the process drain away unreported.
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new EngineError('cancelled', `shutdown deadline of ${deadlineMs} ms passed`)), deadlineMs);
    const deadline = controller.signal;
    try {
      await this.runHooks(deadline, report);
    } finally {
      clearTimeout(timer);
    }
    return report;
  }

  private async runHooks(deadline: AbortSignal, report: ShutdownReport): Promise<void> {
    // One listener for all hooks: one per hook passed the EventTarget's limit of ten and warned.
    const passed = abortPromise(deadline);
    for (const hook of [...this.shutdownHooks].reverse()) {
      const outcome = await Promise.race([
        Promise.resolve()
          .then(() => hook.fn(deadline))
          .then(
            () => 'ok' as const,
            (err: unknown) => ({ error: errorMessage(err) }),
          ),
        (deadline.aborted ? delay(LATE_HOOK_GRACE_MS) : passed).then(() => 'timeout' as const),
      ]);
      if (outcome === 'ok') report.completed.push(hook.name);
      else if (outcome === 'timeout') report.timedOut.push(hook.name);
      else {
        report.failed.push({ name: hook.name, error: outcome.error });
        this.logger.error({ hook: hook.name, err: outcome.error }, 'shutdown hook failed');
      }
    }
  }
}

export interface EngineDescription {
  jobs: JobInfo[];
  plugins: PluginStatus[];
}

/** Hooks started after the deadline still get a moment, so a quick cleanup behind a stuck one is not lost. */
const LATE_HOOK_GRACE_MS = 250;

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function abortPromise(signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
}
