import type { Command } from 'commander';
import { type CommandModule, withHostOption } from '../context.js';
import { checkArgs, clientFor, imageGroup, imagePath, inspectEach, printInspected } from './image-support.js';

export const imageInspectCommand: CommandModule = (program, context) => {
  withHostOption(imageGroup(program).command('inspect'))
    .description('Display detailed information on one or more images')
    .usage('[OPTIONS] IMAGE [IMAGE...]')
    .argument('[IMAGE...]')
    .option('-f, --format <template>', "format output using a custom template, e.g. '{{.Id}}' or '{{json .Config}}'")
    .action(async (names: string[], options: { format?: string }, command: Command) => {
      checkArgs(command, names, 1);
      const client = clientFor(context, command);
      const { found, errors } = await inspectEach(client, names, (name) => `/images/${imagePath(name)}/json`);
      printInspected(context, found, errors, options.format);
    });
};
