import type { Volume } from '@tsengine/core';
import type { Command } from 'commander';
import { type CliContext, CliError, type CommandModule, withHostOption } from '../context.js';
import { formatTable, humanSize } from '../format/index.js';
import { checkArgs, clientFor, collect, collectFilter, confirm, eachObject, filtersJson, parseFormat, inspectEach, printInspected, renderRows } from './image-support.js';

type PruneReport = { VolumesDeleted: string[] | null; SpaceReclaimed: number };

const PRUNE_ANONYMOUS_WARNING = 'WARNING! This will remove anonymous local volumes not used by at least one container.\nAre you sure you want to continue?';
const PRUNE_ALL_WARNING = 'WARNING! This will remove all local volumes not used by at least one container.\nAre you sure you want to continue?';

/** `--format` fields of `volume ls`, named and rendered like docker's volume formatter. */
const HEADERS: Record<string, string> = {
  Availability: 'AVAILABILITY',
  Driver: 'DRIVER',
  Group: 'GROUP',
  Labels: 'LABELS',
  Links: 'LINKS',
  Mountpoint: 'MOUNTPOINT',
  Name: 'VOLUME NAME',
  Scope: 'SCOPE',
  Size: 'SIZE',
  Status: 'STATUS',
};

function fields(volume: Volume): Record<string, string> {
  return {
    Availability: 'N/A',
    Driver: volume.Driver,
    Group: 'N/A',
    Labels: Object.entries(volume.Labels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
    Links: volume.UsageData ? String(volume.UsageData.RefCount) : 'N/A',
    Mountpoint: volume.Mountpoint,
    Name: volume.Name,
    Scope: volume.Scope,
    Size: volume.UsageData && volume.UsageData.Size >= 0 ? humanSize(volume.UsageData.Size, 4) : 'N/A',
    Status: 'N/A',
  };
}

/** `-o key=value` / `--label key[=value]` pairs into a map (a label without "=" has an empty value). */
function toMap(pairs: string[] | undefined, requireValue: boolean): Record<string, string> | undefined {
  if (!pairs?.length) return undefined;
  const map: Record<string, string> = {};
  for (const pair of pairs) {
    const eq = pair.indexOf('=');
    if (eq < 0 && requireValue) throw new CliError(`invalid argument "${pair}" for "-o, --opt" flag: invalid key value pair format in driver options`, 125);
    map[eq < 0 ? pair : pair.slice(0, eq)] = eq < 0 ? '' : pair.slice(eq + 1);
  }
  return map;
}

function volumeGroup(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'volume');
  if (existing) return existing;
  return withHostOption(program.command('volume')).description('Manage volumes').usage('COMMAND');
}

export const volumeCommand: CommandModule = (program, context) => {
  const group = volumeGroup(program);
  create(withHostOption(group.command('create')), context);
  list(withHostOption(group.command('ls').alias('list')), context);
  inspect(withHostOption(group.command('inspect')), context);
  remove(withHostOption(group.command('rm').alias('remove')), context);
  prune(withHostOption(group.command('prune')), context);
};

function create(command: Command, context: CliContext): void {
  command
    .description('Create a volume')
    .usage('[OPTIONS] [VOLUME]')
    .argument('[VOLUME...]')
    .option('-d, --driver <string>', 'specify volume driver name', 'local')
    .option('--label <label>', 'set metadata for a volume', collect)
    .option('--name <string>', 'specify volume name')
    .option('-o, --opt <option>', 'set driver specific options', collect)
    .action(async (names: string[], options: { driver: string; label?: string[]; name?: string; opt?: string[] }, cmd: Command) => {
      checkArgs(cmd, names, 0, 1);
      if (names[0] && options.name && names[0] !== options.name) {
        throw new CliError(`conflicting options: cannot specify a volume-name through both --name and as a positional arg`);
      }
      const body: Record<string, unknown> = { Driver: options.driver, Name: names[0] ?? options.name ?? '' };
      const opts = toMap(options.opt, true);
      if (opts) body.DriverOpts = opts;
      const labels = toMap(options.label, false);
      if (labels) body.Labels = labels;
      const volume = await clientFor(context, cmd).request<Volume>('POST', '/volumes/create', { body });
      context.stdout.write(`${volume.Name}\n`);
    });
}

