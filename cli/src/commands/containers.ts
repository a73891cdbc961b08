import type { ContainerSummary } from '@tsengine/core';
import type { Command } from 'commander';
import { CliError, type CommandModule, withHostOption } from '../context.js';
import { DaemonError, type DockerClient } from '../client/index.js';
import { alignTabs, bytesSize, formatTable, humanDuration, humanSize } from '../format/index.js';
import { checkArgs, clientFor, collect, collectFilter, confirm, eachObject, filtersJson, goTimeString, imagePath, parseFormat, printInspected, renderRows, shortId } from './image-support.js';
import {
  apiTimestamp,
  both,
  containerPath,
  copyRaw,
  demultiplex,
  envFile,
  envList,
  forwardResize,
  forwardStdin,
  rawTerminal,
  stdinOf,
  terminalSize,
} from './container-support.js';
import { runCommands } from './container-run.js';
import { containerFileCommands } from './container-files.js';

/** Every container command, top-level and under `tsengine container`. */
export const containerCommands: CommandModule = (program, context) => {
  runCommands(program, context);
  containerFileCommands(program, context);

  both(program, 'stop', (command) =>
    command
      .description('Stop one or more running containers')
      .usage('[OPTIONS] CONTAINER [CONTAINER...]')
      .argument('[CONTAINER...]')
      .option('-s, --signal <string>', 'signal to send to the container')
      .option('-t, --time <int>', 'seconds to wait before killing the container')
      .option('--timeout <int>', 'seconds to wait before killing the container (same as --time)')
      .action(async (refs: string[], options: { signal?: string; time?: string; timeout?: string }, cmd: Command) => {
        checkArgs(cmd, refs, 1);
        const client = clientFor(context, cmd);
        const t = options.time ?? options.timeout;
        await eachObject(context, refs, async (ref) => {
          await client.request('POST', `/containers/${containerPath(ref)}/stop`, { query: { t, signal: options.signal } });
          return ref;
        });
      }),
  );

  both(program, 'restart', (command) =>
    command
      .description('Restart one or more containers')
      .usage('[OPTIONS] CONTAINER [CONTAINER...]')
      .argument('[CONTAINER...]')
      .option('-s, --signal <string>', 'signal to send to the container')
      .option('-t, --time <int>', 'seconds to wait before killing the container')
      .action(async (refs: string[], options: { signal?: string; time?: string }, cmd: Command) => {
        checkArgs(cmd, refs, 1);
        const client = clientFor(context, cmd);
        await eachObject(context, refs, async (ref) => {
          await client.request('POST', `/containers/${containerPath(ref)}/restart`, { query: { t: options.time, signal: options.signal } });
          return ref;
        });
      }),
  );

  both(program, 'kill', (command) =>
    command
      .description('Kill one or more running containers')
      .usage('[OPTIONS] CONTAINER [CONTAINER...]')
      .argument('[CONTAINER...]')
      .option('-s, --signal <string>', 'signal to send to the container')
      .action(async (refs: string[], options: { signal?: string }, cmd: Command) => {
        checkArgs(cmd, refs, 1);
        const client = clientFor(context, cmd);
        await eachObject(context, refs, async (ref) => {
          await client.request('POST', `/containers/${containerPath(ref)}/kill`, { query: { signal: options.signal } });
          return ref;
        });
      }),
  );

  both(
    program,
    'rm',
    (command) =>
      command
        .description('Remove one or more containers')
        .usage('[OPTIONS] CONTAINER [CONTAINER...]')
        .argument('[CONTAINER...]')
        .option('-f, --force', 'force the removal of a running container (uses SIGKILL)')
        .option('-v, --volumes', 'remove anonymous volumes associated with the container')
        .option('-l, --link', 'remove the specified link')
        .action(async (refs: string[], options: { force?: boolean; volumes?: boolean; link?: boolean }, cmd: Command) => {
          checkArgs(cmd, refs, 1);
          const client = clientFor(context, cmd);
          await eachObject(context, refs, async (ref) => {
            if (ref.replace(/^\/+/, '') === '') throw new CliError('Error: container name cannot be empty');
            await client.request('DELETE', `/containers/${containerPath(ref)}`, { query: { force: options.force || undefined, v: options.volumes || undefined, link: options.link || undefined } });
            return ref;
          });
        }),
    { aliases: ['remove'] },
  );

  both(program, 'pause', (command) =>
    command
      .description('Pause all processes within one or more containers')
      .usage('CONTAINER [CONTAINER...]')
      .argument('[CONTAINER...]')
      .action(async (refs: string[], _options: unknown, cmd: Command) => {
        checkArgs(cmd, refs, 1);
        const client = clientFor(context, cmd);
        await eachObject(context, refs, async (ref) => (await client.request('POST', `/containers/${containerPath(ref)}/pause`), ref));
      }),
  );

  both(program, 'unpause', (command) =>
    command
      .description('Unpause all processes within one or more containers')
      .usage('CONTAINER [CONTAINER...]')
      .argument('[CONTAINER...]')
      .action(async (refs: string[], _options: unknown, cmd: Command) => {
        checkArgs(cmd, refs, 1);
        const client = clientFor(context, cmd);
        await eachObject(context, refs, async (ref) => (await client.request('POST', `/containers/${containerPath(ref)}/unpause`), ref));
      }),
  );

  both(program, 'wait', (command) =>
    command
      .description('Block until one or more containers stop, then print their exit codes')
      .usage('CONTAINER [CONTAINER...]')
      .argument('[CONTAINER...]')
      .action(async (refs: string[], _options: unknown, cmd: Command) => {
        checkArgs(cmd, refs, 1);
        const client = clientFor(context, cmd);
        await eachObject(context, refs, async (ref) => {
          const result = await client.request<{ StatusCode: number; Error?: { Message?: string } | null }>('POST', `/containers/${containerPath(ref)}/wait`);
          if (result.Error?.Message) throw new CliError(result.Error.Message);
          return String(result.StatusCode);
        });
      }),
  );

  both(program, 'rename', (command) =>
    command
      .description('Rename a container')
      .usage('CONTAINER NEW_NAME')
      .argument('[ARGS...]')
      .action(async (args: string[], _options: unknown, cmd: Command) => {
        checkArgs(cmd, args, 2, 2);
        const [ref, name] = args as [string, string];
        if (name.trim() === '') throw new CliError('Error: neither old nor new names may be empty');
        await clientFor(context, cmd).request('POST', `/containers/${containerPath(ref)}/rename`, { query: { name } });
      }),
  );

  both(program, 'top', (command) =>
    command
      .description('Display the running processes of a container')
      .usage('CONTAINER [ps OPTIONS]')
      .argument('[ARGS...]')
      .passThroughOptions()
      .action(async (args: string[], _options: unknown, cmd: Command) => {
        checkArgs(cmd, args, 1);
        const top = await clientFor(context, cmd).request<{ Titles: string[]; Processes: string[][] | null }>('GET', `/containers/${containerPath(args[0]!)}/top`, {
          query: { ps_args: args.length > 1 ? args.slice(1).join(' ') : undefined },
        });
        const lines = [top.Titles, ...(top.Processes ?? [])].map((cells) => cells.join('\t'));
        context.stdout.write(alignTabs(lines.join('\n'), 20, 3) + '\n');
      }),
  );

  both(program, 'port', (command) =>
    command
      .description('List port mappings or a specific mapping for the container')
      .usage('CONTAINER [PRIVATE_PORT[/PROTO]]')
      .argument('[ARGS...]')
      .action(async (args: string[], _options: unknown, cmd: Command) => {
        checkArgs(cmd, args, 1, 2);
        const info = await clientFor(context, cmd).request<{ NetworkSettings?: { Ports?: Record<string, Array<{ HostIp: string; HostPort: string }> | null> | null } }>(
          'GET',
          `/containers/${containerPath(args[0]!)}/json`,
        );
        const ports = info.NetworkSettings?.Ports ?? {};
        const address = (b: { HostIp: string; HostPort: string }) => `${b.HostIp.includes(':') ? `[${b.HostIp}]` : b.HostIp || '0.0.0.0'}:${b.HostPort}`;
        if (args[1]) {
          const [port, proto = 'tcp'] = args[1].split('/');
          const key = `${port}/${proto}`;
          const bindings = ports[key];
          if (!bindings?.length) throw new CliError(`Error: No public port '${key}' published for ${args[0]}`);
          context.stdout.write(bindings.map((b) => `${address(b)}\n`).join(''));
          return;
        }
        const keys = Object.keys(ports).sort((a, b) => parseInt(a) - parseInt(b) || a.localeCompare(b));
        for (const key of keys) for (const b of ports[key] ?? []) context.stdout.write(`${key} -> ${address(b)}\n`);
      }),
  );

  both(
    program,
    'ps',
    (command) =>
      command
        .description('List containers')
        .usage('[OPTIONS]')
        .argument('[ARGS...]')
        .option('-a, --all', 'show all containers (default shows just running)')
        .option('-f, --filter <filter>', 'filter output based on conditions provided', collectFilter)
        .option('--format <string>', "format output using a custom template: 'table', 'table TEMPLATE', 'json', or a Go-style template")
        .option('-n, --last <int>', 'show n last created containers (includes all states)')
        .option('-l, --latest', 'show the latest created container (includes all states)')
        .option('--no-trunc', "don't truncate output")
        .option('-q, --quiet', 'only display container IDs')
        .option('-s, --size', 'display total file sizes')
        .action(async (args: string[], options: PsOptions, cmd: Command) => {
          checkArgs(cmd, args, 0, 0);
          const limit = options.latest ? 1 : options.last !== undefined ? Number(options.last) : undefined;
          const containers = await clientFor(context, cmd).request<PsContainer[]>('GET', '/containers/json', {
            query: { all: options.all || (limit !== undefined && limit > 0) || undefined, limit: limit !== undefined && limit > 0 ? limit : undefined, size: options.size || undefined, filters: filtersJson(options.filter ?? []) },
          });
          context.stdout.write(formatPs(containers, options));
        }),
    { topLevel: true, aliases: ['ls', 'list'] },
  );

  both(program, 'logs', (command) =>
    command
      .description('Fetch the logs of a container')
      .usage('[OPTIONS] CONTAINER')
      .argument('[CONTAINER...]')
      .option('--details', 'show extra details provided to logs')
      .option('-f, --follow', 'follow log output')
      .option('--since <string>', 'show logs since timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)')
      .option('-n, --tail <string>', 'number of lines to show from the end of the logs', 'all')
      .option('-t, --timestamps', 'show timestamps')
      .option('--until <string>', 'show logs before a timestamp (e.g. "2013-01-02T13:23:37Z") or relative (e.g. "42m" for 42 minutes)')
      .action(async (refs: string[], options: { details?: boolean; follow?: boolean; since?: string; tail: string; timestamps?: boolean; until?: string }, cmd: Command) => {
        checkArgs(cmd, refs, 1, 1);
        const client = clientFor(context, cmd);
        const info = await client.request<{ Id: string; Config: { Tty?: boolean } }>('GET', `/containers/${containerPath(refs[0]!)}/json`);
        const response = await client.stream('GET', `/containers/${containerPath(info.Id)}/logs`, {
          query: {
            stdout: 1,
            stderr: 1,
            follow: options.follow || undefined,
            timestamps: options.timestamps || undefined,
            details: options.details || undefined,
            tail: options.tail,
            since: options.since ? apiTimestamp(options.since) : undefined,
            until: options.until ? apiTimestamp(options.until) : undefined,
          },
        });
        if (info.Config.Tty) await copyRaw(response.body, context.stdout);
        else await demultiplex(response.body, context.stdout, context.stderr);
      }),
  );

  both(program, 'exec', (command) =>
    command
      .description('Execute a command in a running container')
      .usage('[OPTIONS] CONTAINER COMMAND [ARG...]')
      .argument('[ARGS...]')
      .passThroughOptions()
      .option('-d, --detach', 'detached mode: run command in the background')
      .option('-e, --env <list>', 'set environment variables', collect)
      .option('--env-file <list>', 'read in a file of environment variables', collect)
      .option('-i, --interactive', 'keep STDIN open even if not attached')
      .option('--privileged', 'give extended privileges to the command')
      .option('-t, --tty', 'allocate a pseudo-TTY')
      .option('-u, --user <string>', 'username or UID (format: "<name|uid>[:<group|gid>]")')
      .option('-w, --workdir <string>', 'working directory inside the container')
      .action(async (args: string[], options: ExecOptions, cmd: Command) => {
        checkArgs(cmd, args, 2);
        context.exitCode = await exec(context, clientFor(context, cmd), args[0]!, args.slice(1), options);
      }),
  );

  const inspect = (command: Command, containersOnly: boolean) =>
    command
      .description(containersOnly ? 'Display detailed information on one or more containers' : 'Return low-level information on Docker objects')
      .usage('[OPTIONS] NAME|ID [NAME|ID...]')
      .argument('[NAME...]')
      .option('-f, --format <string>', 'format output using a custom template')
      .option('-s, --size', 'display total file sizes')
      .option('--type <string>', 'only inspect objects of the given type (container or image)')
      .action(async (refs: string[], options: { format?: string; size?: boolean; type?: string }, cmd: Command) => {
        checkArgs(cmd, refs, 1);
        const client = clientFor(context, cmd);
        const type = containersOnly ? 'container' : options.type;
        if (type !== undefined && type !== 'container' && type !== 'image') throw new CliError(`"${type}" is not a valid value for --type`);
        const found: unknown[] = [];
        const errors: string[] = [];
        for (const ref of refs) {
          const value = await inspectObject(client, ref, type, options.size === true);
          if (value === undefined) errors.push(type === 'container' ? `Error response from daemon: No such container: ${ref}` : `Error: No such object: ${ref}`);
          else found.push(value);
        }
        printInspected(context, found, errors, options.format);
      });
  inspect(withHostOption(program.command('inspect')), false);
  inspect(withHostOption(containerGroupOf(program).command('inspect')), true);

  both(
    program,
    'stats',
    (command) =>
      command
        .description('Display a live stream of container(s) resource usage statistics')
        .usage('[OPTIONS] [CONTAINER...]')
        .argument('[CONTAINER...]')
        .option('-a, --all', 'show all containers (default shows just running)')
        .option('--format <string>', 'format output using a custom template')
        .option('--no-stream', 'disable streaming stats and only pull the first result')
        .option('--no-trunc', 'do not truncate output')
        .action(async (refs: string[], options: { all?: boolean; format?: string; stream: boolean; trunc: boolean }, cmd: Command) => {
          const client = clientFor(context, cmd);
          await stats(context, client, refs, options);
        }),
  );

  containerGroupOf(program)
    .command('prune')
    .description('Remove all stopped containers')
    .usage('[OPTIONS]')
    .option('-f, --force', 'do not prompt for confirmation')
    .option('--filter <filter>', 'provide filter values (e.g. "until=<timestamp>")', collectFilter)
    .action(async (options: { force?: boolean; filter?: string[] }, cmd: Command) => {
      // A declined prompt ends quietly with status 0, as in docker.
      if (!options.force && !(await confirm(context, 'WARNING! This will remove all stopped containers.\nAre you sure you want to continue?'))) return;
      const result = await clientFor(context, cmd).request<{ ContainersDeleted: string[] | null; SpaceReclaimed: number }>('POST', '/containers/prune', {
        query: { filters: filtersJson(options.filter ?? []) },
      });
      let out = '';
      if (result.ContainersDeleted?.length) out += `Deleted Containers:\n${result.ContainersDeleted.join('\n')}\n\n`;
      out += `Total reclaimed space: ${humanSize(result.SpaceReclaimed ?? 0)}\n`;
      context.stdout.write(out);
    });
};

