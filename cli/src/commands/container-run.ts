import { existsSync, writeFileSync } from 'node:fs';
import { type Command, InvalidArgumentError, Option } from 'commander';
import { type CliContext, CliError, type CommandModule } from '../context.js';
import { DaemonError, type DockerClient } from '../client/index.js';
import { checkArgs, clientFor, collect } from './image-support.js';
import {
  both,
  containerPath,
  copyRaw,
  createContainer,
  demultiplex,
  envFile,
  envList,
  forwardResize,
  forwardStdin,
  rawTerminal,
  startFailureStatus,
  stdinOf,
  terminalSize,
} from './container-support.js';

/** `run` and `create` flags, named as commander stores them. */
export interface CreateOptions {
  name?: string;
  interactive?: boolean;
  tty?: boolean;
  env?: string[];
  envFile?: string[];
  workdir?: string;
  user?: string;
  entrypoint?: string;
  hostname?: string;
  domainname?: string;
  restart?: string;
  stopSignal?: string;
  stopTimeout?: string;
  label?: string[];
  volume?: string[];
  publish?: string[];
  publishAll?: boolean;
  expose?: string[];
  network?: string;
  memory?: string;
  memorySwap?: string;
  cpus?: string;
  cpuShares?: string;
  cpusetCpus?: string;
  pidsLimit?: string;
  privileged?: boolean;
  readOnly?: boolean;
  capAdd?: string[];
  capDrop?: string[];
  securityOpt?: string[];
  addHost?: string[];
  dns?: string[];
  volumesFrom?: string[];
  rm?: boolean;
  mount?: string[];
  tmpfs?: string[];
  logDriver?: string;
  logOpt?: string[];
  networkAlias?: string[];
  ip?: string;
  groupAdd?: string[];
  shmSize?: string;
  init?: boolean;
  sysctl?: string[];
  ulimit?: string[];
  device?: string[];
  cidfile?: string;
  ipc?: string;
  pid?: string;
  uts?: string;
  pull: string;
  quiet?: boolean;
  platform?: string;
}

interface RunOptions extends CreateOptions {
  detach?: boolean;
  sigProxy: boolean;
}

function int(name: string) {
  return (value: string): string => {
    if (!/^-?\d+$/.test(value)) throw new InvalidArgumentError(`invalid argument "${value}" for "${name}" flag: strconv.ParseInt: parsing "${value}": invalid syntax`);
    return value;
  };
}

