import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { type Duplex, PassThrough, type Readable, type Writable } from 'node:stream';
import type { Command } from 'commander';
import { type CliContext, CliError, withHostOption } from '../context.js';
import { DaemonError, type DockerClient } from '../client/index.js';
import { displayJsonMessages, isTerminal } from './image-support.js';

/**
 * Pieces the container commands share: the `container` command group, running one action per
 * container like docker (errors collected, exit 1 at the end), stream demultiplexing, terminals,
 * docker's create body and the pull on a missing image.
 */

/** The `tsengine container` group; container command files add their subcommands to the same one. */
export function containerGroup(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'container');
  if (existing) return existing;
  return withHostOption(program.command('container')).description('Manage containers').usage('COMMAND');
}

/** Registers a command both top-level (`tsengine stop`) and under `container` (`tsengine container stop`). */
export function both(program: Command, name: string, configure: (command: Command) => void, options: { topLevel?: boolean; aliases?: string[] } = {}): void {
  if (options.topLevel !== false) configure(withHostOption(program.command(name)));
  const sub = withHostOption(containerGroup(program).command(name));
  for (const alias of options.aliases ?? []) sub.alias(alias);
  configure(sub);
}

/** A container reference as a path segment. */
export function containerPath(ref: string): string {
  return encodeURIComponent(ref);
}

/** Docker's stdcopy frames: 8-byte header [stream, 0, 0, 0, uint32 BE length] then the payload. */
export async function demultiplex(source: Readable, stdout: Writable, stderr: Writable): Promise<void> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of source) {
    pending = pending.length ? Buffer.concat([pending, chunk as Buffer]) : (chunk as Buffer);
    while (pending.length >= 8) {
      const length = pending.readUInt32BE(4);
      if (pending.length < 8 + length) break;
      const payload = pending.subarray(8, 8 + length);
      const target = pending[0] === 2 ? stderr : stdout;
      if (!target.write(payload)) await once(target, 'drain');
      pending = pending.subarray(8 + length);
    }
  }
}

/** Copies raw (TTY) output without ending the target. */
export async function copyRaw(source: Readable, target: Writable): Promise<void> {
  for await (const chunk of source) {
    if (!target.write(chunk)) await once(target, 'drain');
  }
}

/** The command's standard input (the context's once it offers one, else the process's). */
export function stdinOf(context: CliContext): Readable {
  return (context as { stdin?: Readable }).stdin ?? process.stdin;
}

/**
 * Forwards local stdin to a hijacked connection and half-closes it at EOF, as the docker CLI does.
 * Returns a function that stops forwarding (when the container's output has ended).
 */
export function forwardStdin(input: Readable, connection: Duplex): () => void {
  const onData = (chunk: Buffer) => {
    if (!connection.destroyed && !connection.writableEnded) connection.write(chunk);
  };
  const onEnd = () => {
    if (!connection.destroyed && !connection.writableEnded) connection.end();
  };
  input.on('data', onData);
  input.once('end', onEnd);
  input.resume();
  return () => {
    input.off('data', onData);
    input.off('end', onEnd);
    input.pause();
    // A piped stdin would keep the process alive; a terminal is left for the caller to restore.
    if (input === process.stdin && !isTerminal(input)) input.destroy();
  };
}

/** Puts the local terminal in raw mode; returns the restore function (a no-op when stdin is no terminal). */
export function rawTerminal(input: Readable): () => void {
  const tty = input as Readable & { isTTY?: boolean; setRawMode?: (on: boolean) => void };
  if (!tty.isTTY || !tty.setRawMode) return () => undefined;
  tty.setRawMode(true);
  return () => tty.setRawMode!(false);
}

/** The local terminal's size as [rows, cols], or undefined when stdout is no terminal. */
export function terminalSize(output: Writable): [number, number] | undefined {
  const tty = output as Writable & { isTTY?: boolean; rows?: number; columns?: number };
  if (!tty.isTTY || !tty.rows || !tty.columns) return undefined;
  return [tty.rows, tty.columns];
}

/** Sends the terminal size now and on every SIGWINCH (POST …/resize); returns the stop function. */
export function forwardResize(client: DockerClient, path: string, output: Writable): () => void {
  const send = () => {
    const size = terminalSize(output);
    if (size) void client.request('POST', path, { query: { h: size[0], w: size[1] } }).catch(() => undefined);
  };
  send();
  process.on('SIGWINCH', send);
  return () => process.off('SIGWINCH', send);
}

