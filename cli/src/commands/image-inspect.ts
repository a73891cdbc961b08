import type { Command } from 'commander';
import { CliError, type CommandModule, withHostOption } from '../context.js';
import { DaemonError } from '../client/index.js';
import { renderTemplate } from '../format/index.js';
import { checkArgs, clientFor, imageGroup, imagePath } from './image-support.js';

export const imageInspectCommand: CommandModule = (program, context) => {
  withHostOption(imageGroup(program).command('inspect'))
    .description('Display detailed information on one or more images')
    .usage('[OPTIONS] IMAGE [IMAGE...]')
    .argument('[IMAGE...]')
    .option('-f, --format <template>', "format output using a custom template, e.g. '{{.Id}}' or '{{json .Config}}'")
    .action(async (names: string[], options: { format?: string }, command: Command) => {
      checkArgs(command, names, 1);
      const client = clientFor(context, command);
      const found: unknown[] = [];
      const errors: string[] = [];
      for (const name of names) {
        try {
          found.push(await client.request('GET', `/images/${imagePath(name)}/json`));
        } catch (err) {
          if (!(err instanceof DaemonError)) throw err;
          errors.push(`Error response from daemon: ${err.message}`);
        }
      }
      // docker prints what it found (an empty list too) before the errors.
      if (options.format) context.stdout.write(found.map((image) => renderTemplate(options.format!, image)).join(''));
      else context.stdout.write(JSON.stringify(found, null, 4) + '\n');
      if (errors.length) throw new CliError(errors.join('\n'));
    });
};
