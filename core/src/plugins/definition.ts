import type { Logger } from 'pino';
import type { DependencyContainer } from 'tsyringe';
import type { Capability } from '../capabilities/capability.js';
import type { DaemonSettings } from '../capabilities/settings.js';
import type { Engine } from '../kernel/engine.js';
import type { JobHandler } from '../kernel/job.js';
import type { JobName } from '../kernel/job-map.js';

/** The kernel's plugin API; a plugin states the semver range it was written for. */
export const PLUGIN_API_VERSION = '1.0.0';

export interface ProvidedCapability {
  capability: string;
  name: string;
}

/** What a plugin gets while it registers: its options, its logger and ways to add jobs and providers. */
export interface PluginContext<O = unknown> {
  readonly plugin: string;
  readonly options: O;
  readonly logger: Logger;
  readonly settings: DaemonSettings;
  /** Runs other jobs. */
  readonly engine: Engine;
  /** Registers a job owned by this plugin. */
  handle<N extends JobName>(name: N, handler: JobHandler<N>): void;
  /** Offers an implementation of a capability; must match one of the definition's `provides`. */
  provide<T>(capability: Capability<T>, name: string, factory: (container: DependencyContainer) => T): void;
  /** The active provider of a capability listed in `uses`, or undefined when none loaded. */
  use<T>(capability: Capability<T>): T | undefined;
  /** Runs at shutdown, before the hooks of the plugins this one required. */
  onShutdown(fn: (signal: AbortSignal) => unknown): void;
}

export interface PluginDefinition<O = unknown> {
  name: string;
  version: string;
  /** Semver range of PLUGIN_API_VERSION this plugin supports, e.g. "^1.0.0". */
  api: string;
  description?: string;
  provides?: ProvidedCapability[];
  /** Capabilities that must be provided by plugins loaded before this one. */
  requires?: string[];
  /**
   * Capabilities this plugin works with when some configured plugin provides them (it then loads
   * after those providers) and without otherwise; read them with `context.use`.
   */
  uses?: string[];
  /** Validates and normalises the config's options for this plugin; throw to reject them. */
  parseOptions?(raw: unknown): O;
  /**
   * Registers jobs, providers and DI bindings; may be async (restore state first). Every required
   * capability is already resolvable here. Throw PluginSkip when the host lacks what it needs.
   */
  register(container: DependencyContainer, context: PluginContext<O>): void | Promise<void>;
  /** Runs after register, for work that needs the plugin's own providers in place (probing them). */
  init?(container: DependencyContainer, context: PluginContext<O>): void | Promise<void>;
  shutdown?(signal: AbortSignal): void | Promise<void>;
}

/** Identity function that types a plugin definition. */
export function definePlugin<O = undefined>(definition: PluginDefinition<O>): PluginDefinition<O> {
  return definition;
}

/** Thrown from register or init: the plugin cannot work on this host, and says why. */
export class PluginSkip extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'PluginSkip';
  }
}

/** A configuration or loading problem that stops the engine from starting; names the plugin. */
export class PluginLoadError extends Error {
  constructor(
    readonly plugin: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`plugin ${plugin}: ${message}`, options);
    this.name = 'PluginLoadError';
  }
}
