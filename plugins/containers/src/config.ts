import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import { type ContainerConfig, type ContainerCreateBody, type HostConfig, invalid } from '@tsengine/core';

export const DEFAULT_PATH = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

const NAME_PATTERN = /^\/?[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Docker's name rule; returns the name with its leading slash. */
export function validateName(name: string): string {
  if (!NAME_PATTERN.test(name)) throw invalid(`Invalid container name (${name}), only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
  return name.startsWith('/') ? name : `/${name}`;
}

export function newContainerId(): string {
  return randomBytes(32).toString('hex');
}

const ADJECTIVES = ['brave', 'calm', 'eager', 'fervent', 'gallant', 'happy', 'jolly', 'keen', 'lucid', 'nifty', 'quirky', 'serene', 'stoic', 'vibrant', 'zealous'];
const SURNAMES = ['archimedes', 'babbage', 'curie', 'darwin', 'euler', 'fermat', 'gauss', 'hopper', 'kepler', 'lovelace', 'noether', 'pascal', 'shannon', 'turing', 'wozniak'];

/** A Docker-style generated name (adjective_surname), with a digit appended on collision. */
export function generateName(taken: (name: string) => boolean): string {
  const pick = (list: string[]) => list[randomBytes(1)[0]! % list.length]!;
  for (let attempt = 0; ; attempt++) {
    const name = `/${pick(ADJECTIVES)}_${pick(SURNAMES)}${attempt >= 5 ? randomBytes(1)[0]! % 10 : ''}`;
    if (!taken(name)) return name;
  }
}

function envKey(entry: string): string {
  const eq = entry.indexOf('=');
  return eq < 0 ? entry : entry.slice(0, eq);
}

/** The image's Env with the container's entries replacing those with the same key (Docker's merge). */
export function mergeEnv(image: string[] | null | undefined, own: string[] | null | undefined): string[] {
  const merged = [...(image ?? [])];
  for (const entry of own ?? []) {
    const i = merged.findIndex((e) => envKey(e) === envKey(entry));
    if (i >= 0) merged[i] = entry;
    else merged.push(entry);
  }
  return merged;
}

/**
 * The container's Config as Docker stores it: the create body merged over the image's config. A
 * user-given Entrypoint drops the image's Cmd (Docker's rule).
 */
export function mergeConfig(body: ContainerCreateBody, image: ContainerConfig, id: string): ContainerConfig {
  const { HostConfig: _host, NetworkingConfig: _net, ...own } = body;
  const config: ContainerConfig = { ...own };
  const userEntrypoint = own.Entrypoint !== undefined && own.Entrypoint !== null;
  config.Entrypoint = userEntrypoint ? own.Entrypoint! : (image.Entrypoint ?? null);
  if (!own.Cmd || own.Cmd.length === 0) config.Cmd = userEntrypoint ? null : (image.Cmd ?? null);
  config.Env = mergeEnv(image.Env, own.Env);
  if (!own.WorkingDir) config.WorkingDir = image.WorkingDir ?? '';
  if (!own.User) config.User = image.User ?? '';
  config.Labels = { ...(image.Labels ?? {}), ...(own.Labels ?? {}) };
  if (!own.StopSignal && image.StopSignal) config.StopSignal = image.StopSignal;
  // Docker gives host-network containers the host's name, others their short ID.
  if (!own.Hostname) config.Hostname = body.HostConfig?.NetworkMode === 'host' ? hostname() : id.slice(0, 12);
  if (config.Entrypoint && config.Entrypoint.length === 0) config.Entrypoint = null;
  return config;
}

/** argv of the main process: Entrypoint then Cmd. */
export function commandOf(config: ContainerConfig): string[] {
  const argv = [...(config.Entrypoint ?? []), ...(config.Cmd ?? [])];
  if (argv.length === 0) throw invalid('no command specified');
  return argv;
}

/** The process environment at start: PATH (unless set), HOSTNAME, TERM with a TTY, then the config's Env. */
export function processEnv(config: ContainerConfig): string[] {
  const env: string[] = [];
  const own = config.Env ?? [];
  if (!own.some((e) => envKey(e) === 'PATH')) env.push(DEFAULT_PATH);
  env.push(`HOSTNAME=${config.Hostname ?? ''}`);
  if (config.Tty) env.push('TERM=xterm');
  return mergeEnv(env, own);
}

export function networkModeOf(host: HostConfig): 'none' | 'host' {
  return host.NetworkMode === 'host' ? 'host' : 'none';
}
