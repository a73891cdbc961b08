import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  type ApiServer,
  ApiServerCapability,
  type BootedEngine,
  type CapabilityProviders,
  type PluginDefinition,
  bootEngine,
  errorMessage,
} from '@tsengine/core';
import { CliError } from '../context.js';
import { cliPackageDir, resolveConfig, resolveSettings } from '../daemon/config.js';
import { createDaemonLogger } from '../daemon/logger.js';
import { PidFileError, acquirePidFile, releasePidFile } from '../daemon/pidfile.js';

/** How long plugins get to stop when the command ends (containers are killed, not asked to stop). */
const SHUTDOWN_DEADLINE_MS = 15_000;

export interface EmbeddedEngineOptions {
  /** `--data-root`; default: the daemon's (a config file's data-root, else /var/lib/tsengine). */
  dataRoot: string | undefined;
  builtins: ReadonlyMap<string, PluginDefinition<unknown>>;
  defaultPlugins: string[];
  /** Only errors by default: the command's own output must stay clean. */
  logLevel?: string;
}

export interface EmbeddedEngine {
  /** unix://… of its private API socket. */
  readonly host: string;
  readonly dataRoot: string;
  /** Stops the API, every container and network of this engine, then frees the data root. */
  close(): Promise<void>;
}

/**
 * Boots the engine inside this process with the daemon's plugins and settings, except that it
 * listens only on a private socket in a fresh temp exec root and holds the data root's pid file
 * (so a daemon and an embedded engine never share a data root).
 */
export async function startEmbeddedEngine(options: EmbeddedEngineOptions): Promise<EmbeddedEngine> {
  const execRoot = await mkdtemp(join(tmpdir(), 'tsengine-embedded-'));
  const socket = join(execRoot, 'tsengine.sock');
  const host = `unix://${socket}`;
  let lockFile: string | undefined;
  let booted: BootedEngine | undefined;
  const cleanUp = async () => {
    if (booted) await booted.engine.shutdown(SHUTDOWN_DEADLINE_MS).catch(() => undefined);
    if (lockFile) releasePidFile(lockFile);
    // Without force: a mount the engine failed to take down must stay visible, not be half-removed.
    await rm(execRoot, { recursive: true }).catch(() => undefined);
  };
  try {
    const config = await resolveConfig({}, options.builtins, options.defaultPlugins);
    const settings = resolveSettings({ dataRoot: options.dataRoot, execRoot, host: [host], logLevel: options.logLevel ?? 'error', pidfile: join(execRoot, 'tsengine.pid') }, config);
    await mkdir(settings.dataRoot, { recursive: true, mode: 0o711 });
    const file = join(settings.dataRoot, 'tsengine.pid');
    await acquirePidFile(file);
    lockFile = file;
    const logger = createDaemonLogger(settings.logLevel);
    booted = await bootEngine({ config, settings, logger, builtins: options.builtins, searchPaths: [cliPackageDir()] });
    const servers = apiServers(booted);
    for (const server of servers) await server.listen(settings.hosts);
    return {
      host,
      dataRoot: settings.dataRoot,
      async close() {
        await Promise.all(servers.map((s) => s.close().catch(() => undefined)));
        await cleanUp();
      },
    };
  } catch (err) {
    await cleanUp();
    throw startupError(err);
  }
}

function apiServers(booted: BootedEngine): ApiServer[] {
  let names: string[] = [];
  let providers: CapabilityProviders<ApiServer> | undefined;
  try {
    providers = booted.container.resolve<CapabilityProviders<ApiServer>>(ApiServerCapability.providersToken);
    names = providers.names();
  } catch {
    // reported below
  }
  if (!providers || names.length === 0) throw new CliError('no API server plugin is loaded: add "@tsengine/api-server" to the plugins in the config');
  return names.map((name) => providers.get(name));
}

function startupError(err: unknown): CliError {
  if (err instanceof PidFileError) {
    const hint = err.holder === 'daemon' ? 'reach that daemon with -H/DOCKER_HOST and no --embedded, or stop it first' : 'wait for that command to end';
    return new CliError(`cannot start an embedded engine: ${err.message}; ${hint}`);
  }
  return new CliError(`cannot start an embedded engine: ${err instanceof CliError ? err.message : errorMessage(err)}`);
}
