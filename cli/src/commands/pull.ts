import type { Readable, Writable } from 'node:stream';
import type { Command } from 'commander';
import { type CliContext, type CommandModule, withHostOption } from '../context.js';
import { type JsonMessage, checkArgs, clientFor, imageGroup, isTerminal, readJsonMessages } from './image-support.js';
import { registryAuthHeader, registryOf } from './login.js';

/**
 * Shows a pull or push progress stream like docker's jsonmessage: on a terminal one line per layer
 * id, redrawn in place with its bar; otherwise each status line once, without byte progress.
 * An error in the stream becomes a CliError (exit 1). Returns the aux messages.
 */
export async function showProgress(body: Readable, out: Writable, quiet = false): Promise<unknown[]> {
  const terminal = isTerminal(out) && !quiet;
  const lines = new Map<string, number>();
  let count = 0;
  const aux: unknown[] = [];
  const render = (message: JsonMessage) => {
    const text = `${message.id ? `${message.id}: ` : ''}${message.status ?? ''}${message.progress ? ` ${message.progress}` : ''}`;
    if (!terminal) {
      if (!quiet && !message.progressDetail?.current && !message.progress) out.write(`${text}\n`);
      return;
    }
    const index = message.id ? lines.get(message.id) : undefined;
    if (index === undefined) {
      if (message.id) lines.set(message.id, count);
      count++;
      out.write(`${text}\x1b[K\n`);
      return;
    }
    const up = count - index;
    out.write(`\x1b[${up}A\r${text}\x1b[K\x1b[${up}B\r`);
  };
  await readJsonMessages(body, (message) => {
    if (message.aux !== undefined) aux.push(message.aux);
    else render(message);
  });
  return aux;
}

interface PullOptions {
  platform?: string;
  quiet?: boolean;
}

/** NAME[:TAG|@DIGEST] split into fromImage and tag, as the docker CLI sends them. */
export function splitTag(reference: string): { name: string; tag?: string } {
  const at = reference.indexOf('@');
  if (at >= 0) return { name: reference.slice(0, at), tag: reference.slice(at + 1) };
  const colon = reference.lastIndexOf(':');
  if (colon > reference.lastIndexOf('/')) return { name: reference.slice(0, colon), tag: reference.slice(colon + 1) };
  return { name: reference };
}

export const pullCommand: CommandModule = (program, context) => {
  configure(withHostOption(program.command('pull')), context);
  configure(withHostOption(imageGroup(program).command('pull')), context);
};

function configure(command: Command, context: CliContext): void {
  command
    .description('Download an image from a registry')
    .usage('[OPTIONS] NAME[:TAG|@DIGEST]')
    .argument('<NAME[:TAG|@DIGEST]>')
    .option('--platform <platform>', 'set platform if server is multi-platform capable (os/arch[/variant])')
    .option('-q, --quiet', 'suppress verbose output')
    .action(async (reference: string, options: PullOptions, cmd: Command) => {
      checkArgs(cmd, cmd.args, 1, 1);
      const { name, tag } = splitTag(reference);
      const auth = await registryAuthHeader(context.env, registryOf(name));
      const response = await clientFor(context, cmd).stream('POST', '/images/create', {
        query: { fromImage: name, tag: tag ?? 'latest', ...(options.platform ? { platform: options.platform } : {}) },
        headers: { 'X-Registry-Auth': auth },
      });
      await showProgress(response.body, context.stdout, options.quiet === true);
      if (options.quiet) context.stdout.write(`${tag && reference.includes('@') ? reference : `${name}:${tag ?? 'latest'}`}\n`);
    });
}
