import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { Command } from 'commander';
import { type CliContext, CliError, type CommandModule, withHostOption } from '../context.js';
import { checkArgs, clientFor, displayJsonMessages, imageGroup, isTerminal, stdinOf } from './image-support.js';

interface LoadOptions {
  input?: string;
  quiet?: boolean;
}

export const loadCommand: CommandModule = (program, context) => {
  configure(withHostOption(program.command('load')), context);
  configure(withHostOption(imageGroup(program).command('load')), context);
};

function configure(command: Command, context: CliContext): void {
  command
    .description('Load an image from a tar archive or STDIN')
    .usage('[OPTIONS]')
    .allowExcessArguments(true)
    .option('-i, --input <file>', 'read from tar archive file, instead of STDIN')
    .option('-q, --quiet', 'suppress the load output')
    .action(async (options: LoadOptions, cmd: Command) => {
      checkArgs(cmd, cmd.args, 0, 0);
      const stdin = stdinOf(context);
      if (options.input === undefined && isTerminal(stdin)) throw new CliError('requested load from stdin, but stdin is empty');
      let body = stdin;
      if (options.input !== undefined) {
        const file = options.input;
        await stat(file).catch((err: NodeJS.ErrnoException) => {
          throw new CliError(`open ${file}: ${err.code === 'ENOENT' ? 'no such file or directory' : err.message}`);
        });
        body = createReadStream(file);
      }
      // Without a terminal there is nothing to draw progress on, so the daemon is asked for none (docker).
      const quiet = options.quiet === true || !isTerminal(context.stdout);
      const response = await clientFor(context, cmd).stream('POST', '/images/load', {
        query: { quiet: quiet || undefined },
        body,
        headers: { 'Content-Type': 'application/x-tar' },
      });
      await displayJsonMessages(response.body, context.stdout);
    });
}
