import { createRequire } from 'node:module';
import { isAbsolute, join, resolve as resolvePath } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import semver from 'semver';
import type { DependencyContainer } from 'tsyringe';
import { type Capability, CapabilityProviders, type ProviderRegistration } from '../capabilities/capability.js';
import { DaemonSettingsToken, type DaemonSettings, EngineToken, LoggerToken } from '../capabilities/settings.js';
import { errorMessage } from '../errors.js';
import type { Engine, PluginStatus } from '../kernel/engine.js';
import { ConfigError, type EngineConfig, isPlainObject } from './config.js';
import { PLUGIN_API_VERSION, type PluginContext, type PluginDefinition, PluginLoadError, PluginSkip } from './definition.js';

export interface LoadOptions {
  config: EngineConfig;
  container: DependencyContainer;
  engine: Engine;
  settings: DaemonSettings;
  logger: Logger;
  /** Plugins compiled into this program (the CLI's first-party set, an embedded bundle), by package name. */
  builtins?: ReadonlyMap<string, PluginDefinition<unknown>>;
  /** Extra folders to resolve package names from, after the config file's folder. */
  searchPaths?: string[];
}

interface Candidate {
  definition: PluginDefinition<unknown>;
  source: string;
  options: unknown;
}

/**
 * Loads the configured plugins: resolves and imports each entry, checks its export shape and API
 * range, orders them by `requires`, then registers and initialises each with its own options and
 * logger. Configuration mistakes throw (PluginLoadError / ConfigError); a plugin that throws while
 * registering or initialising is recorded as failed, or skipped when it threw PluginSkip.
 */
export class PluginLoader {
  private readonly registrations = new Map<string, Map<string, ProviderRegistration>>();
  private readonly capabilities = new Map<string, Capability<unknown>>();
  private readonly pending = new Map<string, Set<string>>();
  /** The plugin whose register/init runs now: its own offers count as settled for itself. */
  private starting: string | undefined;
  private readonly providerSets = new Map<string, CapabilityProviders<unknown>>();

  constructor(private readonly options: LoadOptions) {}

  async load(): Promise<PluginStatus[]> {
    const { config, container, engine, settings, logger } = this.options;
    container.register(EngineToken, { useValue: engine });
    container.register(DaemonSettingsToken, { useValue: settings });
    container.register(LoggerToken, { useValue: logger });

    const candidates: Candidate[] = [];
    for (const entry of config.plugins) {
      const { definition, source } = await this.importPlugin(entry.ref);
      candidates.push({ definition, source, options: entry.options });
    }
    this.checkUnique(candidates);
    this.checkSelections(candidates);
    const ordered = orderByRequirements(candidates);
    for (const c of ordered) {
      for (const p of c.definition.provides ?? []) {
        if (!this.pending.has(p.capability)) this.pending.set(p.capability, new Set());
        this.pending.get(p.capability)!.add(c.definition.name);
      }
    }
    const statuses: PluginStatus[] = [];
    for (const candidate of ordered) {
      this.starting = candidate.definition.name;
      const status = await this.start(candidate).finally(() => (this.starting = undefined));
      engine.setPluginStatus(status);
      statuses.push(status);
    }
    this.checkSelectedLoaded(statuses);
    return statuses;
  }

  private async importPlugin(ref: string): Promise<{ definition: PluginDefinition<unknown>; source: string }> {
    const builtin = this.options.builtins?.get(ref);
    if (builtin) return { definition: checkShape(builtin, ref), source: `builtin:${ref}` };
    const { config, searchPaths = [] } = this.options;
    const isPath = ref.startsWith('.') || isAbsolute(ref);
    let resolved: string | undefined;
    const bases = isPath ? [config.baseDir] : [config.baseDir, ...searchPaths];
    for (const base of bases) {
      try {
        resolved = createRequire(join(base, 'noop.js')).resolve(isPath ? resolvePath(config.baseDir, ref) : ref);
        break;
      } catch {
        // try the next base
      }
    }
    if (!resolved) {
      throw new PluginLoadError(ref, isPath ? `no plugin at ${resolvePath(config.baseDir, ref)} (from ${config.source})` : `package not found (searched from ${bases.join(', ')}; install it with npm install ${ref})`);
    }
    let mod: unknown;
    try {
      mod = await import(pathToFileURL(resolved).href);
    } catch (err) {
      throw new PluginLoadError(ref, `failed to import ${resolved}: ${errorMessage(err)}`, { cause: err });
    }
    return { definition: checkShape(pickExport(mod), ref), source: resolved };
  }

  private checkUnique(candidates: Candidate[]): void {
    const byName = new Map<string, Candidate>();
    const providers = new Map<string, string>();
    for (const c of candidates) {
      const name = c.definition.name;
      const other = byName.get(name);
      if (other) throw new PluginLoadError(name, `configured twice (${other.source} and ${c.source})`);
      byName.set(name, c);
      for (const p of c.definition.provides ?? []) {
        const key = `${p.capability} "${p.name}"`;
        const owner = providers.get(key);
        if (owner) throw new PluginLoadError(name, `provides ${key}, which ${owner} already provides; configure only one of them`);
        providers.set(key, name);
      }
    }
  }