/** The flags `run` and `create` share, as the docker CLI spells them (-h is --hostname, so help is --help only). */
function createFlags(command: Command): Command {
  return command
    .helpOption('--help', 'display help for command')
    .passThroughOptions()
    .argument('[IMAGE_AND_COMMAND...]', 'IMAGE [COMMAND] [ARG...]')
    .option('--name <string>', 'assign a name to the container')
    .option('-i, --interactive', 'keep STDIN open even if not attached')
    .option('-t, --tty', 'allocate a pseudo-TTY')
    .option('-e, --env <list>', 'set environment variables', collect)
    .option('--env-file <file>', 'read in a file of environment variables', collect)
    .option('-w, --workdir <string>', 'working directory inside the container')
    .option('-u, --user <string>', 'username or UID (format: <name|uid>[:<group|gid>])')
    .option('--entrypoint <string>', 'overwrite the default ENTRYPOINT of the image')
    .option('-h, --hostname <string>', 'container host name')
    .option('--domainname <string>', 'container NIS domain name')
    .option('--restart <string>', 'restart policy to apply when a container exits', 'no')
    .option('--stop-signal <string>', 'signal to stop the container')
    .option('--stop-timeout <int>', 'timeout (in seconds) to stop a container', int('--stop-timeout'))
    .option('-l, --label <list>', 'set meta data on a container', collect)
    .option('-v, --volume <list>', 'bind mount a volume', collect)
    .option('--volumes-from <list>', 'mount volumes from the specified container(s)', collect)
    .option('-p, --publish <list>', "publish a container's port(s) to the host", collect)
    .option('-P, --publish-all', 'publish all exposed ports to random ports')
    .option('--expose <list>', 'expose a port or a range of ports', collect)
    .option('--network <network>', 'connect a container to a network')
    .option('-m, --memory <bytes>', 'memory limit')
    .option('--memory-swap <bytes>', "swap limit equal to memory plus swap: '-1' to enable unlimited swap")
    .option('--cpus <decimal>', 'number of CPUs')
    .option('-c, --cpu-shares <int>', 'CPU shares (relative weight)', int('--cpu-shares'))
    .option('--cpuset-cpus <string>', 'CPUs in which to allow execution (0-3, 0,1)')
    .option('--pids-limit <int>', 'tune container pids limit (set -1 for unlimited)', int('--pids-limit'))
    .option('--privileged', 'give extended privileges to this container')
    .option('--read-only', "mount the container's root filesystem as read only")
    .option('--cap-add <list>', 'add Linux capabilities', collect)
    .option('--cap-drop <list>', 'drop Linux capabilities', collect)
    .option('--security-opt <list>', 'security options', collect)
    .option('--add-host <list>', 'add a custom host-to-IP mapping (host:ip)', collect)
    .option('--dns <list>', 'set custom DNS servers', collect)
    .option('--mount <mount>', 'attach a filesystem mount to the container', collect)
    .option('--tmpfs <list>', 'mount a tmpfs directory', collect)
    .option('--log-driver <string>', 'logging driver for the container')
    .option('--log-opt <list>', 'log driver options', collect)
    .option('--network-alias <list>', 'add network-scoped alias for the container', collect)
    .option('--ip <string>', 'IPv4 address (e.g., 172.30.100.104)')
    .option('--group-add <list>', 'add additional groups to join', collect)
    .option('--shm-size <bytes>', 'size of /dev/shm')
    .option('--init', 'run an init inside the container that forwards signals and reaps processes')
    .option('--sysctl <map>', 'sysctl options', collect)
    .option('--ulimit <ulimit>', 'ulimit options', collect)
    .option('--device <list>', 'add a host device to the container', collect)
    .option('--cidfile <string>', 'write the container ID to the file')
    .option('--ipc <string>', 'IPC mode to use')
    .option('--pid <string>', 'PID namespace to use')
    .option('--uts <string>', 'UTS namespace to use')
    .option('--rm', 'automatically remove the container and its associated anonymous volumes when it exits')
    .addOption(new Option('--pull <string>', 'pull image before running').choices(['always', 'missing', 'never']).default('missing'))
    .option('-q, --quiet', 'suppress the pull output')
    .option('--platform <string>', 'set platform if server is multi-platform capable');
}

/** go-units RAMInBytes: "64m", "1g", "512k", "100" (bytes); binary multiples. */
export function ramInBytes(value: string, flag: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmgtp]?)(i?b)?$/i.exec(value.trim());
  if (!m) throw new CliError(`invalid argument "${value}" for "${flag}" flag: invalid size: '${value}'`, 125);
  const power = ['', 'k', 'm', 'g', 't', 'p'].indexOf(m[2]!.toLowerCase());
  return Math.round(Number(m[1]) * 1024 ** power);
}

/** -p [ip:][hostPort:]containerPort[/proto] (port ranges allowed) into ExposedPorts and PortBindings. */
export function parsePublish(specs: string[]): { exposed: Record<string, Record<string, never>>; bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> } {
  const exposed: Record<string, Record<string, never>> = {};
  const bindings: Record<string, Array<{ HostIp: string; HostPort: string }>> = {};
  for (const spec of specs) {
    const [main, proto = 'tcp'] = spec.split('/') as [string, string | undefined];
    let ip = '';
    let hostPort = '';
    let containerPort: string;
    const bracket = /^\[([^\]]+)\]:(.*)$/.exec(main);
    const rest = bracket ? bracket[2]! : main;
    if (bracket) ip = bracket[1]!;
    const parts = rest.split(':');
    if (bracket) {
      if (parts.length !== 2) throw new CliError(`invalid port format for --publish: ${spec}`, 125);
      [hostPort, containerPort] = parts as [string, string];
    } else if (parts.length === 1) containerPort = parts[0]!;
    else if (parts.length === 2) [hostPort, containerPort] = parts as [string, string];
    else if (parts.length === 3) [ip, hostPort, containerPort] = parts as [string, string, string];
    else throw new CliError(`invalid port format for --publish: ${spec}`, 125);
    if (!/^\d+(-\d+)?$/.test(containerPort) || (hostPort !== '' && !/^\d+(-\d+)?$/.test(hostPort))) throw new CliError(`invalid containerPort: ${containerPort}`, 125);
    const [cStart, cEnd = cStart] = containerPort.split('-').map(Number) as [number, number?];
    const [hStart, hEnd] = hostPort === '' ? [undefined, undefined] : (hostPort.split('-').map(Number) as [number, number?]);
    for (let port = cStart; port <= cEnd!; port++) {
      const key = `${port}/${proto.toLowerCase()}`;
      exposed[key] = {};
      let host = '';
      if (hStart !== undefined) host = hEnd !== undefined && cEnd === cStart ? `${hStart}-${hEnd}` : String(hStart + (port - cStart));
      (bindings[key] ??= []).push({ HostIp: ip, HostPort: host });
    }
  }
  return { exposed, bindings };
}

