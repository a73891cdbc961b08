import type { Command } from 'commander';
import { type CliContext, CliError, type CommandModule, withHostOption } from '../context.js';
import { checkArgs, clientFor, imageGroup, imagePath } from './image-support.js';

export const tagCommand: CommandModule = (program, context) => {
  configure(withHostOption(program.command('tag')), context);
  configure(withHostOption(imageGroup(program).command('tag')), context);
};

function configure(command: Command, context: CliContext): void {
  command
    .description('Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE')
    .usage('SOURCE_IMAGE[:TAG] TARGET_IMAGE[:TAG]')
    .argument('[IMAGE...]')
    .action(async (args: string[], _options: unknown, cmd: Command) => {
      checkArgs(cmd, args, 2, 2);
      const [source, target] = args as [string, string];
      const { repo, tag } = splitTarget(target);
      await clientFor(context, cmd).request('POST', `/images/${imagePath(source)}/tag`, { query: { repo, tag } });
    });
}

/**
 * Splits TARGET into the repo and tag query parameters as docker's client does (a missing tag is
 * latest); the daemon validates and normalises the name.
 */
export function splitTarget(target: string): { repo: string; tag: string } {
  const errorPrefix = `Error parsing reference: "${target}" is not a valid repository/tag`;
  if (target.includes('@')) throw new CliError(target.indexOf('@') > 0 ? 'refusing to create a tag with a digest reference' : `${errorPrefix}: invalid reference format`);
  const colon = target.lastIndexOf(':');
  const hasTag = colon > target.lastIndexOf('/');
  const repo = hasTag ? target.slice(0, colon) : target;
  if (repo === '') throw new CliError(`${errorPrefix}: invalid reference format`);
  return { repo, tag: hasTag ? target.slice(colon + 1) : 'latest' };
}
