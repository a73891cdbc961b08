import type { DependencyContainer } from 'tsyringe';
import { EngineError } from '../errors.js';

/**
 * A capability is a small interface that plugins provide under a name (graphdriver "overlay",
 * networkdriver "bridge"). "one" capabilities have a single active provider chosen by the config key
 * of the same name (or by preference); "many" capabilities keep every provider available by name,
 * with an optional default.
 */
export interface Capability<T> {
  readonly name: string;
  readonly mode: 'one' | 'many';
  /** Tried in order when the config names no provider (Docker prefers overlay2, then vfs). */
  readonly preference: readonly string[];
  /** Resolves the active provider's instance. */
  readonly token: symbol;
  /** Resolves a CapabilityProviders<T> with every provider that loaded. */
  readonly providersToken: symbol;
  /** Carries T for type inference only. */
  readonly _type?: T;
}

export function defineCapability<T>(name: string, options: { mode: 'one' | 'many'; preference?: string[] }): Capability<T> {
  return {
    name,
    mode: options.mode,
    preference: options.preference ?? [],
    token: Symbol.for(`tsengine.capability.${name}`),
    providersToken: Symbol.for(`tsengine.capability.${name}.providers`),
  };
}

export interface ProviderRegistration<T = unknown> {
  capability: string;
  name: string;
  plugin: string;
  factory: (container: DependencyContainer) => T;
}

/** The providers of one capability that loaded, each instantiated once on first use. */
export class CapabilityProviders<T> {
  private readonly instances = new Map<string, T>();

  constructor(
    readonly capability: string,
    private readonly registrations: ReadonlyMap<string, ProviderRegistration<T>>,
    private readonly container: DependencyContainer,
    readonly selected: string | undefined,
  ) {}

  names(): string[] {
    return [...this.registrations.keys()];
  }

  has(name: string): boolean {
    return this.registrations.has(name);
  }

  get(name: string): T {
    const cached = this.instances.get(name);
    if (cached !== undefined) return cached;
    const registration = this.registrations.get(name);
    if (!registration) {
      const known = this.names();
      throw new EngineError('notfound', `${this.capability} "${name}" is not available (loaded: ${known.length ? known.join(', ') : 'none'})`);
    }
    const instance = registration.factory(this.container);
    this.instances.set(name, instance);
    return instance;
  }

  active(): T {
    if (!this.selected) throw new EngineError('unavailable', `no ${this.capability} is loaded`);
    return this.get(this.selected);
  }
}