function restartPolicy(value: string): { Name: string; MaximumRetryCount: number } {
  const [name = '', count] = value.split(':');
  if (!['no', 'always', 'unless-stopped', 'on-failure', ''].includes(name)) throw new CliError(`invalid restart policy: ${value}`, 125);
  if (count !== undefined && name !== 'on-failure') throw new CliError(`invalid restart policy format: maximum retry count can only be used with 'on-failure'`, 125);
  if (count !== undefined && !/^\d+$/.test(count)) throw new CliError(`invalid restart policy format: maximum retry count must be an integer`, 125);
  return { Name: name === '' ? 'no' : name, MaximumRetryCount: count ? Number(count) : 0 };
}

function labels(list: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of list ?? []) {
    const eq = l.indexOf('=');
    out[eq === -1 ? l : l.slice(0, eq)] = eq === -1 ? '' : l.slice(eq + 1);
  }
  return out;
}

function keyValues(list: string[] | undefined, flag: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const item of list ?? []) {
    const eq = item.indexOf('=');
    if (eq <= 0) throw new CliError(`invalid argument "${item}" for "${flag}" flag: expected key=value`, 125);
    out[item.slice(0, eq)] = item.slice(eq + 1);
  }
  return out;
}

/** --network-alias and --ip go to the endpoint of the chosen (user-defined) network, as docker sends them. */
function endpointsConfig(options: CreateOptions): Record<string, unknown> {
  if (!options.networkAlias?.length && !options.ip) return {};
  const network = options.network ?? 'default';
  if (['default', 'bridge', 'host', 'none'].includes(network)) throw new CliError('network-scoped aliases and --ip are only supported for user-defined networks', 125);
  return { [network]: { ...(options.ip ? { IPAMConfig: { IPv4Address: options.ip } } : {}), ...(options.networkAlias?.length ? { Aliases: options.networkAlias } : {}) } };
}

