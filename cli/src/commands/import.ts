import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Readable } from 'node:stream';
import type { Command } from 'commander';
import { type CliContext, CliError, type CommandModule, withHostOption } from '../context.js';
import { checkArgs, clientFor, collect, displayJsonMessages, imageGroup, queryString, stdinOf } from './image-support.js';

interface ImportOptions {
  change?: string[];
  message?: string;
  platform?: string;
}

export const importCommand: CommandModule = (program, context) => {
  configure(withHostOption(program.command('import')), context);
  configure(withHostOption(imageGroup(program).command('import')), context);
};

function configure(command: Command, context: CliContext): void {
  command
    .description('Import the contents from a tarball to create a filesystem image')
    .usage('[OPTIONS] file|URL|- [REPOSITORY[:TAG]]')
    .argument('[SOURCE...]', 'file|URL|- then an optional REPOSITORY[:TAG]')
    .option('-c, --change <instruction>', 'apply a Dockerfile instruction to the created image (repeatable)', collect)
    .option('-m, --message <message>', 'set the commit message for the imported image')
    .option('--platform <platform>', 'set platform if server is multi-platform capable')
    .action(async (args: string[], options: ImportOptions, cmd: Command) => {
      checkArgs(cmd, args, 1, 2);
      const [source, reference] = args as [string, string | undefined];
      const body = await openSource(context, source);
      const query = queryString([
        ['fromSrc', '-'],
        ['repo', reference],
        ['message', options.message],
        ['platform', options.platform],
        ...(options.change ?? []).map((change): [string, string] => ['changes', change]),
      ]);
      const response = await clientFor(context, cmd).stream('POST', `/images/create${query}`, { body, headers: { 'Content-Type': 'application/x-tar' } });
      await displayJsonMessages(response.body, context.stdout);
    });
}

async function openSource(context: CliContext, source: string): Promise<Readable> {
  if (source === '-') return stdinOf(context);
  if (/^https?:\/\//i.test(source)) {
    throw new CliError(`importing from a URL is not supported: tsengine does not download ${source}; fetch it yourself and pass the file or - (stdin)`);
  }
  const info = await stat(source).catch((err: NodeJS.ErrnoException) => {
    throw new CliError(`open ${source}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
  });
  if (info.isDirectory()) throw new CliError(`read ${source}: is a directory`);
  return createReadStream(source);
}
