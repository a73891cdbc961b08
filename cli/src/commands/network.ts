import type { NetworkResource } from '@tsengine/core';
import type { Command } from 'commander';
import { DaemonError } from '../client/index.js';
import { type CliContext, CliError, type CommandModule, withHostOption } from '../context.js';
import { formatTable } from '../format/index.js';
import { checkArgs, clientFor, collect, collectFilter, confirm, eachObject, filtersJson, parseFormat, inspectEach, printInspected, renderRows } from './image-support.js';

const PRUNE_WARNING = 'WARNING! This will remove all custom networks not used by at least one container.\nAre you sure you want to continue?';

/** `--format` fields of `network ls`, named like docker's network formatter. */
const HEADERS: Record<string, string> = {
  ID: 'NETWORK ID',
  Name: 'NAME',
  Driver: 'DRIVER',
  Scope: 'SCOPE',
  IPv6: 'IPV6',
  Internal: 'INTERNAL',
  Labels: 'LABELS',
  CreatedAt: 'CREATED AT',
};

function fields(network: NetworkResource, noTrunc: boolean): Record<string, string> {
  return {
    ID: noTrunc ? network.Id : network.Id.slice(0, 12),
    Name: network.Name,
    Driver: network.Driver,
    Scope: network.Scope,
    IPv6: String(network.EnableIPv6),
    Internal: String(network.Internal),
    Labels: Object.entries(network.Labels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
    CreatedAt: network.Created,
  };
}

/** `key=value` pairs (a pair without "=" is an error when `requireValue`). */
function toMap(pairs: string[] | undefined, flag: string, requireValue: boolean): Record<string, string> {
  const map: Record<string, string> = {};
  for (const pair of pairs ?? []) {
    const eq = pair.indexOf('=');
    if (eq < 0 && requireValue) throw new CliError(`invalid argument "${pair}" for "${flag}" flag: invalid key value pair format`, 125);
    map[eq < 0 ? pair : pair.slice(0, eq)] = eq < 0 ? '' : pair.slice(eq + 1);
  }
  return map;
}

function networkGroup(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'network');
  if (existing) return existing;
  return withHostOption(program.command('network')).description('Manage networks').usage('COMMAND');
}

export const networkCommand: CommandModule = (program, context) => {
  const group = networkGroup(program);
  create(withHostOption(group.command('create')), context);
  list(withHostOption(group.command('ls').alias('list')), context);
  inspect(withHostOption(group.command('inspect')), context);
  remove(withHostOption(group.command('rm').alias('remove')), context);
  connect(withHostOption(group.command('connect')), context);
  disconnect(withHostOption(group.command('disconnect')), context);
  prune(withHostOption(group.command('prune')), context);
};

interface CreateOptions {
  driver: string;
  subnet?: string[];
  gateway?: string[];
  ipRange?: string[];
  internal?: boolean;
  attachable?: boolean;
  label?: string[];
  opt?: string[];
  ipamDriver: string;
}

function create(command: Command, context: CliContext): void {
  command
    .description('Create a network')
    .usage('[OPTIONS] NETWORK')
    .argument('[NETWORK...]')
    .option('-d, --driver <string>', 'driver to manage the network', 'bridge')
    .option('--subnet <subnet>', 'subnet in CIDR format that represents a network segment', collect)
    .option('--gateway <ip>', 'IPv4 gateway for the master subnet', collect)
    .option('--ip-range <range>', 'allocate container IPs from a sub-range', collect)
    .option('--internal', 'restrict external access to the network')
    .option('--attachable', 'enable manual container attachment')
    .option('--label <label>', 'set metadata on a network', collect)
    .option('-o, --opt <option>', 'set driver specific options', collect)
    .option('--ipam-driver <string>', 'IP address management driver', 'default')
    .action(async (names: string[], options: CreateOptions, cmd: Command) => {
      checkArgs(cmd, names, 1, 1);
      const subnets = options.subnet ?? [];
      if ((options.gateway?.length ?? 0) > subnets.length || (options.ipRange?.length ?? 0) > subnets.length) {
        throw new CliError('every ip-range or gateway must have a corresponding subnet', 125);
      }
      const body = {
        Name: names[0],
        Driver: options.driver,
        IPAM: {
          Driver: options.ipamDriver,
          Options: {},
          Config: subnets.map((subnet, i) => ({
            Subnet: subnet,
            ...(options.gateway?.[i] ? { Gateway: options.gateway[i] } : {}),
            ...(options.ipRange?.[i] ? { IPRange: options.ipRange[i] } : {}),
          })),
        },
        Internal: options.internal === true,
        Attachable: options.attachable === true,
        Options: toMap(options.opt, '-o, --opt', true),
        Labels: toMap(options.label, '--label', false),
        CheckDuplicate: true,
      };
      const created = await clientFor(context, cmd).request<{ Id: string; Warning?: string }>('POST', '/networks/create', { body });
      if (created.Warning) context.stderr.write(`${created.Warning}\n`);
      context.stdout.write(`${created.Id}\n`);
    });
}

