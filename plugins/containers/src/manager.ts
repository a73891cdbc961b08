import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { Writable } from 'node:stream';
import {
  type AttachStreams,
  type ContainerConfig,
  type ContainerCreateBody,
  type ContainerInspect,
  type ContainerSummary,
  type ContainerProcess,
  type ContainerSpec,
  ContainerStartError,
  type ContainerState,
  type EndpointSettings,
  type ExecDriver,
  type ExitStatus,
  type GraphDriver,
  type HostConfig,
  type ImageService,
  type Logger,
  type MountSpec,
  type NetworkService,
  type SandboxRequest,
  type VolumeService,
  type WaitCondition,
  type WaitResult,
  conflict,
  errorMessage,
  invalid,
  notFound,
  notModified,
  systemError,
  writeJsonAtomic,
} from '@tsengine/core';
import { inspectView, summaryView } from './views.js';
import { commandOf, generateName, mergeConfig, networkModeOf, newContainerId, processEnv, validateName } from './config.js';

/** What config.v2.json holds for one container. */
export interface ContainerRecord {
  Id: string;
  /** With its leading slash, as Docker stores it. */
  Name: string;
  Created: string;
  Path: string;
  Args: string[];
  /** Image ID (sha256:…). */
  Image: string;
  /** Chain ID of the image's top layer, retained for this container; null for an empty image. */
  ImageChainId: string | null;
  Config: ContainerConfig;
  HostConfig: HostConfig;
  /** NetworkingConfig.EndpointsConfig of the create body; absent in records of older versions. */
  EndpointsConfig?: Record<string, EndpointSettings>;
  Driver: string;
  State: ContainerState;
}

interface Attachment {
  streams: AttachStreams;
  finish(): void;
}

type Waiter = (exitCode: number) => void;

/** A container's record plus what only lives while the daemon runs. */
class Entry {
  process: ContainerProcess | undefined;
  starting = false;
  /** Settles once an exit has been fully handled (state saved, rootfs put); set at each start. */
  exitDone: Promise<void> | undefined;
  removing: Promise<void> | undefined;
  readonly attachments = new Set<Attachment>();
  readonly exitWaiters = new Set<Waiter>();
  readonly removeWaiters = new Set<Waiter>();

  constructor(public record: ContainerRecord) {}
}

const STOP_TIMEOUT_SECONDS = 10;

export function initialState(): ContainerState {
  return {
    Status: 'created',
    Running: false,
    Paused: false,
    Restarting: false,
    OOMKilled: false,
    Dead: false,
    Pid: 0,
    ExitCode: 0,
    Error: '',
    StartedAt: '0001-01-01T00:00:00Z',
    FinishedAt: '0001-01-01T00:00:00Z',
  };
}

/** Docker's wording around an exec failure; the CLI derives its exit code (127/126) from this text. */
function startFailureMessage(err: unknown): string {
  const detail = errorMessage(err);
  return `failed to create task for container: unable to start container process: ${detail}: unknown`;
}

export class ContainerManager {
  private readonly entries = new Map<string, Entry>();
  /** "/name" → container ID. */
  private readonly names = new Map<string, string>();
  /** Container ID → its latest state write; writes of one container run one after another. */
  private readonly saves = new Map<string, Promise<void>>();

  constructor(
    private readonly root: string,
    private readonly graph: GraphDriver,
    private readonly exec: ExecDriver,
    private readonly images: ImageService,
    private readonly log: Logger,
    /** Absent in minimal builds: containers then get "none" (the default) or "host" networking only. */
    private readonly networks: NetworkService | undefined,
    /** Absent in minimal builds: containers then get no mounts beyond the rootfs. */
    private readonly volumes: VolumeService | undefined,
  ) {}

