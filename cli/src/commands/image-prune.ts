import type { JobMap } from '@tsengine/core';
import type { Command } from 'commander';
import { humanSize } from '../format/index.js';
import { type CommandModule, withHostOption } from '../context.js';
import { checkArgs, clientFor, collectFilter, confirm, filtersJson, imageGroup } from './image-support.js';

type PruneReport = JobMap['image.prune']['out'];

const DANGLING_WARNING = 'WARNING! This will remove all dangling images.\nAre you sure you want to continue?';
const ALL_WARNING = 'WARNING! This will remove all images without at least one container associated to them.\nAre you sure you want to continue?';

export const imagePruneCommand: CommandModule = (program, context) => {
  withHostOption(imageGroup(program).command('prune'))
    .description('Remove unused images')
    .usage('[OPTIONS]')
    .allowExcessArguments(true)
    .option('-a, --all', 'remove all unused images, not just dangling ones')
    .option('--filter <filter>', 'provide filter values (e.g. "until=<timestamp>", "label=<key>=<value>")', collectFilter)
    .option('-f, --force', 'do not prompt for confirmation')
    .action(async (options: { all?: boolean; filter?: string[]; force?: boolean }, cmd: Command) => {
      checkArgs(cmd, cmd.args, 0, 0);
      // A declined prompt ends quietly with status 0, as in docker.
      if (!options.force && !(await confirm(context, options.all ? ALL_WARNING : DANGLING_WARNING))) return;
      const filters = [...(options.filter ?? []), `dangling=${!options.all}`];
      const report = await clientFor(context, cmd).request<PruneReport>('POST', '/images/prune', { query: { filters: filtersJson(filters) } });
      const deleted = report.ImagesDeleted ?? [];
      if (deleted.length) {
        const lines = deleted.map((item) => ('Deleted' in item ? `deleted: ${item.Deleted}` : `untagged: ${item.Untagged}`));
        context.stdout.write(`Deleted Images:\n${lines.join('\n')}\n\n`);
      }
      context.stdout.write(`Total reclaimed space: ${humanSize(report.SpaceReclaimed, 4)}\n`);
    });
};
