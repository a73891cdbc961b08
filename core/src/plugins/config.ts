import { dirname, resolve } from 'node:path';
import { cosmiconfig } from 'cosmiconfig';
import { errorMessage } from '../errors.js';

export interface PluginEntry {
  /** npm package name, or a path (relative paths are resolved against the config file's folder). */
  ref: string;
  options: unknown;
}

/** Daemon settings that may come from the config file (docker's daemon.json spellings). */
export interface DaemonConfig {
  'data-root'?: string;
  'exec-root'?: string;
  hosts?: string[];
  'log-level'?: string;
  pidfile?: string;
}

export interface EngineConfig {
  /** The file it came from, or a description such as "built-in defaults". */
  source: string;
  /** Folder that relative plugin paths and package names are resolved from. */
  baseDir: string;
  plugins: PluginEntry[];
  /** Capability name → provider name, e.g. graphdriver → overlay. Checked against the plugins once loaded. */
  selections: Map<string, string>;
  daemon: DaemonConfig;
}

export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly key: string | undefined,
    readonly reason: string,
  ) {
    super(`config ${file}${key === undefined ? '' : `: key "${key}"`}: ${reason}`);
    this.name = 'ConfigError';
  }
}

const DAEMON_KEYS: Record<keyof DaemonConfig, 'string' | 'string[]'> = {
  'data-root': 'string',
  'exec-root': 'string',
  hosts: 'string[]',
  'log-level': 'string',
  pidfile: 'string',
};

/** Loads the given file, or searches for a `tsengine` config (package.json key, .tsenginerc, tsengine.config.js …). */
export async function loadConfig(options: { file?: string; searchFrom?: string }): Promise<EngineConfig | undefined> {
  const explorer = cosmiconfig('tsengine');
  if (options.file) {
    const file = resolve(options.file);
    let result;
    try {
      result = await explorer.load(file);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw new ConfigError(file, undefined, code === 'ENOENT' ? 'file not found' : `cannot be parsed: ${errorMessage(err)}`);
    }
    if (!result || result.isEmpty) throw new ConfigError(file, undefined, 'file is empty');
    return parseConfig(result.config, file);
  }
  let result;
  try {
    result = await explorer.search(options.searchFrom);
  } catch (err) {
    throw new ConfigError(options.searchFrom ?? process.cwd(), undefined, `cannot be parsed: ${errorMessage(err)}`);
  }
  if (!result || result.isEmpty) return undefined;
  return parseConfig(result.config, result.filepath);
}

export function parseConfig(raw: unknown, source: string, baseDir = dirname(source)): EngineConfig {
  if (!isPlainObject(raw)) throw new ConfigError(source, undefined, 'must be a JSON object');
  const config: EngineConfig = { source, baseDir, plugins: [], selections: new Map(), daemon: {} };
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'plugins') config.plugins = parsePlugins(value, source);
    else if (key in DAEMON_KEYS) parseDaemonKey(config.daemon, key as keyof DaemonConfig, value, source);
    else if (typeof value === 'string' && value !== '') config.selections.set(key, value);
    else throw new ConfigError(source, key, 'unknown key: not a daemon setting (' + Object.keys(DAEMON_KEYS).join(', ') + '), "plugins", or a capability selection such as "graphdriver": "overlay"');
  }
  return config;
}

function parsePlugins(value: unknown, source: string): PluginEntry[] {
  if (!Array.isArray(value)) throw new ConfigError(source, 'plugins', 'must be an array of package names, paths or {"plugin": …, "options": {…}} objects');
  return value.map((entry, index) => {
    const key = `plugins[${index}]`;
    if (typeof entry === 'string' && entry !== '') return { ref: entry, options: undefined };
    if (!isPlainObject(entry)) throw new ConfigError(source, key, 'must be a package name, a path or an object');
    for (const k of Object.keys(entry)) {
      if (k !== 'plugin' && k !== 'options') throw new ConfigError(source, `${key}.${k}`, 'unknown key: a plugin entry has only "plugin" and "options"');
    }
    if (typeof entry.plugin !== 'string' || entry.plugin === '') throw new ConfigError(source, `${key}.plugin`, 'must be a package name or a path');
    return { ref: entry.plugin, options: entry.options };
  });
}

function parseDaemonKey(daemon: DaemonConfig, key: keyof DaemonConfig, value: unknown, source: string): void {
  if (DAEMON_KEYS[key] === 'string[]') {
    if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw new ConfigError(source, key, 'must be an array of strings');
    (daemon as Record<string, unknown>)[key] = value;
  } else {
    if (typeof value !== 'string' || value === '') throw new ConfigError(source, key, 'must be a non-empty string');
    (daemon as Record<string, unknown>)[key] = value;
  }
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