  /** Loads every config.v2.json; containers that ran under an earlier daemon are marked exited (255). */
  async restore(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o710 });
    for (const id of await readdir(this.root)) {
      let record: ContainerRecord;
      try {
        record = JSON.parse(await readFile(join(this.root, id, 'config.v2.json'), 'utf8')) as ContainerRecord;
      } catch (err) {
        this.log.warn({ id, err: errorMessage(err) }, 'skipping a container whose config cannot be read');
        continue;
      }
      if (record.State.Running) {
        record.State = { ...record.State, Status: 'exited', Running: false, Pid: 0, ExitCode: 255, FinishedAt: new Date().toISOString() };
        await this.save(record);
      }
      this.entries.set(record.Id, new Entry(record));
      this.names.set(record.Name, record.Id);
    }
    for (const stale of await this.exec.listStale()) {
      if (this.entries.has(stale)) await this.exec.cleanupStale(stale).catch((err) => this.log.warn({ id: stale, err: errorMessage(err) }, 'stale cgroup cleanup failed'));
    }
    this.images.addUsageChecker(async (imageId) =>
      [...this.entries.values()].filter((e) => e.record.Image === imageId).map((e) => ({ kind: 'container', id: e.record.Id, running: e.process !== undefined })),
    );
  }

  all(): Array<{ record: ContainerRecord; running: boolean }> {
    return [...this.entries.values()].map((e) => ({ record: e.record, running: e.process !== undefined }));
  }

  get(ref: string): ContainerRecord {
    return this.lookup(ref).record;
  }

  inspect(ref: string): ContainerInspect {
    const record = this.lookup(ref).record;
    return inspectView(record, this.networks?.settings(record.Id), this.volumes?.mountPoints(record.Id));
  }

  summary(record: ContainerRecord): ContainerSummary {
    return summaryView(record, this.networks?.settings(record.Id), this.volumes?.mountPoints(record.Id));
  }

  get driverName(): string {
    return this.graph.name;
  }

  async create(requestedName: string | undefined, body: ContainerCreateBody): Promise<{ Id: string; Warnings: string[] }> {
    if (!body || typeof body.Image !== 'string' || body.Image === '') throw invalid('config cannot be empty in order to create a container');
    const name = requestedName ? validateName(requestedName) : generateName((n) => this.names.has(n));
    const holder = this.names.get(name);
    if (holder) {
      throw conflict(`Conflict. The container name "${name}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`);
    }
    const image = await this.images.resolve(body.Image);
    const id = newContainerId();
    const config = mergeConfig(body, image.config.config ?? {}, id);
    config.Image = body.Image;
    const argv = commandOf(config);
    if (this.names.has(name)) throw conflict(`Conflict. The container name "${name}" is already in use by container "${this.names.get(name)}". You have to remove (or rename) that container to be able to reuse that name.`);
    this.names.set(name, id);
    const chainId = image.chain.length ? image.chain[image.chain.length - 1]! : null;
    try {
      await mkdir(join(this.root, id), { mode: 0o710 });
      if (chainId) await this.images.retainLayer(chainId, id);
      await this.graph.createReadWrite(id, image.topLayer);
      const host = body.HostConfig ?? {};
      const endpointsConfig = endpointsOf(body.NetworkingConfig);
      const draft = { Id: id, Name: name, Config: config, HostConfig: host, EndpointsConfig: endpointsConfig };
      if (this.networks) await this.networks.validate(this.sandboxRequest(draft));
      else if (!['', 'default', 'none', 'host'].includes(String(host.NetworkMode ?? ''))) throw notFound(`network ${String(host.NetworkMode)} not found`);
      if (this.volumes) {
        await this.volumes.prepare({
          containerId: id,
          hostConfig: host,
          volumesFrom: (Array.isArray(host.VolumesFrom) ? (host.VolumesFrom as string[]) : []).map((ref) => this.resolveVolumesFrom(ref)),
          imageVolumes: image.config.config?.Volumes ?? {},
        });
      }
      const record: ContainerRecord = {
        Id: id,
        Name: name,
        Created: new Date().toISOString(),
        Path: argv[0]!,
        Args: argv.slice(1),
        Image: image.id,
        ImageChainId: chainId,
        Config: config,
        HostConfig: host,
        EndpointsConfig: endpointsConfig,
        Driver: this.graph.name,
        State: initialState(),
      };
      await this.save(record);
      this.entries.set(id, new Entry(record));
    } catch (err) {
      this.names.delete(name);
      await this.volumes?.forget(id, true).catch(() => undefined);
      await this.networks?.forget(id).catch(() => undefined);
      await this.graph.remove(id).catch(() => undefined);
      await this.images.releaseLayers(id).catch(() => undefined);
      await rm(join(this.root, id), { recursive: true, force: true });
      throw err;
    }
    this.log.info({ id, name, image: image.id }, 'container created');
    return { Id: id, Warnings: [] };
  }

  async start(ref: string): Promise<void> {
    const entry = this.lookup(ref);
    if (entry.process || entry.starting) throw notModified('container already started');
    if (entry.removing) throw conflict(`container ${entry.record.Id} is marked for removal and cannot be started`);
    entry.starting = true;
    try {
      await this.launch(entry);
    } finally {
      entry.starting = false;
    }
  }

  private async launch(entry: Entry): Promise<void> {
    const record = entry.record;
    const { Config: config, HostConfig: host } = record;
    const argv = commandOf(config);
    const rootfs = await this.graph.get(record.Id);
    let attached: { network: ContainerSpec['network']; mounts: MountSpec[]; env: string[] };
    try {
      attached = await this.attachResources(record, rootfs);
    } catch (err) {
      await this.releaseResources(record.Id);
      await this.graph.put(record.Id).catch((e) => this.log.warn({ id: record.Id, err: errorMessage(e) }, 'put after a failed start'));
      throw err;
    }
    const consoleSize = host.ConsoleSize && host.ConsoleSize[0] > 0 && host.ConsoleSize[1] > 0 ? { rows: host.ConsoleSize[0], cols: host.ConsoleSize[1] } : undefined;
    const spec: ContainerSpec = {
      id: record.Id,
      rootfs,
      process: {
        args: argv,
        env: [...processEnv(config), ...attached.env],
        cwd: config.WorkingDir || '/',
        user: config.User ?? '',
        terminal: config.Tty === true,
        ...(consoleSize ? { consoleSize } : {}),
      },
      hostname: config.Hostname || record.Id.slice(0, 12),
      ...(config.Domainname ? { domainname: config.Domainname } : {}),
      readonlyRootfs: host.ReadonlyRootfs === true,
      privileged: host.Privileged === true,
      capAdd: host.CapAdd ?? [],
      capDrop: host.CapDrop ?? [],
      noNewPrivileges: false,
      mounts: attached.mounts,
      network: attached.network,
      resources: {},
    };
    let proc: ContainerProcess;
    try {
      proc = await this.exec.start(spec, { stdin: config.OpenStdin === true });
    } catch (err) {
      await this.releaseResources(record.Id);
      await this.graph.put(record.Id).catch((e) => this.log.warn({ id: record.Id, err: errorMessage(e) }, 'put after a failed start'));
      const exitCode = err instanceof ContainerStartError ? err.exitCode : 125;
      const message = startFailureMessage(err);
      record.State = { ...record.State, Running: false, Pid: 0, ExitCode: exitCode, Error: message, FinishedAt: new Date().toISOString() };
      await this.save(record).catch((e) => this.log.error({ id: record.Id, err: errorMessage(e) }, 'saving state failed'));
      this.endAttachments(entry);
      this.notify(entry.exitWaiters, exitCode);
      if (host.AutoRemove) void this.removeEntry(entry).catch((e) => this.log.error({ id: record.Id, err: errorMessage(e) }, 'auto-remove failed'));
      throw exitCode === 125 ? systemError(message, err) : invalid(message, err);
    }

    entry.process = proc;
    proc.stdout.on('data', (chunk: Buffer) => {
      for (const a of entry.attachments) writeIfOpen(a.streams.stdout, chunk);
    });
    proc.stderr?.on('data', (chunk: Buffer) => {
      for (const a of entry.attachments) writeIfOpen(a.streams.stderr, chunk);
    });
    proc.stdin?.on('error', () => undefined);
    const withStdin = [...entry.attachments].find((a) => a.streams.stdin);
    if (withStdin) this.connectStdin(entry, withStdin);
    record.State = {
      ...record.State,
      Status: 'running',
      Running: true,
      Pid: proc.pid,
      ExitCode: 0,
      Error: '',
      OOMKilled: false,
      StartedAt: new Date().toISOString(),
      FinishedAt: '0001-01-01T00:00:00Z',
    };
    entry.exitDone = proc.exited.then((status) => this.handleExit(entry, status));
    await this.save(record);
    this.log.info({ id: record.Id, pid: proc.pid }, 'container started');
  }

  private connectStdin(entry: Entry, attachment: Attachment): void {
    const target = entry.process?.stdin;
    const source = attachment.streams.stdin;
    if (!target || !source) return;
    source.pipe(target, { end: entry.record.Config.StdinOnce === true });
  }

  /** Never rejects: the exit is recorded as well as it can be and every waiter is released. */
  private async handleExit(entry: Entry, status: ExitStatus): Promise<void> {
    const record = entry.record;
    entry.process = undefined;
    await this.exec.destroy(record.Id).catch((err) => this.log.warn({ id: record.Id, err: errorMessage(err) }, 'exec driver destroy failed'));
    await this.releaseResources(record.Id);
    await this.graph.put(record.Id).catch((err) => this.log.warn({ id: record.Id, err: errorMessage(err) }, 'unmounting the rootfs failed'));
    record.State = {
      ...record.State,
      Status: 'exited',
      Running: false,
      Pid: 0,
      ExitCode: status.exitCode,
      OOMKilled: status.oomKilled,
      FinishedAt: new Date().toISOString(),
    };
    await this.save(record).catch((err) => this.log.error({ id: record.Id, err: errorMessage(err) }, 'saving state failed'));
    this.log.info({ id: record.Id, exitCode: status.exitCode }, 'container exited');
    this.endAttachments(entry);
    this.notify(entry.exitWaiters, status.exitCode);
    if (record.HostConfig.AutoRemove) void this.removeEntry(entry).catch((err) => this.log.error({ id: record.Id, err: errorMessage(err) }, 'auto-remove failed'));
  }

  private endAttachments(entry: Entry): void {
    for (const a of entry.attachments) a.finish();
    entry.attachments.clear();
  }

  private notify(waiters: Set<Waiter>, exitCode: number): void {
    for (const w of waiters) w(exitCode);
    waiters.clear();
  }

  async wait(ref: string, condition: WaitCondition, signal: AbortSignal): Promise<WaitResult> {
    const entry = this.lookup(ref);
    if (condition === 'not-running' && !entry.process && !entry.starting) return { StatusCode: entry.record.State.ExitCode, Error: null };
    const waiters = condition === 'removed' ? entry.removeWaiters : entry.exitWaiters;
    return new Promise<WaitResult>((resolve, reject) => {
      const onAbort = () => {
        waiters.delete(waiter);
        reject(signal.reason);
      };
      const waiter: Waiter = (exitCode) => {
        signal.removeEventListener('abort', onAbort);
        resolve({ StatusCode: exitCode, Error: null });
      };
      if (signal.aborted) return reject(signal.reason);
      waiters.add(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Streams output of the current run (or the next one) into `streams` until the process exits. */
  async attach(ref: string, streams: AttachStreams, signal: AbortSignal): Promise<void> {
    const entry = this.lookup(ref);
    const outputs = [...new Set([streams.stdout, streams.stderr].filter((w): w is Writable => w !== undefined))];
    for (const w of outputs) w.on('error', () => undefined);
    let finish!: () => void;
    const done = new Promise<void>((resolve) => (finish = resolve));
    const attachment: Attachment = { streams, finish };
    entry.attachments.add(attachment);
    if (entry.process && streams.stdin) this.connectStdin(entry, attachment);
    const onAbort = () => {
      entry.attachments.delete(attachment);
      finish();
    };
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    await done;
    signal.removeEventListener('abort', onAbort);
    if (streams.stdin && entry.process?.stdin) streams.stdin.unpipe(entry.process.stdin);
    await Promise.all(
      outputs.map(async (w) => {
        if (w.destroyed) return;
        w.end();
        await finished(w).catch(() => undefined);
      }),
    );
  }

  async kill(ref: string, signal: string | undefined): Promise<void> {
    const entry = this.lookup(ref);
    if (!entry.process) throw conflict(`Cannot kill container: ${ref}: Container ${entry.record.Id} is not running`);
    await this.exec.kill(entry.record.Id, signal && signal !== '' ? signal : 'SIGKILL');
  }

  async stop(ref: string, timeout: number | undefined): Promise<void> {
    const entry = this.lookup(ref);
    const exitDone = entry.exitDone;
    if (!entry.process || !exitDone) throw notModified('container already stopped');
    const id = entry.record.Id;
    await this.exec.kill(id, entry.record.Config.StopSignal || 'SIGTERM').catch(() => undefined);
    const seconds = timeout ?? (typeof entry.record.Config.StopTimeout === 'number' ? entry.record.Config.StopTimeout : STOP_TIMEOUT_SECONDS);
    if (seconds >= 0) {
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), seconds * 1000)));
      const timedOut = await Promise.race([exitDone.then(() => false), expired]);
      clearTimeout(timer);
      if (timedOut) await this.exec.kill(id, 'SIGKILL').catch(() => undefined);
    }
    await exitDone;
  }

  async remove(ref: string, force: boolean, removeVolumes = false): Promise<void> {
    const entry = this.lookup(ref);
    if (entry.removing) return entry.removing;
    if ((entry.process || entry.starting) && !force) {
      throw conflict(`cannot remove container "${entry.record.Name}": container is running: stop the container before removing or force remove`);
    }
    return this.removeEntry(entry, removeVolumes);
  }

  private removeEntry(entry: Entry, removeVolumes = false): Promise<void> {
    if (entry.removing) return entry.removing;
    const id = entry.record.Id;
    entry.removing = (async () => {
      if (entry.process) {
        await this.exec.kill(id, 'SIGKILL').catch(() => undefined);
        await entry.exitDone;
      }
      await this.networks?.forget(id);
      // Docker removes the anonymous volumes of --rm containers too.
      await this.volumes?.forget(id, removeVolumes || entry.record.HostConfig.AutoRemove === true);
      await this.graph.remove(id);
      await this.images.releaseLayers(id);
      await this.saves.get(id)?.catch(() => undefined);
      await rm(join(this.root, id), { recursive: true, force: true });
      this.entries.delete(id);
      if (this.names.get(entry.record.Name) === id) this.names.delete(entry.record.Name);
      this.log.info({ id }, 'container removed');
      this.notify(entry.removeWaiters, entry.record.State.ExitCode);
    })();
    entry.removing.catch(() => (entry.removing = undefined));
    return entry.removing;
  }

  /** Kills every running container and waits until each exit (and auto-removal) has been handled. */
  async shutdown(): Promise<void> {
    const running = [...this.entries.values()].filter((e) => e.process);
    await Promise.all(running.map((e) => this.exec.kill(e.record.Id, 'SIGKILL').catch(() => undefined)));
    await Promise.all(running.map((e) => e.exitDone));
    await Promise.all([...this.entries.values()].map((e) => e.removing?.catch(() => undefined)));
  }

  private lookup(ref: string): Entry {
    const exact = this.entries.get(ref);
    if (exact) return exact;
    const byName = this.names.get(ref.startsWith('/') ? ref : `/${ref}`);
    if (byName) return this.entries.get(byName)!;
    if (/^[a-f0-9]+$/.test(ref)) {
      const matches = [...this.entries.keys()].filter((id) => id.startsWith(ref));
      if (matches.length === 1) return this.entries.get(matches[0]!)!;
      if (matches.length > 1) throw invalid(`Multiple IDs found with provided prefix: ${ref}`);
    }
    throw notFound(`No such container: ${ref}`);
  }

  /** Network sandbox and mounts for a start; without the services, the built-in none/host modes. */
  private async attachResources(record: ContainerRecord, rootfs: string): Promise<{ network: ContainerSpec['network']; mounts: MountSpec[]; env: string[] }> {
    const mounts: MountSpec[] = [];
    let network: ContainerSpec['network'] = { mode: networkModeOf(record.HostConfig) };
    const env: string[] = [];
    if (this.networks) {
      const sandbox = await this.networks.setUp(this.sandboxRequest(record));
      network = sandbox.network;
      env.push(...sandbox.env);
      mounts.push(
        { type: 'bind', source: sandbox.files.resolvConf, destination: '/etc/resolv.conf', options: ['nosuid', 'nodev', 'noexec'] },
        { type: 'bind', source: sandbox.files.hostname, destination: '/etc/hostname', options: ['nosuid', 'nodev', 'noexec'] },
        { type: 'bind', source: sandbox.files.hosts, destination: '/etc/hosts', options: ['nosuid', 'nodev', 'noexec'] },
      );
    }
    if (this.volumes) mounts.push(...(await this.volumes.mounts(record.Id, rootfs)));
    return { network, mounts, env };
  }

  /** Never rejects: undoes attachResources as far as it got. */
  private async releaseResources(id: string): Promise<void> {
    await this.volumes?.release(id).catch((err) => this.log.warn({ id, err: errorMessage(err) }, 'releasing mounts failed'));
    await this.networks?.tearDown(id).catch((err) => this.log.warn({ id, err: errorMessage(err) }, 'network tear-down failed'));
  }

  private sandboxRequest(record: Pick<ContainerRecord, 'Id' | 'Name' | 'Config' | 'HostConfig' | 'EndpointsConfig'>): SandboxRequest {
    const host = record.HostConfig;
    let networkMode = String(host.NetworkMode ?? '');
    if (networkMode.startsWith('container:')) {
      const other = this.lookup(networkMode.slice('container:'.length));
      if (!other.process) throw conflict(`cannot join network of a non running container: ${other.record.Id}`);
      networkMode = `container:${other.record.Id}`;
    }
    return {
      containerId: record.Id,
      name: record.Name.replace(/^\//, ''),
      hostname: record.Config.Hostname || record.Id.slice(0, 12),
      ...(record.Config.Domainname ? { domainname: record.Config.Domainname } : {}),
      networkMode,
      endpoints: record.EndpointsConfig ?? {},
      hostConfig: host,
      exposedPorts: record.Config.ExposedPorts ?? {},
      stateDir: join(this.root, record.Id),
    };
  }

  /** "name[:ro|rw]" → "fullId[:mode]". */
  private resolveVolumesFrom(ref: string): string {
    const [container, mode] = ref.split(':');
    const id = this.lookup(container ?? '').record.Id;
    return mode ? `${id}:${mode}` : id;
  }

  /**
   * Queued behind the container's previous write and serialised when its turn comes, so a quick
   * exit's state can never be overwritten by the slower write of the start that preceded it.
   */
  private save(record: ContainerRecord): Promise<void> {
    const previous = this.saves.get(record.Id) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(() => writeJsonAtomic(join(this.root, record.Id, 'config.v2.json'), record));
    this.saves.set(record.Id, next);
    const forget = () => {
      if (this.saves.get(record.Id) === next) this.saves.delete(record.Id);
    };
    next.then(forget, forget);
    return next;
  }
}

function endpointsOf(networking: unknown): Record<string, EndpointSettings> {
  const endpoints = (networking as { EndpointsConfig?: unknown } | null | undefined)?.EndpointsConfig;
  return endpoints && typeof endpoints === 'object' ? (endpoints as Record<string, EndpointSettings>) : {};
}

function writeIfOpen(stream: Writable | undefined, chunk: Buffer): void {
  if (stream && !stream.writableEnded && !stream.destroyed) stream.write(chunk);
}
