import { randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { type CliContext, CliError, type CommandModule, withHostOption } from '../context.js';
import { checkArgs, clientFor, copyTo, imageGroup, isTerminal, queryString } from './image-support.js';

export const saveCommand: CommandModule = (program, context) => {
  configure(withHostOption(program.command('save')), context);
  configure(withHostOption(imageGroup(program).command('save')), context);
};

function configure(command: Command, context: CliContext): void {
  command
    .description('Save one or more images to a tar archive (streamed to STDOUT by default)')
    .usage('[OPTIONS] IMAGE [IMAGE...]')
    .argument('[IMAGE...]')
    .option('-o, --output <file>', 'write to a file, instead of STDOUT')
    .action(async (names: string[], options: { output?: string }, cmd: Command) => {
      checkArgs(cmd, names, 1);
      if (options.output === undefined && isTerminal(context.stdout)) throw new CliError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
      if (options.output !== undefined) await checkOutputPath(options.output);
      const query = queryString(names.map((name): [string, string] => ['names', name]));
      const response = await clientFor(context, cmd).stream('GET', `/images/get${query}`);
      if (options.output === undefined) await copyTo(response.body, context.stdout);
      else await writeFileFrom(options.output, response.body);
    });
}

/** docker's ValidateOutputPath: the folder must exist and the target must not be a folder. */
async function checkOutputPath(path: string): Promise<void> {
  const dir = dirname(path);
  await stat(dir).catch((err: NodeJS.ErrnoException) => {
    throw new CliError(`failed to save image: invalid output path: stat ${dir}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
  });
  const info = await stat(path).catch(() => undefined);
  if (info?.isDirectory()) throw new CliError(`failed to save image: invalid output path: "${path}" is a directory`);
}

/** Writes next to the target and renames, so a failed save leaves no half-written archive. */
async function writeFileFrom(path: string, body: NodeJS.ReadableStream): Promise<void> {
  const temp = join(dirname(resolve(path)), `.${basename(path)}.${randomBytes(4).toString('hex')}.tmp`);
  try {
    await pipeline(body, createWriteStream(temp, { mode: 0o644 }));
    await rename(temp, path);
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
}