/** docker's --mount CSV: type=volume|bind|tmpfs,source=,target=,readonly,volume-opt=k=v,tmpfs-size=,… */
export function parseMount(spec: string): Record<string, unknown> {
  const mount: Record<string, unknown> = { Type: 'volume' };
  const volumeOptions: Record<string, unknown> = {};
  const driverOptions: Record<string, string> = {};
  const tmpfs: Record<string, unknown> = {};
  const bind: Record<string, unknown> = {};
  for (const field of spec.split(',').map((f) => f.trim()).filter(Boolean)) {
    const eq = field.indexOf('=');
    const key = (eq === -1 ? field : field.slice(0, eq)).toLowerCase();
    const value = eq === -1 ? undefined : field.slice(eq + 1);
    const flag = () => value === undefined || ['1', 'true'].includes(value.toLowerCase());
    switch (key) {
      case 'type':
        mount.Type = value;
        break;
      case 'source':
      case 'src':
        mount.Source = value;
        break;
      case 'target':
      case 'destination':
      case 'dst':
        mount.Target = value;
        break;
      case 'readonly':
      case 'ro':
        mount.ReadOnly = flag();
        break;
      case 'consistency':
        mount.Consistency = value;
        break;
      case 'bind-propagation':
        bind.Propagation = value;
        break;
      case 'volume-nocopy':
        volumeOptions.NoCopy = flag();
        break;
      case 'volume-driver':
        volumeOptions.DriverConfig = { ...((volumeOptions.DriverConfig as object) ?? {}), Name: value };
        break;
      case 'volume-opt': {
        const [k, ...rest] = (value ?? '').split('=');
        driverOptions[k!] = rest.join('=');
        break;
      }
      case 'volume-label': {
        const [k, ...rest] = (value ?? '').split('=');
        volumeOptions.Labels = { ...((volumeOptions.Labels as object) ?? {}), [k!]: rest.join('=') };
        break;
      }
      case 'tmpfs-size':
        tmpfs.SizeBytes = ramInBytes(value ?? '', '--mount');
        break;
      case 'tmpfs-mode':
        tmpfs.Mode = parseInt(value ?? '', 8);
        break;
      default:
        throw new CliError(`invalid argument "${spec}" for "--mount" flag: unexpected key '${key}' in '${field}'`, 125);
    }
  }
  if (Object.keys(driverOptions).length) volumeOptions.DriverConfig = { ...((volumeOptions.DriverConfig as object) ?? {}), Options: driverOptions };
  if (Object.keys(volumeOptions).length) mount.VolumeOptions = volumeOptions;
  if (Object.keys(tmpfs).length) mount.TmpfsOptions = tmpfs;
  if (Object.keys(bind).length) mount.BindOptions = bind;
  if (!mount.Target) throw new CliError(`invalid argument "${spec}" for "--mount" flag: target is required`, 125);
  return mount;
}

function parseUlimit(spec: string): { Name: string; Soft: number; Hard: number } {
  const m = /^([a-z]+)=(-?\d+)(?::(-?\d+))?$/.exec(spec);
  if (!m) throw new CliError(`invalid argument "${spec}" for "--ulimit" flag: invalid ulimit argument: ${spec}`, 125);
  return { Name: m[1]!, Soft: Number(m[2]), Hard: Number(m[3] ?? m[2]) };
}

function parseDevice(spec: string): { PathOnHost: string; PathInContainer: string; CgroupPermissions: string } {
  const parts = spec.split(':');
  const host = parts[0]!;
  let inside = host;
  let permissions = 'rwm';
  if (parts.length === 2) {
    if (/^[rwm]+$/.test(parts[1]!)) permissions = parts[1]!;
    else inside = parts[1]!;
  } else if (parts.length === 3) [, inside, permissions] = parts as [string, string, string];
  else if (parts.length > 3) throw new CliError(`invalid device specification: ${spec}`, 125);
  return { PathOnHost: host, PathInContainer: inside, CgroupPermissions: permissions };
}