  private checkSelections(candidates: Candidate[]): void {
    const { config } = this.options;
    const provided = new Map<string, string[]>();
    for (const c of candidates) {
      for (const p of c.definition.provides ?? []) provided.set(p.capability, [...(provided.get(p.capability) ?? []), p.name]);
    }
    for (const [capability, name] of config.selections) {
      const names = provided.get(capability);
      if (!names) throw new ConfigError(config.source, capability, `unknown key: no configured plugin provides a capability "${capability}"`);
      if (!names.includes(name)) throw new ConfigError(config.source, capability, `${capability} "${name}" is not provided by any configured plugin (available: ${names.join(', ')})`);
    }
  }

  private async start(candidate: Candidate): Promise<PluginStatus> {
    const { definition } = candidate;
    const status: PluginStatus = {
      name: definition.name,
      version: definition.version,
      source: candidate.source,
      state: 'loaded',
      provides: [...(definition.provides ?? [])],
      jobs: [],
    };
    const missing = (definition.requires ?? []).filter((cap) => !this.registrations.get(cap)?.size);
    if (missing.length) {
      this.settle(definition);
      return { ...status, state: 'skipped', reason: `requires ${missing.join(', ')}, but no plugin providing it loaded` };
    }
    let options: unknown = candidate.options;
    if (definition.parseOptions) {
      try {
        options = definition.parseOptions(candidate.options);
      } catch (err) {
        throw new PluginLoadError(definition.name, `bad options: ${errorMessage(err)}`, { cause: err });
      }
    }
    const provided: ProviderRegistration[] = [];
    const shutdownHooks: Array<(signal: AbortSignal) => unknown> = [];
    const { container, engine, settings, logger } = this.options;
    const context: PluginContext<unknown> = {
      plugin: definition.name,
      options,
      logger: logger.child({ plugin: definition.name }),
      settings,
      engine,
      handle: (name, handler) => {
        engine.register(name, handler, definition.name);
        status.jobs.push(name);
      },
      provide: (capability, name, factory) => {
        const declared = (definition.provides ?? []).some((p) => p.capability === capability.name && p.name === name);
        if (!declared) throw new PluginLoadError(definition.name, `provides ${capability.name} "${name}" without declaring it in "provides"`);
        this.capabilities.set(capability.name, capability as Capability<unknown>);
        const registration = { capability: capability.name, name, plugin: definition.name, factory };
        provided.push(registration);
        // Visible at once, so the plugin itself may use it later in register or init.
        this.addProvider(registration);
      },
      use: <T>(capability: Capability<T>): T | undefined => {
        if (![...(definition.requires ?? []), ...(definition.uses ?? [])].includes(capability.name)) {
          throw new PluginLoadError(definition.name, `uses capability "${capability.name}" without listing it in "uses" or "requires"`);
        }
        if (!this.registrations.get(capability.name)?.size) return undefined;
        return container.resolve<T>(capability.token);
      },
      onShutdown: (fn) => shutdownHooks.push(fn),
    };
    try {
      await definition.register(container, context);
      await definition.init?.(container, context);
    } catch (err) {
      for (const p of provided) this.registrations.get(p.capability)?.delete(p.name);
      for (const job of status.jobs) engine.unregister(job);
      status.jobs = [];
      this.settle(definition);
      if (err instanceof PluginLoadError) throw err;
      const skipped = err instanceof PluginSkip || (err instanceof Error && err.name === 'PluginSkip');
      context.logger[skipped ? 'warn' : 'error']({ err: errorMessage(err) }, skipped ? 'plugin skipped' : 'plugin failed');
      return { ...status, state: skipped ? 'skipped' : 'failed', reason: errorMessage(err) };
    }
    this.settle(definition);
    if (definition.shutdown) engine.onShutdown(`plugin ${definition.name}`, (signal) => definition.shutdown!(signal));
    for (const fn of shutdownHooks) engine.onShutdown(`plugin ${definition.name}`, fn);
    return status;
  }

  private addProvider(registration: ProviderRegistration): void {
    const { capability } = registration;
    if (!this.registrations.has(capability)) {
      this.registrations.set(capability, new Map());
      this.bindCapability(capability);
    }
    this.registrations.get(capability)!.set(registration.name, registration);
  }

  private settle(definition: PluginDefinition<unknown>): void {
    for (const p of definition.provides ?? []) this.pending.get(p.capability)?.delete(definition.name);
  }

  private bindCapability(name: string): void {
    const capability = this.capabilities.get(name)!;
    const { container } = this.options;
    container.register(capability.providersToken, { useFactory: () => this.providersOf(name) });
    container.register(capability.token, { useFactory: () => this.providersOf(name).active() });
  }

