import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { ConfigError, type DaemonSettings, type EngineConfig, type PluginDefinition, loadConfig } from '@tsengine/core';
import { TSENGINE_VERSION } from '../version.js';
import { DEFAULTS, LOG_LEVELS } from './defaults.js';

export interface DaemonFlags {
  plugins?: string;
  dataRoot?: string;
  execRoot?: string;
  host?: string[];
  logLevel?: string;
  pidfile?: string;
}

/** The folder package names resolve from when no config file names one (this package's own). */
export function cliPackageDir(): string {
  return resolve(__dirname, '..', '..', '..');
}

/**
 * `--plugins FILE` wins, else a `tsengine` config found from the working directory, else the
 * built-in defaults: every default plugin that is compiled in (builtins) or installed and built.
 */
export async function resolveConfig(flags: DaemonFlags, builtins: ReadonlyMap<string, PluginDefinition<unknown>>, defaults: string[]): Promise<EngineConfig> {
  const found = await loadConfig(flags.plugins ? { file: flags.plugins } : { searchFrom: process.cwd() });
  if (found) return found;
  const baseDir = cliPackageDir();
  const require = createRequire(join(baseDir, 'noop.js'));
  const available = defaults.filter((ref) => {
    if (builtins.has(ref)) return true;
    try {
      require.resolve(ref);
      return true;
    } catch {
      return false;
    }
  });
  return { source: 'built-in defaults', baseDir, plugins: available.map((ref) => ({ ref, options: undefined })), selections: new Map(), daemon: {} };
}

/** Flags override the config file's daemon keys, which override the defaults. */
export function resolveSettings(flags: DaemonFlags, config: EngineConfig): DaemonSettings {
  const fromFile = config.daemon;
  const dataRoot = resolve(flags.dataRoot ?? fromFile['data-root'] ?? DEFAULTS.dataRoot);
  const execRoot = resolve(flags.execRoot ?? fromFile['exec-root'] ?? DEFAULTS.execRoot);
  const hosts = flags.host?.length ? flags.host : fromFile.hosts?.length ? fromFile.hosts : [DEFAULTS.host];
  const logLevel = flags.logLevel ?? fromFile['log-level'] ?? DEFAULTS.logLevel;
  if (!LOG_LEVELS.includes(logLevel)) throw new ConfigError(config.source, 'log-level', `"${logLevel}" is not one of ${LOG_LEVELS.join(', ')}`);
  const pidfile = resolve(flags.pidfile ?? fromFile.pidfile ?? join(execRoot, 'tsengine.pid'));
  return { dataRoot, execRoot, hosts, logLevel, pidfile, version: TSENGINE_VERSION };
}