/** The create body the docker CLI builds from run/create flags (same keys, same "unset" values). */
export function createBody(image: string, command: string[], options: CreateOptions, context: CliContext, terminal: [number, number] | undefined): Record<string, unknown> {
  const env = [...(options.envFile ?? []).flatMap((f) => envFile(f, context.env)), ...envList(options.env ?? [], context.env)];
  const publish = parsePublish(options.publish ?? []);
  for (const e of options.expose ?? []) {
    const [port, proto = 'tcp'] = e.split('/');
    if (!/^\d+(-\d+)?$/.test(port ?? '')) throw new CliError(`invalid range format for --expose: ${e}`, 125);
    publish.exposed[`${port}/${proto}`] = {};
  }
  const attach = options.interactive === true;
  const entrypoint = options.entrypoint === undefined ? null : options.entrypoint === '' ? [''] : [options.entrypoint];
  const memory = options.memory ? ramInBytes(options.memory, '--memory') : 0;
  const memorySwap = options.memorySwap === undefined ? 0 : options.memorySwap === '-1' ? -1 : ramInBytes(options.memorySwap, '--memory-swap');
  let nanoCpus = 0;
  if (options.cpus !== undefined) {
    const cpus = Number(options.cpus);
    if (!Number.isFinite(cpus) || cpus < 0) throw new CliError(`invalid argument "${options.cpus}" for "--cpus" flag: failed to parse ${options.cpus} as a rational number`, 125);
    nanoCpus = Math.round(cpus * 1e9);
  }
  return {
    Hostname: options.hostname ?? '',
    Domainname: options.domainname ?? '',
    User: options.user ?? '',
    AttachStdin: attach,
    AttachStdout: true,
    AttachStderr: true,
    ...(Object.keys(publish.exposed).length ? { ExposedPorts: publish.exposed } : {}),
    Tty: options.tty === true,
    OpenStdin: attach,
    StdinOnce: attach,
    Env: env.length ? env : null,
    Cmd: command.length ? command : null,
    Image: image,
    Volumes: {},
    WorkingDir: options.workdir ?? '',
    Entrypoint: entrypoint,
    OnBuild: null,
    Labels: labels(options.label),
    ...(options.stopSignal ? { StopSignal: options.stopSignal } : {}),
    ...(options.stopTimeout !== undefined ? { StopTimeout: Number(options.stopTimeout) } : {}),
    HostConfig: {
      Binds: options.volume?.length ? options.volume : null,
      ContainerIDFile: '',
      LogConfig: { Type: '', Config: {} },
      NetworkMode: options.network ?? 'default',
      PortBindings: publish.bindings,
      RestartPolicy: restartPolicy(options.restart ?? 'no'),
      AutoRemove: options.rm === true,
      VolumeDriver: '',
      VolumesFrom: options.volumesFrom?.length ? options.volumesFrom : null,
      ConsoleSize: terminal ?? [0, 0],
      CapAdd: options.capAdd?.length ? options.capAdd : null,
      CapDrop: options.capDrop?.length ? options.capDrop : null,
      Dns: options.dns ?? [],
      DnsOptions: [],
      DnsSearch: [],
      ExtraHosts: options.addHost?.length ? options.addHost : null,
      Privileged: options.privileged === true,
      PublishAllPorts: options.publishAll === true,
      ReadonlyRootfs: options.readOnly === true,
      SecurityOpt: options.securityOpt?.length ? options.securityOpt : null,
      CpuShares: options.cpuShares ? Number(options.cpuShares) : 0,
      Memory: memory,
      NanoCpus: nanoCpus,
      CpusetCpus: options.cpusetCpus ?? '',
      MemorySwap: memorySwap,
      MemorySwappiness: -1,
      PidsLimit: options.pidsLimit ? Number(options.pidsLimit) : 0,
      ...(options.mount?.length ? { Mounts: options.mount.map(parseMount) } : {}),
      ...(options.tmpfs?.length ? { Tmpfs: Object.fromEntries(options.tmpfs.map((t) => [t.split(':')[0]!, t.includes(':') ? t.slice(t.indexOf(':') + 1) : ''])) } : {}),
      ...(options.logDriver || options.logOpt?.length ? { LogConfig: { Type: options.logDriver ?? '', Config: keyValues(options.logOpt, '--log-opt') } } : {}),
      ...(options.groupAdd?.length ? { GroupAdd: options.groupAdd } : {}),
      ...(options.shmSize ? { ShmSize: ramInBytes(options.shmSize, '--shm-size') } : {}),
      ...(options.init ? { Init: true } : {}),
      ...(options.sysctl?.length ? { Sysctls: keyValues(options.sysctl, '--sysctl') } : {}),
      ...(options.ulimit?.length ? { Ulimits: options.ulimit.map(parseUlimit) } : {}),
      ...(options.device?.length ? { Devices: options.device.map(parseDevice) } : {}),
      IpcMode: options.ipc ?? '',
      PidMode: options.pid ?? '',
      UTSMode: options.uts ?? '',
    },
    NetworkingConfig: { EndpointsConfig: endpointsConfig(options) },
  };
}

/** docker run's failure before the container runs: "tsengine: <message>" with the help hint, exit 125 (or 126/127 on start). */
function runError(command: string, err: unknown, status = 125): CliError {
  const message = err instanceof DaemonError ? `Error response from daemon: ${err.message}` : err instanceof Error ? err.message : String(err);
  return new CliError(`tsengine: ${message}\n\nRun 'tsengine ${command} --help' for more information`, status);
}

/** --cidfile: refused when the file exists (docker's check), written once the container exists. */
function checkCidfile(path: string | undefined): void {
  if (path && existsSync(path)) throw new CliError(`tsengine: container ID file found, make sure the other container isn't running or delete ${path}`, 125);
}