/** Docker's `KEY=VALUE` list flags; a bare `KEY` takes the value from the local environment (or is dropped). */
export function envList(values: string[], env: NodeJS.ProcessEnv): string[] {
  return values.flatMap((value) => {
    if (value.includes('=')) {
      if (value.startsWith('=')) throw new CliError(`invalid environment variable: ${value}`);
      return [value];
    }
    return env[value] !== undefined ? [`${value}=${env[value]}`] : [];
  });
}

/** Reads docker's --env-file format: KEY=VALUE lines, # comments, bare names taken from the environment. */
export function envFile(path: string, env: NodeJS.ProcessEnv): string[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new CliError(`open ${path}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file or directory' : (err as Error).message}`);
  }
  const lines = text
    .split('\n')
    .map((l) => l.replace(/^\s+/, '').replace(/\r$/, ''))
    .filter((l) => l !== '' && !l.startsWith('#'));
  for (const line of lines) if (/\s/.test(line.split('=')[0]!)) throw new CliError(`variable '${line.split('=')[0]}' contains whitespaces`);
  return envList(lines, env);
}

/** "busybox" → ["busybox", "latest"]; keeps registry ports and digests apart from the tag. */
export function splitReference(reference: string): { name: string; tag: string | undefined; digest: string | undefined } {
  const at = reference.indexOf('@');
  if (at !== -1) return { name: reference.slice(0, at), tag: undefined, digest: reference.slice(at + 1) };
  const colon = reference.lastIndexOf(':');
  if (colon > reference.lastIndexOf('/')) return { name: reference.slice(0, colon), tag: reference.slice(colon + 1), digest: undefined };
  return { name: reference, tag: undefined, digest: undefined };
}

/**
 * POST /containers/create; on "No such image" pulls the image (POST /images/create, progress to
 * stderr as docker prints it) and creates again.
 */
export async function createContainer(
  context: CliContext,
  client: DockerClient,
  body: Record<string, unknown>,
  name: string | undefined,
  pull: 'missing' | 'always' | 'never',
  quiet = false,
): Promise<{ Id: string; Warnings?: string[] | null }> {
  const image = String(body.Image);
  const create = () => client.request<{ Id: string; Warnings?: string[] | null }>('POST', '/containers/create', { query: { name }, body });
  if (pull === 'always') await pullImage(context, client, image, quiet);
  try {
    return await create();
  } catch (err) {
    if (!(err instanceof DaemonError) || err.status !== 404 || !err.message.startsWith('No such image') || pull === 'never') throw err;
  }
  const { tag, digest } = splitReference(image);
  context.stderr.write(`Unable to find image '${tag || digest ? image : `${image}:latest`}' locally\n`);
  await pullImage(context, client, image, quiet);
  return create();
}

async function pullImage(context: CliContext, client: DockerClient, image: string, quiet: boolean): Promise<void> {
  const { name, tag, digest } = splitReference(image);
  const response = await client.stream('POST', '/images/create', { query: { fromImage: name, tag: digest ?? tag ?? 'latest' } });
  await displayJsonMessages(response.body, quiet ? new PassThrough().resume() : context.stderr);
}

/** docker run's exit status for a failed start: 127 command not found, 126 not executable, else 125. */
export function startFailureStatus(message: string): number {
  if (/executable file not found|no such file or directory/i.test(message)) return 127;
  if (/permission denied|not executable|exec format error/i.test(message)) return 126;
  return 125;
}

/** Docker's duration strings ("1h30m", "10s", "1.5h") in seconds. */
export function parseDuration(text: string): number | undefined {
  const re = /(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)/g;
  if (!/^(\d+(?:\.\d+)?(ns|us|µs|ms|s|m|h))+$/.test(text)) return undefined;
  const unit: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let total = 0;
  for (const m of text.matchAll(re)) total += Number(m[1]) * unit[m[2]!]!;
  return total;
}

/** Docker's GetTimestamp for --since/--until: a duration before now, an RFC 3339 time or unix seconds, as "seconds[.nanos]". */
export function apiTimestamp(value: string, now = Date.now()): string {
  const duration = parseDuration(value);
  if (duration !== undefined) return ((now / 1000) - duration).toFixed(9).replace(/\.?0+$/, '');
  if (/^\d+(\.\d+)?$/.test(value)) return value;
  const parsed = Date.parse(/^\d{4}-\d{2}-\d{2}$/.test(value) ? `${value}T00:00:00Z` : value);
  if (Number.isNaN(parsed)) throw new CliError(`invalid value for "since"/"until": failed to parse value as time or duration: "${value}"`);
  return String(parsed / 1000);
}
