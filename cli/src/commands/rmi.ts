import type { ImageDeleteItem } from '@tsengine/core';
import type { Command } from 'commander';
import { type CliContext, CliError, type CommandModule, withHostOption } from '../context.js';
import { DaemonError } from '../client/index.js';
import { checkArgs, clientFor, imageGroup, imagePath } from './image-support.js';

interface RemoveOptions {
  force?: boolean;
  prune: boolean;
}

export const rmiCommand: CommandModule = (program, context) => {
  configure(withHostOption(program.command('rmi')), context);
  configure(withHostOption(imageGroup(program).command('rm').alias('remove')), context);
};

function configure(command: Command, context: CliContext): void {
  command
    .description('Remove one or more images')
    .usage('[OPTIONS] IMAGE [IMAGE...]')
    .argument('[IMAGE...]')
    .option('-f, --force', 'force removal of the image')
    .option('--no-prune', 'do not delete untagged parents')
    .action(async (names: string[], options: RemoveOptions, cmd: Command) => {
      checkArgs(cmd, names, 1);
      const client = clientFor(context, cmd);
      const errors: string[] = [];
      // With --force, images that do not exist are reported but do not fail the command (docker).
      let fatal = false;
      for (const name of names) {
        try {
          const items = await client.request<ImageDeleteItem[]>('DELETE', `/images/${imagePath(name)}`, {
            query: { force: options.force || undefined, noprune: options.prune ? undefined : true },
          });
          for (const item of items ?? []) context.stdout.write('Deleted' in item ? `Deleted: ${item.Deleted}\n` : `Untagged: ${item.Untagged}\n`);
        } catch (err) {
          if (!(err instanceof DaemonError)) throw err;
          if (!(options.force && err.status === 404)) fatal = true;
          errors.push(`Error response from daemon: ${err.message}`);
        }
      }
      if (!errors.length) return;
      if (fatal) throw new CliError(errors.join('\n'));
      context.stderr.write(errors.join('\n') + '\n');
    });
}
