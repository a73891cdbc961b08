import type { Worker } from 'node:worker_threads';
import { batchHelperThreads } from '@tsengine/linux';

export interface ThreadHandlers<FromThread> {
  message(message: FromThread): void;
  /** The thread died or was closed; whatever it was doing has failed with `err`. */
  failed(err: Error): void;
  /** Whether work is still under way (the thread then stays up past its quiet spell). */
  busy(): boolean;
  /** The thread ended after its quiet spell. */
  quiet?(): void;
}

/**
 * How long a helper thread stays up without work. Starting one again (a new isolate, its modules, its
 * code not yet optimised) cost a cold pull of the bench image about 0.1 s and 0.2-0.3 s of CPU; pulls
 * seconds apart keep their threads at this length.
 */
export const HELPER_IDLE_MS = 30_000;

/**
 * A worker thread that starts on first use and ends after a quiet spell. It never keeps the process
 * alive, and a daemon that pulls nothing for a while holds no thread for it.
 */
export class OnDemandThread<ToThread, FromThread> {
  private worker: Worker | undefined;
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly name: string,
    private readonly spawn: () => Worker,
    private readonly handlers: ThreadHandlers<FromThread>,
    private readonly idleMs: number,
  ) {}

  get running(): boolean {
    return this.worker !== undefined;
  }

  /** Starts the thread if it is not up, and keeps it from ending while the caller uses it. */
  ensure(): void {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    if (this.worker) return;
    const worker = this.spawn();
    worker.unref();
    // A new thread takes the main thread's policy; under SCHED_BATCH, its wake-ups stop preempting the main thread.
    worker.once('online', () => batchHelperThreads());
    worker.on('message', (message: FromThread) => this.handlers.message(message));
    worker.on('error', (err) => this.failed(worker, err));
    worker.on('exit', (code) => this.failed(worker, new Error(`the ${this.name} exited (${code})`)));
    this.worker = worker;
  }

  post(message: ToThread, transfer?: ArrayBuffer[]): void {
    this.worker?.postMessage(message, transfer);
  }

  /** Ends the thread after a quiet spell: one in which no work started and none was under way at its end. */
  idle(): void {
    if (this.idleTimer || !this.worker) return;
    this.idleTimer = setTimeout(() => {
      this.idleTimer = undefined;
      if (this.handlers.busy()) this.idle();
      else void this.close().then(() => this.handlers.quiet?.());
    }, this.idleMs);
    this.idleTimer.unref();
  }

  /** Ends the thread now; work under way fails. */
  async close(): Promise<void> {
    if (this.idleTimer) clearTimeout(this.idleTimer);
    this.idleTimer = undefined;
    const worker = this.worker;
    if (!worker) return;
    this.worker = undefined;
    this.handlers.failed(new Error(`the ${this.name} was closed`));
    await worker.terminate();
  }

  private failed(worker: Worker, err: Error): void {
    if (this.worker !== worker) return;
    this.worker = undefined;
    this.handlers.failed(err);
  }
}