function list(command: Command, context: CliContext): void {
  command
    .description('List volumes')
    .usage('[OPTIONS]')
    .argument('[ARGS...]')
    .option('-f, --filter <filter>', "provide filter values (e.g. 'dangling=true')", collectFilter)
    .option('--format <format>', "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go-style template")
    .option('-q, --quiet', 'only display volume names')
    .action(async (args: string[], options: { filter?: string[]; format?: string; quiet?: boolean }, cmd: Command) => {
      checkArgs(cmd, args, 0, 0);
      const result = await clientFor(context, cmd).request<{ Volumes: Volume[] | null; Warnings: string[] | null }>('GET', '/volumes', {
        query: { filters: filtersJson(options.filter ?? []) },
      });
      const volumes = [...(result.Volumes ?? [])].sort((a, b) => a.Name.localeCompare(b.Name));
      for (const warning of result.Warnings ?? []) context.stderr.write(`${warning}\n`);
      if (options.quiet) {
        context.stdout.write(volumes.map((v) => `${v.Name}\n`).join(''));
        return;
      }
      const format = parseFormat(options.format);
      if (format.template !== null) {
        context.stdout.write(renderRows({ ...format, template: format.template }, HEADERS, volumes.map(fields)));
        return;
      }
      context.stdout.write(formatTable(['DRIVER', 'VOLUME NAME'], volumes.map((v) => [v.Driver, v.Name])));
    });
}

function inspect(command: Command, context: CliContext): void {
  command
    .description('Display detailed information on one or more volumes')
    .usage('[OPTIONS] VOLUME [VOLUME...]')
    .argument('[VOLUME...]')
    .option('-f, --format <template>', "format output using a custom template, e.g. '{{.Mountpoint}}' or '{{json .Labels}}'")
    .action(async (names: string[], options: { format?: string }, cmd: Command) => {
      checkArgs(cmd, names, 1);
      const client = clientFor(context, cmd);
      const { found, errors } = await inspectEach(client, names, (name) => `/volumes/${encodeURIComponent(name)}`);
      printInspected(context, found, errors, options.format);
    });
}

function remove(command: Command, context: CliContext): void {
  command
    .description('Remove one or more volumes')
    .usage('[OPTIONS] VOLUME [VOLUME...]')
    .argument('[VOLUME...]')
    .option('-f, --force', 'force the removal of one or more volumes')
    .action(async (names: string[], options: { force?: boolean }, cmd: Command) => {
      checkArgs(cmd, names, 1);
      const client = clientFor(context, cmd);
      await eachObject(context, names, async (name) => {
        await client.request('DELETE', `/volumes/${encodeURIComponent(name)}`, { query: { force: options.force || undefined } });
        return name;
      });
    });
}

function prune(command: Command, context: CliContext): void {
  command
    .description('Remove unused local volumes')
    .usage('[OPTIONS]')
    .argument('[ARGS...]')
    .option('-a, --all', 'remove all unused volumes, not just anonymous ones')
    .option('--filter <filter>', 'provide filter values (e.g. "label=<label>")', collectFilter)
    .option('-f, --force', 'do not prompt for confirmation')
    .action(async (args: string[], options: { all?: boolean; filter?: string[]; force?: boolean }, cmd: Command) => {
      checkArgs(cmd, args, 0, 0);
      if (!options.force && !(await confirm(context, options.all ? PRUNE_ALL_WARNING : PRUNE_ANONYMOUS_WARNING))) return;
      const filters = [...(options.filter ?? [])];
      if (options.all) filters.push('all=true');
      const report = await clientFor(context, cmd).request<PruneReport>('POST', '/volumes/prune', { query: { filters: filtersJson(filters) } });
      const deleted = report.VolumesDeleted ?? [];
      if (deleted.length) context.stdout.write(`Deleted Volumes:\n${deleted.join('\n')}\n\n`);
      context.stdout.write(`Total reclaimed space: ${humanSize(report.SpaceReclaimed, 4)}\n`);
    });
}


