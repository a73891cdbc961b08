import type { Duplex } from 'node:stream';
import { ConnectionError, DEFAULT_HOST, type DockerClient, HttpDockerClient, type RequestOptions, type StreamResponse } from '../client/index.js';
import { CliError, type RunCliOptions } from '../context.js';
import { DEFAULT_PLUGINS } from '../daemon/defaults.js';
import type { EmbeddedEngine } from './engine.js';
import { type EngineChoice, readEngineChoice } from './flags.js';

const STOP_SIGNALS: NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];
const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 };

/**
 * Decides, for one CLI invocation, whether commands talk to a daemon or to an engine booted
 * inside this process: always with `--embedded`; as a fallback when no host was chosen (-H,
 * DOCKER_HOST), the default daemon socket does not answer and we run as root. The engine boots on
 * the first request and stops in close(), taking its containers with it.
 */
export class EmbeddedSession {
  private readonly choice: EngineChoice;
  private starting: Promise<EmbeddedEngine> | undefined;
  private engine: EmbeddedEngine | undefined;
  private readonly onSignal = (signal: NodeJS.Signals) => this.stopOnSignal(signal);

  constructor(
    argv: string[],
    private readonly options: RunCliOptions,
    private readonly stderr: NodeJS.WritableStream,
  ) {
    this.choice = readEngineChoice(argv);
  }

  /** Wraps the context's client factory. */
  clientFactory(): (host: string) => DockerClient {
    const base = this.options.clientFactory ?? ((host: string) => new HttpDockerClient(host));
    const env = this.options.env ?? process.env;
    return (host) => {
      if (this.choice.embedded) return new DeferredClient('embedded engine', () => this.client());
      const mayFallBack = !this.options.clientFactory && host === DEFAULT_HOST && this.choice.host === undefined && !env.DOCKER_HOST && process.getuid?.() === 0;
      if (!mayFallBack) return base(host);
      const daemon = base(host);
      let chosen: Promise<DockerClient> | undefined;
      return new DeferredClient(host, () => (chosen ??= this.daemonOrEmbedded(daemon)));
    };
  }

  /** Stops the engine if one was started; resolves with the exit status to use. */
  async close(code: number): Promise<number> {
    if (!this.starting) return code;
    let engine: EmbeddedEngine;
    try {
      engine = await this.starting;
    } catch {
      for (const signal of STOP_SIGNALS) process.off(signal, this.onSignal);
      return code;
    }
    await this.reportRunning(engine);
    await engine.close();
    for (const signal of STOP_SIGNALS) process.off(signal, this.onSignal);
    return code;
  }

  private async daemonOrEmbedded(daemon: DockerClient): Promise<DockerClient> {
    try {
      await daemon.request('GET', '/_ping');
      return daemon;
    } catch (err) {
      if (!(err instanceof ConnectionError)) throw err;
      try {
        return await this.client();
      } catch (startErr) {
        throw new CliError(`${err.message}\n${errorText(startErr)}`);
      }
    }
  }

  private async client(): Promise<DockerClient> {
    this.starting ??= this.start();
    const engine = await this.starting;
    return new HttpDockerClient(engine.host);
  }

  private async start(): Promise<EmbeddedEngine> {
    // Loaded on demand: the kernel and the plugins are not needed when a daemon answers.
    const { startEmbeddedEngine } = await import('./engine.js');
    this.engine = await startEmbeddedEngine({
      dataRoot: this.choice.dataRoot,
      builtins: this.options.builtins ?? new Map(),
      defaultPlugins: this.options.defaultPlugins ?? DEFAULT_PLUGINS,
    });
    for (const signal of STOP_SIGNALS) process.on(signal, this.onSignal);
    return this.engine;
  }

  /** A signal nobody else handles (run's sig-proxy does) would kill us with the containers left running. */
  private stopOnSignal(signal: NodeJS.Signals): void {
    if (process.listenerCount(signal) > 1) return;
    for (const s of STOP_SIGNALS) process.off(s, this.onSignal);
    const engine = this.engine;
    const exit = () => process.exit(128 + (SIGNAL_NUMBERS[signal] ?? 0));
    if (!engine) return exit();
    void engine.close().finally(exit);
  }

  private async reportRunning(engine: EmbeddedEngine): Promise<void> {
    try {
      const running = await new HttpDockerClient(engine.host).request<Array<{ Names?: string[]; Id: string }>>('GET', '/containers/json');
      if (!running?.length) return;
      const names = running.map((c) => c.Names?.[0]?.replace(/^\//, '') ?? c.Id.slice(0, 12));
      this.stderr.write(`tsengine: the embedded engine stops with this command; stopping ${running.length === 1 ? 'container' : 'containers'} ${names.join(', ')}\n`);
    } catch {
      // the engine is going away anyway
    }
  }
}

/** A client whose target is known only after an async decision (a ping, an engine start-up). */
class DeferredClient implements DockerClient {
  constructor(
    readonly host: string,
    private readonly target: () => Promise<DockerClient>,
  ) {}

  async request<T = unknown>(method: string, path: string, options?: RequestOptions): Promise<T> {
    return (await this.target()).request<T>(method, path, options);
  }

  async stream(method: string, path: string, options?: RequestOptions): Promise<StreamResponse> {
    return (await this.target()).stream(method, path, options);
  }

  async hijack(method: string, path: string, options?: RequestOptions): Promise<Duplex> {
    return (await this.target()).hijack(method, path, options);
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