function list(command: Command, context: CliContext): void {
  command
    .description('List networks')
    .usage('[OPTIONS]')
    .argument('[ARGS...]')
    .option('-f, --filter <filter>', "provide filter values (e.g. 'driver=bridge')", collectFilter)
    .option('--format <format>', "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go-style template")
    .option('--no-trunc', 'do not truncate the output')
    .option('-q, --quiet', 'only display network IDs')
    .action(async (args: string[], options: { filter?: string[]; format?: string; trunc?: boolean; quiet?: boolean }, cmd: Command) => {
      checkArgs(cmd, args, 0, 0);
      const noTrunc = options.trunc === false;
      const networks = await clientFor(context, cmd).request<NetworkResource[]>('GET', '/networks', { query: { filters: filtersJson(options.filter ?? []) } });
      networks.sort((a, b) => a.Name.localeCompare(b.Name));
      if (options.quiet) {
        context.stdout.write(networks.map((n) => `${noTrunc ? n.Id : n.Id.slice(0, 12)}\n`).join(''));
        return;
      }
      const format = parseFormat(options.format);
      if (format.template !== null) {
        context.stdout.write(renderRows({ ...format, template: format.template }, HEADERS, networks.map((n) => fields(n, noTrunc))));
        return;
      }
      context.stdout.write(
        formatTable(
          ['NETWORK ID', 'NAME', 'DRIVER', 'SCOPE'],
          networks.map((n) => [noTrunc ? n.Id : n.Id.slice(0, 12), n.Name, n.Driver, n.Scope]),
        ),
      );
    });
}

function inspect(command: Command, context: CliContext): void {
  command
    .description('Display detailed information on one or more networks')
    .usage('[OPTIONS] NETWORK [NETWORK...]')
    .argument('[NETWORK...]')
    .option('-f, --format <template>', "format output using a custom template, e.g. '{{.Id}}' or '{{json .IPAM}}'")
    .action(async (names: string[], options: { format?: string }, cmd: Command) => {
      checkArgs(cmd, names, 1);
      const client = clientFor(context, cmd);
      const { found, errors } = await inspectEach(client, names, (name) => `/networks/${encodeURIComponent(name)}`);
      printInspected(context, found, errors, options.format);
    });
}

function remove(command: Command, context: CliContext): void {
  command
    .description('Remove one or more networks')
    .usage('NETWORK [NETWORK...]')
    .argument('[NETWORK...]')
    .option('-f, --force', 'do not error if the network does not exist')
    .action(async (names: string[], options: { force?: boolean }, cmd: Command) => {
      checkArgs(cmd, names, 1);
      const client = clientFor(context, cmd);
      await eachObject(context, names, async (name) => {
        try {
          await client.request('DELETE', `/networks/${encodeURIComponent(name)}`);
        } catch (err) {
          if (options.force && err instanceof DaemonError && err.status === 404) return undefined;
          throw err;
        }
        return name;
      });
    });
}

function connect(command: Command, context: CliContext): void {
  command
    .description('Connect a container to a network')
    .usage('[OPTIONS] NETWORK CONTAINER')
    .argument('[ARGS...]')
    .option('--alias <alias>', 'add network-scoped alias for the container', collect)
    .option('--ip <ip>', 'IPv4 address (e.g., "172.30.100.104")')
    .option('--link <link>', 'add link to another container', collect)
    .action(async (args: string[], options: { alias?: string[]; ip?: string; link?: string[] }, cmd: Command) => {
      checkArgs(cmd, args, 2, 2);
      const body = {
        Container: args[1],
        EndpointConfig: {
          ...(options.ip ? { IPAMConfig: { IPv4Address: options.ip } } : {}),
          Aliases: options.alias ?? [],
          Links: options.link ?? null,
        },
      };
      await clientFor(context, cmd).request('POST', `/networks/${encodeURIComponent(args[0]!)}/connect`, { body });
    });
}

function disconnect(command: Command, context: CliContext): void {
  command
    .description('Disconnect a container from a network')
    .usage('[OPTIONS] NETWORK CONTAINER')
    .argument('[ARGS...]')
    .option('-f, --force', 'force the container to disconnect from a network')
    .action(async (args: string[], options: { force?: boolean }, cmd: Command) => {
      checkArgs(cmd, args, 2, 2);
      await clientFor(context, cmd).request('POST', `/networks/${encodeURIComponent(args[0]!)}/disconnect`, { body: { Container: args[1], Force: options.force === true } });
    });
}

function prune(command: Command, context: CliContext): void {
  command
    .description('Remove all unused networks')
    .usage('[OPTIONS]')
    .argument('[ARGS...]')
    .option('--filter <filter>', 'provide filter values (e.g. "until=<timestamp>")', collectFilter)
    .option('-f, --force', 'do not prompt for confirmation')
    .action(async (args: string[], options: { filter?: string[]; force?: boolean }, cmd: Command) => {
      checkArgs(cmd, args, 0, 0);
      if (!options.force && !(await confirm(context, PRUNE_WARNING))) return;
      const report = await clientFor(context, cmd).request<{ NetworksDeleted: string[] | null }>('POST', '/networks/prune', { query: { filters: filtersJson(options.filter ?? []) } });
      const deleted = report.NetworksDeleted ?? [];
      if (deleted.length) context.stdout.write(`Deleted Networks:\n${deleted.join('\n')}\n`);
    });
}
