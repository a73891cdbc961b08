import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type ApiServer,
  ApiServerCapability,
  type BootedEngine,
  type CapabilityProviders,
  ConfigError,
  type DaemonSettings,
  type Logger,
  type PluginDefinition,
  PluginLoadError,
  bootEngine,
  errorMessage,
} from '@tsengine/core';
import { CliError } from '../context.js';
import { type DaemonFlags, cliPackageDir, resolveConfig, resolveSettings } from './config.js';
import { createDaemonLogger } from './logger.js';
import { PidFileError, acquirePidFile, releasePidFile } from './pidfile.js';

/** How long plugins get to stop at SIGINT/SIGTERM (docker's default shutdown timeout). */
const SHUTDOWN_DEADLINE_MS = 15_000;

export interface DaemonOptions {
  builtins: ReadonlyMap<string, PluginDefinition<unknown>>;
  defaultPlugins: string[];
}

/**
 * Runs the daemon until SIGINT/SIGTERM, then exits the process: 0 after a graceful shutdown, 130
 * when a second signal forces it. Startup failures throw CliError (exit 1) with a clear message.
 */
export async function runDaemon(flags: DaemonFlags, options: DaemonOptions): Promise<never> {
  let settings: DaemonSettings;
  let config;
  try {
    config = await resolveConfig(flags, options.builtins, options.defaultPlugins);
    settings = resolveSettings(flags, config);
  } catch (err) {
    throw startupError(err);
  }
  const logger = createDaemonLogger(settings.logLevel);
  await mkdir(settings.dataRoot, { recursive: true, mode: 0o711 });
  await mkdir(settings.execRoot, { recursive: true, mode: 0o700 });

  // One daemon per data root, whatever its exec root; the pidfile also guards the exec root.
  const pidFiles = [...new Set([join(settings.dataRoot, 'tsengine.pid'), settings.pidfile])];
  const held: string[] = [];
  const releasePidFiles = () => held.splice(0).forEach((file) => releasePidFile(file));
  try {
    for (const file of pidFiles) {
      await acquirePidFile(file);
      held.push(file);
    }
  } catch (err) {
    releasePidFiles();
    throw startupError(err);
  }

  logger.info({ dataRoot: settings.dataRoot, execRoot: settings.execRoot, config: config.source, version: settings.version }, 'starting tsengine daemon');
  let booted: BootedEngine;
  try {
    booted = await bootEngine({ config, settings, logger, builtins: options.builtins, searchPaths: [cliPackageDir()] });
  } catch (err) {
    releasePidFiles();
    logger.fatal({ err: errorMessage(err) }, 'cannot start');
    throw startupError(err);
  }
  for (const plugin of booted.plugins) {
    const fields = { plugin: plugin.name, version: plugin.version, source: plugin.source, reason: plugin.reason };
    if (plugin.state === 'loaded') logger.info(fields, 'plugin loaded');
    else logger.warn(fields, `plugin ${plugin.state}`);
  }

  let servers: ApiServer[] = [];
  const stopServers = async () => {
    await Promise.all(servers.map((s) => s.close().catch((err: unknown) => logger.error({ server: s.name, err: errorMessage(err) }, 'closing API server failed'))));
  };
  // Before the API listens: a client may signal the daemon as soon as it has answered a ping. The
  // shutdown waits for the listening to end, so that closing the servers also removes their sockets.
  let stopping = false;
  let listening: Promise<void> = Promise.resolve();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      logger.warn({ signal }, 'second signal: forcing exit');
      releasePidFiles();
      process.exit(130);
    }
    stopping = true;
    logger.info({ signal }, 'shutting down');
    void listening
      .catch(() => undefined)
      .then(() => shutdown(logger, booted, stopServers))
      .finally(() => {
        releasePidFiles();
        logger.info('shutdown complete');
        process.exit(0);
      });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    servers = apiServers(booted);
    listening = (async () => {
      for (const server of servers) await server.listen(settings.hosts);
    })();
    await listening;
  } catch (err) {
    // A signal came meanwhile: its shutdown finishes the exit.
    if (stopping) return new Promise<never>(() => undefined);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    logger.fatal({ err: errorMessage(err) }, 'cannot start the API');
    await stopServers();
    await booted.engine.shutdown(SHUTDOWN_DEADLINE_MS);
    releasePidFiles();
    throw startupError(err);
  }
  if (!stopping) logger.info({ hosts: settings.hosts }, 'daemon ready');
  return new Promise<never>(() => undefined);
}

async function shutdown(logger: Logger, booted: BootedEngine, stopServers: () => Promise<void>): Promise<void> {
  await stopServers();
  const report = await booted.engine.shutdown(SHUTDOWN_DEADLINE_MS);
  if (report.failed.length || report.timedOut.length) logger.warn({ failed: report.failed, timedOut: report.timedOut }, 'some shutdown hooks did not complete');
}

function apiServers(booted: BootedEngine): ApiServer[] {
  let providers: CapabilityProviders<ApiServer>;
  try {
    providers = booted.container.resolve<CapabilityProviders<ApiServer>>(ApiServerCapability.providersToken);
  } catch {
    throw new CliError('no API server plugin is loaded: add "@tsengine/api-server" to the plugins in the config');
  }
  const names = providers.names();
  if (names.length === 0) throw new CliError('no API server plugin is loaded: add "@tsengine/api-server" to the plugins in the config');
  return names.map((name) => providers.get(name));
}

function startupError(err: unknown): CliError {
  if (err instanceof CliError) return new CliError(`failed to start daemon: ${err.message}`, err.exitCode);
  if (err instanceof ConfigError || err instanceof PluginLoadError || err instanceof PidFileError) return new CliError(`failed to start daemon: ${err.message}`);
  return new CliError(`failed to start daemon: ${errorMessage(err)}`);
}
