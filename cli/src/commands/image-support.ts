import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import { type Command, InvalidArgumentError } from 'commander';
import { type CliContext, CliError, withHostOption } from '../context.js';
import { DaemonError, type DockerClient } from '../client/index.js';
import { alignTabs, renderTemplate } from '../format/index.js';

/**
 * Pieces the image commands share: the `image` command group, docker's argument-count errors,
 * filters, terminal checks, JSON message streams and `--format` tables.
 */

/** The `tsengine image` group; every image command file adds its subcommand to the same one. */
export function imageGroup(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'image');
  if (existing) return existing;
  return withHostOption(program.command('image')).description('Manage images').usage('COMMAND');
}

/**
 * The client for the nearest -H/--host on the command or any parent, so that
 * `tsengine -H x image ls` and `tsengine image ls -H x` both work.
 */
export function clientFor(context: CliContext, command: Command): DockerClient {
  let holder: Command | null = command;
  while (holder && holder.opts<{ host?: string }>().host === undefined) holder = holder.parent;
  return context.client(holder ?? command);
}

/** `tsengine image rm`, for messages. */
export function commandPath(command: Command): string {
  const names: string[] = [];
  for (let c: Command | null = command; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * Docker's argument-count check (cobra's Exact/Minimum/Maximum/NoArgs): these exit 1 in docker, not
 * 125 like flag errors, so commands take their arguments variadically and check them here.
 */
export function checkArgs(command: Command, args: string[], min: number, max: number = Infinity): void {
  if (args.length >= min && args.length <= max) return;
  let rule: string;
  if (max === 0) rule = 'accepts no arguments';
  else if (min === max) rule = `requires ${min} argument${min === 1 ? '' : 's'}`;
  else if (args.length < min) rule = `requires at least ${min} argument${min === 1 ? '' : 's'}`;
  else rule = `requires at most ${max} argument${max === 1 ? '' : 's'}`;
  const path = commandPath(command);
  throw new CliError(`tsengine: '${path}' ${rule}\n\nUsage:  ${path} ${command.usage()}\n\nSee '${path} --help' for more information`);
}

/** Collects a repeatable `-f key=value` flag, refusing docker's malformed filters as a usage error. */
export function collectFilter(value: string, previous: string[] = []): string[] {
  if (!value.includes('=')) throw new InvalidArgumentError('bad format of filter (expected name=value)');
  return [...previous, value];
}

/** Collects any repeatable string flag. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** `["dangling=true","label=a=b"]` → docker's filter JSON `{"dangling":{"true":true},"label":{"a=b":true}}`. */
export function filtersJson(filters: string[]): string | undefined {
  if (!filters.length) return undefined;
  const map: Record<string, Record<string, boolean>> = {};
  for (const filter of filters) {
    const eq = filter.indexOf('=');
    const key = filter.slice(0, eq).trim().toLowerCase();
    (map[key] ??= {})[filter.slice(eq + 1)] = true;
  }
  return JSON.stringify(map);
}

/** A query string with repeated keys (`names=a&names=b`), which the client's Query map cannot express. */
export function queryString(params: Array<[string, string | undefined]>): string {
  const search = new URLSearchParams();
  for (const [key, value] of params) if (value !== undefined) search.append(key, value);
  const text = search.toString();
  return text ? `?${text}` : '';
}

/** An image name as a path segment: docker sends names with `/` and `:` as they are. */
export function imagePath(name: string): string {
  return encodeURIComponent(name).replace(/%2F/gi, '/').replace(/%3A/gi, ':').replace(/%40/g, '@');
}

export function isTerminal(stream: Readable | Writable): boolean {
  return (stream as { isTTY?: boolean }).isTTY === true;
}

/** The command's standard input (the context's once it offers one, else the process's). */
export function stdinOf(context: CliContext): Readable {
  return (context as { stdin?: Readable }).stdin ?? process.stdin;
}

/** Reads one line (for a y/N question) and lets go of the stream so the process can exit. */
export async function readLine(input: Readable): Promise<string> {
  let text = '';
  try {
    for await (const chunk of input) {
      text += chunk.toString();
      if (text.includes('\n')) break;
    }
  } finally {
    input.pause();
    if (input === process.stdin && !isTerminal(input)) input.destroy();
  }
  return text.split('\n')[0] ?? '';
}

/** Docker's PromptForConfirmation: the question with " [y/N] ", yes only for y or Y. */
export async function confirm(context: CliContext, question: string): Promise<boolean> {
  context.stdout.write(`${question} [y/N] `);
  const answer = (await readLine(stdinOf(context))).trim();
  return answer === 'y' || answer === 'Y';
}

/** Writes a stream to a writable without ending it (stdout stays usable). */
export async function copyTo(source: Readable, target: Writable): Promise<void> {
  for await (const chunk of source) {
    if (!target.write(chunk)) await once(target, 'drain');
  }
}

/** One message of a daemon's JSON-lines stream (pull, push, load, import, build). */
export interface JsonMessage {
  stream?: string;
  status?: string;
  id?: string;
  progress?: string;
  progressDetail?: { current?: number; total?: number };
  error?: string;
  errorDetail?: { message?: string; code?: number };
  aux?: unknown;
}

/**
 * Reads a daemon's JSON-lines stream and hands each message to `onMessage`. An error message in
 * the stream ends it as a CliError with the message's code (a failed build step's), else exit 1;
 * so does a line that is not JSON. `beforeError` runs first (e.g. to show held-back output).
 */
export async function readJsonMessages(body: Readable, onMessage: (message: JsonMessage) => void, beforeError?: () => void): Promise<void> {
  let pending = '';
  const handle = (line: string) => {
    if (line.trim() === '') return;
    let message: JsonMessage;
    try {
      message = JSON.parse(line) as JsonMessage;
    } catch {
      throw new CliError(`invalid JSON message from the daemon: ${line.slice(0, 200)}`);
    }
    if (message.errorDetail || message.error) {
      beforeError?.();
      throw new CliError(message.errorDetail?.message ?? message.error ?? 'unknown error', message.errorDetail?.code || 1);
    }
    onMessage(message);
  };
  for await (const chunk of body) {
    pending += chunk.toString();
    const lines = pending.split('\n');
    pending = lines.pop()!;
    for (const line of lines) handle(line);
  }
  handle(pending);
}

/**
 * Prints a daemon's JSON-lines progress stream the way docker does without a terminal: `stream`
 * text as is, `status` lines with their id, progress updates left out.
 */
export async function displayJsonMessages(body: Readable, out: Writable): Promise<void> {
  await readJsonMessages(body, (message) => {
    if (message.aux !== undefined) return;
    if (message.stream !== undefined) out.write(message.stream);
    else if (message.status !== undefined && !message.progressDetail?.total && !message.progress) out.write(`${message.id ? `${message.id}: ` : ''}${message.status}\n`);
  });
}

/** How a `--format` value is to be used: docker's "table", "table TEMPLATE", "json", or a raw template. */
export interface OutputFormat {
  table: boolean;
  /** null: the command's default columns. */
  template: string | null;
}

export function parseFormat(format: string | undefined): OutputFormat {
  if (format === undefined || format === '' || format === 'table') return { table: true, template: null };
  if (format === 'json') return { table: false, template: '{{json .}}' };
  if (format.startsWith('table ')) return { table: true, template: format.slice('table '.length) };
  return { table: false, template: format };
}

/**
 * Renders rows with a user template; in table mode the header is the same template rendered over the
 * column titles and the result is aligned like docker's tabwriter.
 */
export function renderRows(format: OutputFormat & { template: string }, headers: Record<string, string>, rows: object[]): string {
  const body = rows.map((row) => renderTemplate(format.template, row)).join('');
  if (!format.table) return body;
  return alignTabs(renderTemplate(format.template, headers) + body, 10, 3);
}

/** The 12-character ID docker shows (stringid.TruncateID): algorithm prefix dropped. */
export function shortId(id: string): string {
  const hex = id.includes(':') ? id.slice(id.indexOf(':') + 1) : id;
  return hex.slice(0, 12);
}

/** Go's time.Time.String() in local time: "2026-11-23 17:47:10 +0000 UTC". */
export function goTimeString(seconds: number): string {
  const date = new Date(seconds * 1000);
  const zone = new Intl.DateTimeFormat('en-US', { timeZoneName: 'short' }).formatToParts(date).find((p) => p.type === 'timeZoneName')?.value ?? '';
  return `${localDateTime(date, ' ')} ${offset(date, false)} ${zone === 'GMT' ? 'UTC' : zone}`;
}

/** RFC 3339 in local time, as Go formats it: "2026-11-23T17:47:10Z" or "…T18:47:10+01:00". */
export function rfc3339(seconds: number): string {
  const date = new Date(seconds * 1000);
  return `${localDateTime(date, 'T')}${date.getTimezoneOffset() === 0 ? 'Z' : offset(date, true)}`;
}

function localDateTime(date: Date, separator: string): string {
  const two = (n: number) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${two(date.getMonth() + 1)}-${two(date.getDate())}${separator}${two(date.getHours())}:${two(date.getMinutes())}:${two(date.getSeconds())}`;
}

function offset(date: Date, colon: boolean): string {
  const minutes = -date.getTimezoneOffset();
  const abs = Math.abs(minutes);
  const hh = String(Math.floor(abs / 60)).padStart(2, '0');
  const mm = String(abs % 60).padStart(2, '0');
  return `${minutes < 0 ? '-' : '+'}${hh}${colon ? ':' : ''}${mm}`;
}

/**
 * docker's inspect output for every object type: what was found (an empty list too, or each value
 * through the --format template), then the lookups that failed, as the command's error.
 */
export function printInspected(context: CliContext, found: unknown[], errors: string[], format: string | undefined): void {
  if (format) context.stdout.write(found.map((value) => renderTemplate(format, value)).join(''));
  else context.stdout.write(JSON.stringify(found, null, 4) + '\n');
  if (errors.length) throw new CliError(errors.join('\n'));
}

/**
 * Runs `action` for each named object (container, network, volume) like docker's multi-object commands: prints what it returns
 * (usually the name as given), collects daemon errors, and fails with all of them at the end.
 */
export async function eachObject(context: CliContext, refs: string[], action: (ref: string) => Promise<string | undefined>): Promise<void> {
  const errors: string[] = [];
  for (const ref of refs) {
    try {
      const line = await action(ref);
      if (line !== undefined) context.stdout.write(`${line}\n`);
    } catch (err) {
      if (err instanceof DaemonError) errors.push(`Error response from daemon: ${err.message}`);
      else if (err instanceof CliError) errors.push(err.message);
      else throw err;
    }
  }
  if (errors.length) throw new CliError(errors.join('\n'));
}

/** GETs each object's path in turn; a daemon error for one is collected (docker's wording), not fatal. */
export async function inspectEach(client: DockerClient, names: string[], pathOf: (name: string) => string): Promise<{ found: unknown[]; errors: string[] }> {
  const found: unknown[] = [];
  const errors: string[] = [];
  for (const name of names) {
    try {
      found.push(await client.request('GET', pathOf(name)));
    } catch (err) {
      if (!(err instanceof DaemonError)) throw err;
      errors.push(`Error response from daemon: ${err.message}`);
    }
  }
  return { found, errors };
}
