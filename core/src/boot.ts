import 'reflect-metadata';
import type { Logger } from 'pino';
import { container as rootContainer, type DependencyContainer } from 'tsyringe';
import type { DaemonSettings } from './capabilities/settings.js';
import { Engine, type PluginStatus } from './kernel/engine.js';
import type { EngineConfig } from './plugins/config.js';
import type { PluginDefinition } from './plugins/definition.js';
import { PluginLoader } from './plugins/loader.js';

export interface BootOptions {
  config: EngineConfig;
  settings: DaemonSettings;
  logger: Logger;
  builtins?: ReadonlyMap<string, PluginDefinition<unknown>>;
  searchPaths?: string[];
}

export interface BootedEngine {
  engine: Engine;
  container: DependencyContainer;
  plugins: PluginStatus[];
}

/** Builds an engine with its own DI scope and loads the configured plugins into it. */
export async function bootEngine(options: BootOptions): Promise<BootedEngine> {
  const engine = new Engine(options.logger);
  const container = rootContainer.createChildContainer();
  const plugins = await new PluginLoader({ ...options, container, engine }).load();
  return { engine, container, plugins };
}