  /** Built on first use, when every provider of the capability has settled (requirers load after them). */
  private providersOf(name: string): CapabilityProviders<unknown> {
    const existing = this.providerSets.get(name);
    if (existing) return existing;
    const unsettled = new Set(this.pending.get(name));
    if (this.starting) unsettled.delete(this.starting);
    if (unsettled.size) {
      throw new PluginLoadError([...unsettled][0]!, `capability ${name} was used before its providers loaded; the plugin using it must list "${name}" in "requires"`);
    }
    const registrations = this.registrations.get(name) ?? new Map();
    const capability = this.capabilities.get(name)!;
    const selected = this.options.config.selections.get(name) ?? pickDefault(capability, [...registrations.keys()]);
    const providers = new CapabilityProviders(name, registrations, this.options.container, registrations.has(selected ?? '') ? selected : undefined);
    this.providerSets.set(name, providers);
    return providers;
  }

  private checkSelectedLoaded(statuses: PluginStatus[]): void {
    const { config } = this.options;
    for (const [capability, name] of config.selections) {
      if (this.registrations.get(capability)?.has(name)) continue;
      const owner = statuses.find((s) => s.provides.some((p) => p.capability === capability && p.name === name));
      const why = owner ? `plugin ${owner.name} was ${owner.state}: ${owner.reason ?? 'no reason given'}` : 'no plugin provides it';
      throw new ConfigError(config.source, capability, `selected ${capability} "${name}" is not available: ${why}`);
    }
  }
}

function pickDefault(capability: Capability<unknown>, names: string[]): string | undefined {
  if (capability.mode === 'many') return names.length === 1 ? names[0] : capability.preference.find((p) => names.includes(p));
  return capability.preference.find((p) => names.includes(p)) ?? names[0];
}

function pickExport(mod: unknown): unknown {
  const m = mod as Record<string, unknown> | undefined;
  const def = m?.default as Record<string, unknown> | undefined;
  const candidates = [def?.default, def?.plugin, m?.plugin, def];
  return candidates.find((c) => isPlainObject(c) && typeof c.register === 'function') ?? def ?? mod;
}

function checkShape(value: unknown, ref: string): PluginDefinition<unknown> {
  const shapeError = (what: string) =>
    new PluginLoadError(ref, `bad export shape: ${what}; export a plugin definition ({ name, version, api, register }) as the default export or as "plugin"`);
  if (!isPlainObject(value)) throw shapeError('the module exports no object');
  for (const key of ['name', 'version', 'api'] as const) {
    if (typeof value[key] !== 'string' || value[key] === '') throw shapeError(`"${key}" is missing or not a string`);
  }
  if (typeof value.register !== 'function') throw shapeError('"register" is not a function');
  const def = value as unknown as PluginDefinition<unknown>;
  if (!semver.validRange(def.api)) throw new PluginLoadError(def.name, `api "${def.api}" is not a semver range`);
  if (!semver.satisfies(PLUGIN_API_VERSION, def.api)) {
    throw new PluginLoadError(def.name, `incompatible plugin API: it supports ${def.api}, this kernel implements ${PLUGIN_API_VERSION}`);
  }
  for (const p of def.provides ?? []) {
    if (!isPlainObject(p) || typeof p.capability !== 'string' || typeof p.name !== 'string') throw shapeError('"provides" entries must be { capability, name }');
  }
  for (const key of ['requires', 'uses'] as const) {
    const list = def[key];
    if (list !== undefined && (!Array.isArray(list) || !list.every((r) => typeof r === 'string'))) {
      throw shapeError(`"${key}" must be an array of capability names`);
    }
  }
  return def;
}

/** Stable topological order (config order among equals); requirers and users come after every provider of what they require or use. */
export function orderByRequirements<T extends { definition: PluginDefinition<unknown> }>(candidates: T[]): T[] {
  const providersOf = new Map<string, T[]>();
  for (const c of candidates) {
    for (const p of c.definition.provides ?? []) providersOf.set(p.capability, [...(providersOf.get(p.capability) ?? []), c]);
  }
  for (const c of candidates) {
    for (const cap of c.definition.requires ?? []) {
      if (!providersOf.has(cap)) throw new PluginLoadError(c.definition.name, `requires capability "${cap}", which no configured plugin provides`);
    }
  }
  const ordered: T[] = [];
  const state = new Map<T, 'visiting' | 'done'>();
  const visit = (c: T, path: T[]) => {
    const s = state.get(c);
    if (s === 'done') return;
    if (s === 'visiting') {
      const cycle = [...path.slice(path.indexOf(c)), c].map((x) => x.definition.name);
      throw new PluginLoadError(c.definition.name, `dependency cycle: ${cycle.join(' → ')}`);
    }
    state.set(c, 'visiting');
    for (const cap of [...(c.definition.requires ?? []), ...(c.definition.uses ?? [])]) {
      for (const provider of providersOf.get(cap) ?? []) if (provider !== c) visit(provider, [...path, c]);
    }
    state.set(c, 'done');
    ordered.push(c);
  };
  for (const c of candidates) visit(c, []);
  return ordered;
}
