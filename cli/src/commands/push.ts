import type { Command } from 'commander';
import { type CliContext, type CommandModule, withHostOption } from '../context.js';
import { checkArgs, clientFor, imageGroup, imagePath } from './image-support.js';
import { registryAuthHeader, registryOf } from './login.js';
import { showProgress, splitTag } from './pull.js';

interface PushOptions {
  quiet?: boolean;
}

export const pushCommand: CommandModule = (program, context) => {
  configure(withHostOption(program.command('push')), context);
  configure(withHostOption(imageGroup(program).command('push')), context);
};

function configure(command: Command, context: CliContext): void {
  command
    .description('Upload an image to a registry')
    .usage('[OPTIONS] NAME[:TAG]')
    .argument('<NAME[:TAG]>')
    .option('-q, --quiet', 'suppress verbose output')
    .action(async (reference: string, options: PushOptions, cmd: Command) => {
      checkArgs(cmd, cmd.args, 1, 1);
      const { name, tag } = splitTag(reference);
      const auth = await registryAuthHeader(context.env, registryOf(name));
      const response = await clientFor(context, cmd).stream('POST', `/images/${imagePath(name)}/push`, {
        query: { tag: tag ?? 'latest' },
        headers: { 'X-Registry-Auth': auth },
      });
      await showProgress(response.body, context.stdout, options.quiet === true);
      if (options.quiet) context.stdout.write(`${name}:${tag ?? 'latest'}\n`);
    });
}