function writeCidfile(path: string | undefined, id: string): void {
  if (!path) return;
  try {
    writeFileSync(path, id, { flag: 'wx', mode: 0o644 });
  } catch (err) {
    throw new CliError(`tsengine: failed to create the container ID file: ${(err as Error).message}`, 125);
  }
}

function splitImageArgs(cmd: Command, args: string[]): { image: string; command: string[] } {
  checkArgs(cmd, args, 1);
  return { image: args[0]!, command: args.slice(1) };
}

async function readAll(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += chunk.toString();
  return text;
}

/**
 * Attach, wait, start, stream until the output ends, then the exit status from wait: the docker
 * CLI's sequence for `run` and `start -a`. Start failures become CliErrors with docker's statuses.
 */
export async function attachAndStart(
  context: CliContext,
  client: DockerClient,
  id: string,
  options: { interactive: boolean; tty: boolean; condition: 'next-exit' | 'removed'; sigProxy: boolean; commandName: string; runStyleErrors: boolean },
): Promise<number> {
  const input = stdinOf(context);
  const connection = await client.hijack('POST', `/containers/${containerPath(id)}/attach`, {
    query: { stream: 1, stdout: 1, stderr: 1, ...(options.interactive ? { stdin: 1 } : {}) },
  });
  const waiting = await client.stream('POST', `/containers/${containerPath(id)}/wait`, { query: { condition: options.condition } });
  const waitBody = readAll(waiting.body);
  waitBody.catch(() => undefined);
  const restoreTerminal = options.interactive && options.tty ? rawTerminal(input) : () => undefined;
  const stopStdin = options.interactive ? forwardStdin(input, connection) : (connection.end(), () => undefined);
  const output = (options.tty ? copyRaw(connection, context.stdout) : demultiplex(connection, context.stdout, context.stderr)).catch(() => undefined);
  const signals: NodeJS.Signals[] = options.sigProxy && !options.tty ? ['SIGINT', 'SIGTERM', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'] : [];
  const proxy = (signal: NodeJS.Signals) => void client.request('POST', `/containers/${containerPath(id)}/kill`, { query: { signal } }).catch(() => undefined);
  for (const s of signals) process.on(s, proxy);
  let stopResize = () => undefined as void;
  try {
    try {
      await client.request('POST', `/containers/${containerPath(id)}/start`);
    } catch (err) {
      connection.destroy();
      waiting.body.destroy();
      if (!options.runStyleErrors) throw err;
      const message = err instanceof DaemonError ? err.message : String(err);
      throw runError(options.commandName, err, startFailureStatus(message));
    }
    if (options.tty) stopResize = forwardResize(client, `/containers/${containerPath(id)}/resize`, context.stdout);
    await output;
  } finally {
    stopResize();
    stopStdin();
    restoreTerminal();
    for (const s of signals) process.off(s, proxy);
  }
  const text = await waitBody.catch(() => '');
  try {
    const result = JSON.parse(text) as { StatusCode: number; Error?: { Message?: string } | null };
    if (result.Error?.Message) context.stderr.write(`${result.Error.Message}\n`);
    return result.StatusCode;
  } catch {
    throw new CliError(`tsengine: the daemon ended the wait without a status (${text.trim() || 'empty answer'})`, 125);
  }
}

export const runCommands: CommandModule = (program, context) => {
  both(program, 'run', (command) =>
    createFlags(command)
      .description('Create and run a new container from an image')
      .usage('[OPTIONS] IMAGE [COMMAND] [ARG...]')
      .option('-d, --detach', 'run container in background and print container ID')
      .option('--no-sig-proxy', 'do not proxy received signals to the process')
      .action(async (args: string[], options: RunOptions, cmd: Command) => run(context, cmd, args, options)),
  );
  both(program, 'create', (command) =>
    createFlags(command)
      .description('Create a new container')
      .usage('[OPTIONS] IMAGE [COMMAND] [ARG...]')
      .action(async (args: string[], options: CreateOptions, cmd: Command) => {
        const { image, command: argv } = splitImageArgs(cmd, args);
        const client = clientFor(context, cmd);
        const body = createBody(image, argv, options, context, options.tty ? terminalSize(context.stdout) : undefined);
        checkCidfile(options.cidfile);
        let created: { Id: string; Warnings?: string[] | null };
        try {
          created = await createContainer(context, client, body, options.name, options.pull as 'missing', options.quiet);
        } catch (err) {
          if (err instanceof DaemonError) throw new CliError(`Error response from daemon: ${err.message}`, 1);
          throw err;
        }
        writeCidfile(options.cidfile, created.Id);
        for (const w of created.Warnings ?? []) context.stderr.write(`WARNING: ${w}\n`);
        context.stdout.write(`${created.Id}\n`);
      }),
  );
  both(program, 'start', (command) =>
    command
      .description('Start one or more stopped containers')
      .usage('[OPTIONS] CONTAINER [CONTAINER...]')
      .argument('[CONTAINER...]')
      .option('-a, --attach', "attach STDOUT/STDERR and forward signals")
      .option('-i, --interactive', "attach container's STDIN")
      .action(async (refs: string[], options: { attach?: boolean; interactive?: boolean }, cmd: Command) => {
        checkArgs(cmd, refs, 1);
        const client = clientFor(context, cmd);
        if (options.attach || options.interactive) {
          if (refs.length > 1) throw new CliError('you cannot start and attach multiple containers at once');
          const info = await client.request<{ Id: string; Config: { Tty?: boolean; OpenStdin?: boolean } }>('GET', `/containers/${containerPath(refs[0]!)}/json`);
          context.exitCode = await attachAndStart(context, client, info.Id, {
            interactive: options.interactive === true && info.Config.OpenStdin === true,
            tty: info.Config.Tty === true,
            condition: 'next-exit',
            sigProxy: true,
            commandName: 'start',
            runStyleErrors: false,
          });
          return;
        }
        const failed: string[] = [];
        const errors: string[] = [];
        for (const ref of refs) {
          try {
            await client.request('POST', `/containers/${containerPath(ref)}/start`);
            context.stdout.write(`${ref}\n`);
          } catch (err) {
            if (!(err instanceof DaemonError)) throw err;
            errors.push(`Error response from daemon: ${err.message}`);
            failed.push(ref);
          }
        }
        if (failed.length) throw new CliError(`${errors.join('\n')}\nError: failed to start containers: ${failed.join(', ')}`);
      }),
  );
};

async function run(context: CliContext, cmd: Command, args: string[], options: RunOptions): Promise<void> {
  const { image, command } = splitImageArgs(cmd, args);
  if (options.detach && options.rm === undefined) options.rm = false;
  const client = clientFor(context, cmd);
  const body = createBody(image, command, options, context, options.tty ? terminalSize(context.stdout) : undefined);
  if (options.detach) Object.assign(body, { AttachStdin: false, AttachStdout: false, AttachStderr: false, StdinOnce: false });
  if (options.tty && options.interactive && !(stdinOf(context) as { isTTY?: boolean }).isTTY) {
    throw runError('run', new Error('the input device is not a TTY'), 1);
  }
  checkCidfile(options.cidfile);
  let created: { Id: string; Warnings?: string[] | null };
  try {
    created = await createContainer(context, client, body, options.name, options.pull as 'missing', options.quiet);
  } catch (err) {
    if (err instanceof DaemonError) throw runError('run', err);
    throw err;
  }
  writeCidfile(options.cidfile, created.Id);
  for (const w of created.Warnings ?? []) context.stderr.write(`WARNING: ${w}\n`);
  if (options.detach) {
    try {
      await client.request('POST', `/containers/${containerPath(created.Id)}/start`);
    } catch (err) {
      const message = err instanceof DaemonError ? err.message : String(err);
      throw runError('run', err, startFailureStatus(message));
    }
    context.stdout.write(`${created.Id}\n`);
    return;
  }
  context.exitCode = await attachAndStart(context, client, created.Id, {
    interactive: options.interactive === true,
    tty: options.tty === true,
    condition: options.rm ? 'removed' : 'next-exit',
    sigProxy: options.sigProxy !== false,
    commandName: 'run',
    runStyleErrors: true,
  });
}