function containerGroupOf(program: Command): Command {
  const existing = program.commands.find((c) => c.name() === 'container');
  if (existing) return existing;
  return withHostOption(program.command('container')).description('Manage containers').usage('COMMAND');
}

async function inspectObject(client: DockerClient, ref: string, type: string | undefined, size: boolean): Promise<unknown> {
  const attempts: Array<() => Promise<unknown>> = [];
  if (type === undefined || type === 'container') attempts.push(() => client.request('GET', `/containers/${containerPath(ref)}/json`, { query: { size: size || undefined } }));
  if (type === undefined || type === 'image') attempts.push(() => client.request('GET', `/images/${imagePath(ref)}/json`));
  for (const attempt of attempts) {
    try {
      return await attempt();
    } catch (err) {
      if (!(err instanceof DaemonError) || err.status !== 404) throw err;
    }
  }
  return undefined;
}

interface ExecOptions {
  detach?: boolean;
  env?: string[];
  envFile?: string[];
  interactive?: boolean;
  privileged?: boolean;
  tty?: boolean;
  user?: string;
  workdir?: string;
}

/** docker exec: inspect, POST …/exec, POST /exec/{id}/start (hijacked), then the exit code from GET /exec/{id}/json. */
async function exec(context: import('../context.js').CliContext, client: DockerClient, ref: string, argv: string[], options: ExecOptions): Promise<number> {
  const input = stdinOf(context);
  if (options.tty && options.interactive && !(input as { isTTY?: boolean }).isTTY) throw new CliError('the input device is not a TTY');
  const info = await client.request<{ Id: string; State?: { Running?: boolean; Paused?: boolean } }>('GET', `/containers/${containerPath(ref)}/json`);
  if (info.State && !info.State.Running) throw new CliError(`Error response from daemon: container ${info.Id} is not running`);
  const env = [...(options.envFile ?? []).flatMap((f) => envFile(f, context.env)), ...envList(options.env ?? [], context.env)];
  const size = options.tty ? terminalSize(context.stdout) : undefined;
  const body = {
    User: options.user ?? '',
    Privileged: options.privileged === true,
    Tty: options.tty === true,
    ...(size ? { ConsoleSize: size } : {}),
    AttachStdin: options.interactive === true && !options.detach,
    AttachStderr: !options.detach,
    AttachStdout: !options.detach,
    Detach: options.detach === true,
    DetachKeys: '',
    Env: env.length ? env : null,
    WorkingDir: options.workdir ?? '',
    Cmd: argv,
  };
  const created = await client.request<{ Id: string }>('POST', `/containers/${containerPath(info.Id)}/exec`, { body });
  if (options.detach) {
    await client.request('POST', `/exec/${created.Id}/start`, { body: { Detach: true, Tty: options.tty === true } });
    return 0;
  }
  const connection = await client.hijack('POST', `/exec/${created.Id}/start`, { body: { Detach: false, Tty: options.tty === true, ...(size ? { ConsoleSize: size } : {}) } });
  const restore = options.interactive && options.tty ? rawTerminal(input) : () => undefined;
  const stopStdin = options.interactive ? forwardStdin(input, connection) : (connection.end(), () => undefined);
  const stopResize = options.tty ? forwardResize(client, `/exec/${created.Id}/resize`, context.stdout) : () => undefined;
  try {
    if (options.tty) await copyRaw(connection, context.stdout).catch(() => undefined);
    else await demultiplex(connection, context.stdout, context.stderr).catch(() => undefined);
  } finally {
    stopResize();
    stopStdin();
    restore();
  }
  // The exit code is recorded just after the stream ends; poll briefly for it.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const state = await client.request<{ Running: boolean; ExitCode: number | null }>('GET', `/exec/${created.Id}/json`);
    if (!state.Running && state.ExitCode !== null) return state.ExitCode;
    if (Date.now() > deadline) return state.ExitCode ?? 1;
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface PsOptions {
  all?: boolean;
  filter?: string[];
  format?: string;
  last?: string;
  latest?: boolean;
  trunc: boolean;
  quiet?: boolean;
  size?: boolean;
}

type PsContainer = ContainerSummary & { SizeRw?: number; SizeRootFs?: number };

const PS_HEADERS: Record<string, string> = {
  ID: 'CONTAINER ID',
  Image: 'IMAGE',
  Command: 'COMMAND',
  CreatedAt: 'CREATED AT',
  RunningFor: 'CREATED',
  Ports: 'PORTS',
  State: 'STATE',
  Status: 'STATUS',
  Size: 'SIZE',
  Names: 'NAMES',
  Labels: 'LABELS',
  Mounts: 'MOUNTS',
  Networks: 'NETWORKS',
  LocalVolumes: 'LOCAL VOLUMES',
};

/** Docker's Ellipsis: at most `max` characters, the last one "…" when cut. */
function ellipsis(text: string, max: number): string {
  const chars = [...text];
  return chars.length <= max ? text : `${chars.slice(0, max - 1).join('')}…`;
}

/** Go's strconv.Quote for the command column. */
function goQuote(text: string): string {
  return JSON.stringify(text);
}

function displayPorts(ports: ContainerSummary['Ports']): string {
  return [...(ports ?? [])]
    .sort((a, b) => (a.PublicPort ?? 0) - (b.PublicPort ?? 0) || a.PrivatePort - b.PrivatePort)
    .map((p) => (p.PublicPort ? `${p.IP?.includes(':') ? `[${p.IP}]` : (p.IP ?? '')}:${p.PublicPort}->${p.PrivatePort}/${p.Type}` : `${p.PrivatePort}/${p.Type}`))
    .join(', ');
}

function psFields(c: PsContainer, trunc: boolean, now: number): Record<string, string> {
  const names = (c.Names ?? []).map((n) => n.replace(/^\//, '')).filter((n) => !n.includes('/'));
  const image = trunc && c.Image.startsWith('sha256:') ? shortId(c.Image) : c.Image;
  return {
    ID: trunc ? shortId(c.Id) : c.Id,
    Image: image,
    Command: goQuote(trunc ? ellipsis(c.Command, 20) : c.Command),
    CreatedAt: goTimeString(c.Created),
    RunningFor: `${humanDuration(Math.max(0, now - c.Created * 1000))} ago`,
    Ports: displayPorts(c.Ports),
    State: c.State,
    Status: c.Status,
    Size: c.SizeRw !== undefined ? `${humanSize(c.SizeRw)} (virtual ${humanSize(c.SizeRootFs ?? 0)})` : '',
    Names: names.join(','),
    Labels: Object.entries(c.Labels ?? {})
      .map(([k, v]) => `${k}=${v}`)
      .join(','),
    Mounts: (c.Mounts ?? []).map((m) => (m as { Name?: string; Source?: string }).Name || (m as { Source?: string }).Source || '').join(','),
    Networks: Object.keys(c.NetworkSettings?.Networks ?? {}).join(','),
    LocalVolumes: String((c.Mounts ?? []).filter((m) => (m as { Driver?: string }).Driver === 'local').length),
  };
}

function formatPs(containers: PsContainer[], options: PsOptions): string {
  const now = Date.now();
  if (options.quiet) return containers.map((c) => `${options.trunc ? shortId(c.Id) : c.Id}\n`).join('');
  const format = parseFormat(options.format);
  const rows = containers.map((c) => psFields(c, options.trunc, now));
  if (format.template !== null) return renderRows({ ...format, template: format.template }, PS_HEADERS, rows);
  const columns = ['ID', 'Image', 'Command', 'RunningFor', 'Status', 'Ports', 'Names'];
  if (options.size) columns.splice(6, 0, 'Size');
  return formatTable(
    columns.map((c) => PS_HEADERS[c]!),
    rows.map((r) => columns.map((c) => r[c]!)),
  );
}

interface StatsSample {
  id?: string;
  name?: string;
  cpu_stats?: { cpu_usage?: { total_usage?: number; percpu_usage?: number[] }; system_cpu_usage?: number; online_cpus?: number };
  precpu_stats?: { cpu_usage?: { total_usage?: number }; system_cpu_usage?: number };
  memory_stats?: { usage?: number; limit?: number; stats?: Record<string, number> };
  networks?: Record<string, { rx_bytes?: number; tx_bytes?: number }>;
  blkio_stats?: { io_service_bytes_recursive?: Array<{ op: string; value: number }> | null };
  pids_stats?: { current?: number };
}

/** One row of `docker stats`, computed as the docker CLI does (cache excluded from memory). */
export function statsRow(sample: StatsSample, fallbackId: string, trunc: boolean): Record<string, string> {
  const cpu = sample.cpu_stats ?? {};
  const pre = sample.precpu_stats ?? {};
  const cpuDelta = (cpu.cpu_usage?.total_usage ?? 0) - (pre.cpu_usage?.total_usage ?? 0);
  const systemDelta = (cpu.system_cpu_usage ?? 0) - (pre.system_cpu_usage ?? 0);
  const online = cpu.online_cpus || cpu.cpu_usage?.percpu_usage?.length || 0;
  const cpuPercent = systemDelta > 0 && cpuDelta > 0 ? (cpuDelta / systemDelta) * online * 100 : 0;
  const mem = sample.memory_stats ?? {};
  const inner = mem.stats ?? {};
  const cache = inner.total_inactive_file ?? inner.inactive_file ?? 0;
  const used = Math.max(0, (mem.usage ?? 0) - (cache < (mem.usage ?? 0) ? cache : 0));
  const limit = mem.limit ?? 0;
  let rx = 0;
  let tx = 0;
  for (const n of Object.values(sample.networks ?? {})) {
    rx += n.rx_bytes ?? 0;
    tx += n.tx_bytes ?? 0;
  }
  let read = 0;
  let write = 0;
  for (const e of sample.blkio_stats?.io_service_bytes_recursive ?? []) {
    if (e.op.toLowerCase() === 'read') read += e.value;
    if (e.op.toLowerCase() === 'write') write += e.value;
  }
  const id = sample.id ?? fallbackId;
  return {
    Container: trunc ? id.slice(0, 12) : id,
    ID: trunc ? id.slice(0, 12) : id,
    Name: (sample.name ?? '').replace(/^\//, '') || '--',
    CPUPerc: `${cpuPercent.toFixed(2)}%`,
    MemUsage: `${bytesSize(used)} / ${bytesSize(limit)}`,
    MemPerc: `${(limit > 0 ? (used / limit) * 100 : 0).toFixed(2)}%`,
    NetIO: `${humanSize(rx, 3)} / ${humanSize(tx, 3)}`,
    BlockIO: `${humanSize(read, 3)} / ${humanSize(write, 3)}`,
    PIDs: String(sample.pids_stats?.current ?? 0),
  };
}

const STATS_HEADERS: Record<string, string> = {
  Container: 'CONTAINER',
  ID: 'CONTAINER ID',
  Name: 'NAME',
  CPUPerc: 'CPU %',
  MemUsage: 'MEM USAGE / LIMIT',
  MemPerc: 'MEM %',
  NetIO: 'NET I/O',
  BlockIO: 'BLOCK I/O',
  PIDs: 'PIDS',
};

async function stats(context: import('../context.js').CliContext, client: DockerClient, refs: string[], options: { all?: boolean; format?: string; stream: boolean; trunc: boolean }): Promise<void> {
  const targets = refs.length ? refs : (await client.request<ContainerSummary[]>('GET', '/containers/json', { query: { all: options.all || undefined } })).map((c) => c.Id);
  if (options.stream) return streamStats(context, client, targets, options);
  const rows: Array<Record<string, string>> = [];
  const errors: string[] = [];
  await Promise.all(
    targets.map(async (ref, i) => {
      try {
        const sample = await client.request<StatsSample>('GET', `/containers/${containerPath(ref)}/stats`, { query: { stream: 0 } });
        rows[i] = statsRow(sample, ref, options.trunc);
      } catch (err) {
        if (!(err instanceof DaemonError)) throw err;
        errors.push(`Error response from daemon: ${err.message}`);
      }
    }),
  );
  const present = rows.filter(Boolean);
  const format = parseFormat(options.format);
  if (format.template !== null) context.stdout.write(renderRows({ ...format, template: format.template }, STATS_HEADERS, present));
  else {
    const columns = ['ID', 'Name', 'CPUPerc', 'MemUsage', 'MemPerc', 'NetIO', 'BlockIO', 'PIDs'];
    context.stdout.write(formatTable(columns.map((c) => STATS_HEADERS[c]!), present.map((r) => columns.map((c) => r[c]!))));
  }
  if (errors.length) throw new CliError(errors.join('\n'));
}

/**
 * Streaming `stats`: one GET …/stats?stream=1 per container, the table redrawn (the screen cleared
 * on a terminal) whenever a sample arrives, at most once a second; ends when every stream ended.
 */
async function streamStats(context: import('../context.js').CliContext, client: DockerClient, targets: string[], options: { format?: string; trunc: boolean }): Promise<void> {
  const rows = new Map<string, Record<string, string>>();
  const format = parseFormat(options.format);
  const columns = ['ID', 'Name', 'CPUPerc', 'MemUsage', 'MemPerc', 'NetIO', 'BlockIO', 'PIDs'];
  let last = 0;
  const draw = (force = false) => {
    if (!force && Date.now() - last < 1000) return;
    last = Date.now();
    const present = targets.map((t) => rows.get(t)).filter((r): r is Record<string, string> => r !== undefined);
    const table =
      format.template !== null
        ? renderRows({ ...format, template: format.template }, STATS_HEADERS, present)
        : formatTable(columns.map((c) => STATS_HEADERS[c]!), present.map((r) => columns.map((c) => r[c]!)));
    context.stdout.write(((context.stdout as { isTTY?: boolean }).isTTY ? '\x1b[2J\x1b[H' : '') + table);
  };
  await Promise.all(
    targets.map(async (ref) => {
      const response = await client.stream('GET', `/containers/${containerPath(ref)}/stats`, { query: { stream: 1 } });
      let pending = '';
      for await (const chunk of response.body) {
        pending += chunk.toString();
        const lines = pending.split('\n');
        pending = lines.pop()!;
        for (const line of lines.filter((l) => l.trim() !== '')) {
          rows.set(ref, statsRow(JSON.parse(line) as StatsSample, ref, options.trunc));
          draw();
        }
      }
    }),
  );
  draw(true);
}
