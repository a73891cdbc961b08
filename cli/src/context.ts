import type { Writable } from 'node:stream';
import type { PluginDefinition } from '@tsengine/core';
import type { Command } from 'commander';
import { DEFAULT_HOST, type DockerClient, HttpDockerClient } from './client/index.js';

export interface RunCliOptions {
  /** Plugin definitions compiled into this program, by package name (the embedded build passes them). */
  builtins?: ReadonlyMap<string, PluginDefinition<unknown>>;
  /** The daemon's plugins when no config file is given or found. */
  defaultPlugins?: string[];
  stdout?: Writable;
  stderr?: Writable;
  env?: NodeJS.ProcessEnv;
  /** Builds the client for a host; the default speaks HTTP over a unix socket or TCP. */
  clientFactory?: (host: string) => DockerClient;
}

/** A failure with the exit status the command should end with (docker: 1 for errors, 125 for usage errors). */
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = 'CliError';
  }
}

export const ExitCode = { ok: 0, error: 1, usage: 125 } as const;

/** What every command module gets. */
export interface CliContext {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly env: NodeJS.ProcessEnv;
  readonly options: RunCliOptions;
  /** The client for -H/--host (on the command or before it), else DOCKER_HOST, else the default socket. */
  client(command: Command): DockerClient;
  /** The status runCli returns once the command finished (errors thrown as CliError set it too). */
  exitCode: number;
}

/** A command file (`commands/<name>.ts`) exports one of these; commands/index.ts lists them. */
export type CommandModule = (program: Command, context: CliContext) => void;

export function createContext(options: RunCliOptions): CliContext {
  const env = options.env ?? process.env;
  const clientFactory = options.clientFactory ?? ((host: string) => new HttpDockerClient(host));
  return {
    stdout: options.stdout ?? process.stdout,
    stderr: options.stderr ?? process.stderr,
    env,
    options,
    exitCode: ExitCode.ok,
    client(command) {
      const own = command.opts<{ host?: string }>().host;
      const global = command.parent?.opts<{ host?: string }>().host;
      return clientFactory(own ?? global ?? (env.DOCKER_HOST || DEFAULT_HOST));
    },
  };
}

/** Adds the client's -H/--host option to a command, as docker allows it after the command name too. */
export function withHostOption(command: Command): Command {
  return command.option('-H, --host <uri>', 'daemon socket to connect to (unix:///path or tcp://host:port; default $DOCKER_HOST or ' + DEFAULT_HOST + ')');
}
