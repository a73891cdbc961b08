import { mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { constants as osConstants } from 'node:os';
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
  type ContainerListFilters,
  type ContainerLogsOptions,
  type ContainerTop,
  type EndpointSettings,
  type EventBus,
  type ExecDriver,
  type ExitStatus,
  type GraphDriver,
  type HostConfig,
  type ImageService,
  type LogDriver,
  type LogWriter,
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
import { commandOf, generateName, mergeConfig, mergeEnv, networkModeOf, newContainerId, processEnv, validateName } from './config.js';
import { noNewPrivileges, resourcesOf, validateHostConfig } from './resources.js';
import { nextBackoff, restartsWithDaemon, shouldRestart } from './restart.js';
import { statsJson, topView } from './runtime-views.js';
import { listFilterOf } from './filters.js';
import { ExecSessions } from './exec-sessions.js';

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
  RestartCount?: number;
  /** Set by stop/kill, cleared by start: restart policies and the daemon's start leave such a container alone. */
  HasBeenManuallyStopped?: boolean;
}

/** What the manager uses besides the graph, exec driver and images; every part optional. */
export interface ContainerManagerExtras {
  /** Log drivers by name (HostConfig.LogConfig.Type); without them no output is kept. */
  logDrivers?: { get(name: string): LogDriver; has(name: string): boolean; defaultName?: string };
  events?: EventBus;
  /** Image size in bytes, for ps --size. */
  imageSize?: (imageId: string) => Promise<number>;
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
  log: LogWriter | undefined;
  /** Set while a restart policy waits out its back-off. */
  restartTimer: NodeJS.Timeout | undefined;
  backoffMs = 0;
  /** The start in progress (by the user or a restart policy). */
  launching: Promise<void> | undefined;
  /** The stop/kill in progress asked the container to stay down. */
  stopping = false;
  readonly execIds = new Set<string>();
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
  private shuttingDown = false;
  readonly execs: ExecSessions;

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
    private readonly extras: ContainerManagerExtras = {},
  ) {
    this.execs = new ExecSessions(exec, log, (ref) => this.runningEntry(ref), (entry, action, attrs) => this.emit(entry.record, action, attrs));
  }

  /** Loads every config.v2.json; containers that ran under an earlier daemon are marked exited (255). */
  async restore(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o710 });
    const autoRemove: Entry[] = [];
    for (const id of await readdir(this.root)) {
      let record: ContainerRecord;
      try {
        record = JSON.parse(await readFile(join(this.root, id, 'config.v2.json'), 'utf8')) as ContainerRecord;
      } catch (err) {
        this.log.warn({ id, err: errorMessage(err) }, 'skipping a container whose config cannot be read');
        continue;
      }
      if (record.State.Running || record.State.Restarting) {
        record.State = { ...record.State, Status: 'exited', Running: false, Paused: false, Restarting: false, Pid: 0, ExitCode: 255, FinishedAt: new Date().toISOString() };
        await this.save(record);
      }
      const entry = new Entry(record);
      this.entries.set(record.Id, entry);
      this.names.set(record.Name, record.Id);
      if (record.HostConfig.AutoRemove) autoRemove.push(entry);
    }
    for (const stale of await this.exec.listStale()) {
      if (this.entries.has(stale)) await this.exec.cleanupStale(stale).catch((err) => this.log.warn({ id: stale, err: errorMessage(err) }, 'stale cgroup cleanup failed'));
    }
    // As docker does: a --rm container that outlived its run (the daemon died first) is removed now.
    for (const entry of autoRemove) await this.removeEntry(entry).catch((err) => this.log.warn({ id: entry.record.Id, err: errorMessage(err) }, 'auto-remove at restore failed'));
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
    const entry = this.lookup(ref);
    const record = entry.record;
    return inspectView(record, this.networks?.settings(record.Id), this.volumes?.mountPoints(record.Id), { logPath: this.logDriverOf(record)?.path(record.Id) ?? '', execIds: [...entry.execIds] });
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
    validateHostConfig(body.HostConfig ?? {});
    const logType = body.HostConfig?.LogConfig?.Type || this.extras.logDrivers?.defaultName || 'none';
    if (logType !== 'none' && !this.extras.logDrivers?.has(logType)) throw invalid(`failed to create task for container: logger: no log driver named '${logType}' is registered`);
    if (logType !== 'none') this.extras.logDrivers?.get(logType).validateOptions?.(body.HostConfig?.LogConfig?.Config ?? {});
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
      const host: HostConfig = { ...(body.HostConfig ?? {}), LogConfig: { Type: logType, Config: body.HostConfig?.LogConfig?.Config ?? {} }, RestartPolicy: { Name: body.HostConfig?.RestartPolicy?.Name || 'no', MaximumRetryCount: body.HostConfig?.RestartPolicy?.MaximumRetryCount ?? 0 } };
      const endpointsConfig = endpointsOf(body.NetworkingConfig);
      const draft = { Id: id, Name: name, Config: config, HostConfig: host, EndpointsConfig: endpointsConfig };
      if (!this.networks && !['', 'default', 'none', 'host'].includes(String(host.NetworkMode ?? ''))) throw invalid(`network ${String(host.NetworkMode)} not found: no network plugin is loaded`);
      const volumesFrom = (Array.isArray(host.VolumesFrom) ? (host.VolumesFrom as string[]) : []).map((ref) => this.resolveVolumesFrom(ref));
      // Independent of each other; all have settled before a failure is undone below.
      const steps = await Promise.allSettled([
        this.graph.createReadWrite(id, image.topLayer),
        this.networks?.validate(this.sandboxRequest(draft)),
        this.volumes?.prepare({ containerId: id, hostConfig: host, volumesFrom, imageVolumes: { ...(image.config.config?.Volumes ?? {}), ...(config.Volumes ?? {}) } }),
      ]);
      const failed = steps.find((step): step is PromiseRejectedResult => step.status === 'rejected');
      if (failed) throw failed.reason;
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
    this.emit(this.entries.get(id)!.record, 'create');
    return { Id: id, Warnings: [] };
  }

  async start(ref: string): Promise<void> {
    const entry = this.lookup(ref);
    if (entry.process || entry.starting) throw notModified('container already started');
    if (entry.removing) throw conflict(`container ${entry.record.Id} is marked for removal and cannot be started`);
    this.cancelRestart(entry);
    entry.backoffMs = 0;
    entry.starting = true;
    entry.launching = this.launch(entry);
    try {
      await entry.launching;
    } finally {
      entry.starting = false;
      entry.launching = undefined;
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
      await this.recordFailedStart(entry, 125, errorMessage(err));
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
        ...(Array.isArray(host.GroupAdd) && host.GroupAdd.length ? { additionalGroups: host.GroupAdd } : {}),
        terminal: config.Tty === true,
        ...(consoleSize ? { consoleSize } : {}),
      },
      hostname: config.Hostname || record.Id.slice(0, 12),
      ...(config.Domainname ? { domainname: config.Domainname } : {}),
      readonlyRootfs: host.ReadonlyRootfs === true,
      privileged: host.Privileged === true,
      capAdd: host.CapAdd ?? [],
      capDrop: host.CapDrop ?? [],
      noNewPrivileges: noNewPrivileges(host),
      mounts: attached.mounts,
      network: attached.network,
      resources: resourcesOf(host),
      ...((host.ShmSize ?? 0) > 0 ? { shmSize: host.ShmSize! } : {}),
    };
    entry.stopping = false;
    let proc: ContainerProcess;
    try {
      proc = await this.exec.start(spec, { stdin: config.OpenStdin === true });
    } catch (err) {
      const exitCode = err instanceof ContainerStartError ? err.exitCode : 125;
      const message = startFailureMessage(err);
      await this.recordFailedStart(entry, exitCode, message);
      throw exitCode === 125 ? systemError(message, err) : invalid(message, err);
    }

    entry.process = proc;
    const logDriver = this.logDriverOf(record);
    try {
      entry.log = logDriver?.open(record.Id, record.HostConfig.LogConfig?.Config);
    } catch (err) {
      this.log.warn({ id: record.Id, err: errorMessage(err) }, 'opening the container log failed; output is not kept');
    }
    proc.stdout.on('data', (chunk: Buffer) => {
      entry.log?.write('stdout', chunk);
      for (const a of entry.attachments) writeIfOpen(a.streams.stdout, chunk);
    });
    proc.stderr?.on('data', (chunk: Buffer) => {
      entry.log?.write('stderr', chunk);
      for (const a of entry.attachments) writeIfOpen(a.streams.stderr, chunk);
    });
    proc.stdin?.on('error', () => undefined);
    const withStdin = [...entry.attachments].find((a) => a.streams.stdin);
    if (withStdin) this.connectStdin(entry, withStdin);
    record.State = {
      ...record.State,
      Status: 'running',
      Running: true,
      Paused: false,
      Restarting: false,
      Pid: proc.pid,
      ExitCode: 0,
      Error: '',
      OOMKilled: false,
      StartedAt: new Date().toISOString(),
      FinishedAt: '0001-01-01T00:00:00Z',
    };
    record.HasBeenManuallyStopped = false;
    entry.exitDone = proc.exited.then((status) => this.handleExit(entry, status));
    const saved = this.save(record);
    // A --rm container's start answers without waiting for the write (an fsync'd write took 2–12
    // ms of it): whichever state a daemon dying meanwhile leaves on disk, restore removes the
    // container. Others keep docker's order, running on disk before the start returns.
    if (record.HostConfig.AutoRemove) void saved.catch((err) => this.log.error({ id: record.Id, err: errorMessage(err) }, 'saving state failed'));
    else await saved;
    this.log.info({ id: record.Id, pid: proc.pid }, 'container started');
    this.emit(record, 'start');
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
    entry.log?.close();
    entry.log = undefined;
    this.execs.containerExited(entry.execIds);
    entry.execIds.clear();
    await this.exec.destroy(record.Id).catch((err) => this.log.warn({ id: record.Id, err: errorMessage(err) }, 'exec driver destroy failed'));
    await this.releaseResources(record.Id);
    await this.graph.put(record.Id).catch((err) => this.log.warn({ id: record.Id, err: errorMessage(err) }, 'unmounting the rootfs failed'));
    record.State = {
      ...record.State,
      Status: 'exited',
      Running: false,
      Paused: false,
      Pid: 0,
      ExitCode: status.exitCode,
      OOMKilled: status.oomKilled,
      FinishedAt: new Date().toISOString(),
    };
    if (entry.stopping) record.HasBeenManuallyStopped = true;
    const restart = !this.shuttingDown && !entry.removing && !record.HostConfig.AutoRemove && shouldRestart(record.HostConfig, status.exitCode, record.RestartCount ?? 0, record.HasBeenManuallyStopped === true);
    if (restart) record.State = { ...record.State, Status: 'restarting', Restarting: true };
    // A --rm container is removed next: its exit need not reach the disk first, as a daemon that
    // dies before the removal finds it "running", marks it exited and removes it on restore.
    const removeNext = record.HostConfig.AutoRemove === true && !restart;
    if (!removeNext) await this.save(record).catch((err) => this.log.error({ id: record.Id, err: errorMessage(err) }, 'saving state failed'));
    this.log.info({ id: record.Id, exitCode: status.exitCode }, 'container exited');
    if (status.oomKilled) this.emit(record, 'oom');
    this.emit(record, 'die', { exitCode: String(status.exitCode) });
    this.endAttachments(entry);
    this.notify(entry.exitWaiters, status.exitCode);
    if (restart) this.scheduleRestart(entry);
    if (removeNext) void this.removeEntry(entry).catch((err) => this.log.error({ id: record.Id, err: errorMessage(err) }, 'auto-remove failed'));
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
    this.emit(entry.record, 'attach');
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
    await entry.launching?.catch(() => undefined);
    if (!entry.process && entry.restartTimer) throw conflict(`Cannot kill container: ${ref}: Container ${entry.record.Id} is restarting, wait until the container is running`);
    if (!entry.process) throw conflict(`Cannot kill container: ${ref}: Container ${entry.record.Id} is not running`);
    const sig = signal && signal !== '' ? signal : 'SIGKILL';
    const number = signalNumber(sig);
    if (number === undefined) throw invalid(`Invalid signal: ${sig}`);
    // Docker's rule: any signal sent by the user counts as a manual stop for the restart policy.
    entry.stopping = true;
    await this.exec.kill(entry.record.Id, sig);
    this.emit(entry.record, 'kill', { signal: String(number) });
    if (entry.record.State.Paused) await this.resumeQuietly(entry);
  }

  async stop(ref: string, timeout: number | undefined): Promise<void> {
    const entry = this.lookup(ref);
    // A start under way (a restart policy's) finishes first, so the stop cannot miss the process.
    await entry.launching?.catch(() => undefined);
    if (!entry.process && entry.restartTimer) {
      this.cancelRestart(entry);
      entry.record.HasBeenManuallyStopped = true;
      entry.record.State = { ...entry.record.State, Status: 'exited', Restarting: false };
      await this.save(entry.record);
      this.emit(entry.record, 'stop');
      return;
    }
    const exitDone = entry.exitDone;
    if (!entry.process || !exitDone) throw notModified('container already stopped');
    const id = entry.record.Id;
    entry.stopping = true;
    const stopSignal = entry.record.Config.StopSignal || 'SIGTERM';
    await this.exec.kill(id, stopSignal).catch(() => undefined);
    this.emit(entry.record, 'kill', { signal: String(signalNumber(stopSignal) ?? stopSignal) });
    if (entry.record.State.Paused) await this.resumeQuietly(entry);
    const seconds = timeout ?? (typeof entry.record.Config.StopTimeout === 'number' ? entry.record.Config.StopTimeout : STOP_TIMEOUT_SECONDS);
    if (seconds >= 0) {
      let timer: NodeJS.Timeout | undefined;
      const expired = new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(true), seconds * 1000)));
      const timedOut = await Promise.race([exitDone.then(() => false), expired]);
      clearTimeout(timer);
      if (timedOut) {
        await this.exec.kill(id, 'SIGKILL').catch(() => undefined);
        this.emit(entry.record, 'kill', { signal: '9' });
      }
    }
    await exitDone;
    this.emit(entry.record, 'stop');
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
    this.cancelRestart(entry);
    entry.removing = (async () => {
      await entry.launching?.catch(() => undefined);
      if (entry.process) {
        await this.forceKill(entry);
        await entry.exitDone;
      }
      // Independent of each other; the record goes last, so a crash midway leaves it to retry.
      const steps = await Promise.allSettled([
        this.networks?.forget(id),
        // Docker removes the anonymous volumes of --rm containers too.
        this.volumes?.forget(id, removeVolumes || entry.record.HostConfig.AutoRemove === true),
        this.graph.remove(id),
        this.logDriverOf(entry.record)?.remove(id).catch(() => undefined),
        this.saves.get(id)?.catch(() => undefined),
      ]);
      const failed = steps.find((step): step is PromiseRejectedResult => step.status === 'rejected');
      if (failed) throw failed.reason;
      await this.images.releaseLayers(id);
      this.execs.forget(id);
      await rm(join(this.root, id), { recursive: true, force: true });
      this.entries.delete(id);
      if (this.names.get(entry.record.Name) === id) this.names.delete(entry.record.Name);
      this.log.info({ id }, 'container removed');
      this.emit(entry.record, 'destroy');
      this.notify(entry.removeWaiters, entry.record.State.ExitCode);
    })();
    entry.removing.catch(() => (entry.removing = undefined));
    return entry.removing;
  }

  /** Kills every running container and waits until each exit (and auto-removal) has been handled. */
  async shutdown(): Promise<void> {
    this.shuttingDown = true;
    for (const entry of this.entries.values()) this.cancelRestart(entry);
    await Promise.all([...this.entries.values()].map((e) => e.launching?.catch(() => undefined)));
    const running = [...this.entries.values()].filter((e) => e.process);
    await Promise.all(running.map((e) => this.forceKill(e)));
    await Promise.all(running.map((e) => e.exitDone));
    await Promise.all([...this.entries.values()].map((e) => e.removing?.catch(() => undefined)));
  }

  // -------------------------------------------------------------------------------------------
  // Runtime operations beyond the first slice

  /** Publishes a container event with Docker's attributes (image, name, labels, then `extra`). */
  emit(record: ContainerRecord, action: string, extra: Record<string, string> = {}): void {
    const bus = this.extras.events;
    if (!bus) return;
    const attributes: Record<string, string> = { ...(record.Config.Labels ?? {}), image: String(record.Config.Image ?? record.Image), name: record.Name.replace(/^\//, ''), ...extra };
    bus.publish({ Type: 'container', Action: action, Actor: { ID: record.Id, Attributes: attributes } });
  }

  private logDriverOf(record: ContainerRecord): LogDriver | undefined {
    const type = record.HostConfig.LogConfig?.Type;
    const drivers = this.extras.logDrivers;
    if (!drivers || !type || type === 'none' || !drivers.has(type)) return undefined;
    return drivers.get(type);
  }

  private cancelRestart(entry: Entry): void {
    if (entry.restartTimer) clearTimeout(entry.restartTimer);
    entry.restartTimer = undefined;
  }

  /** Runs the container again after Docker's back-off; a failed start is an exit like any other. */
  private scheduleRestart(entry: Entry): void {
    const record = entry.record;
    const ranFor = Date.parse(record.State.FinishedAt) - Date.parse(record.State.StartedAt);
    entry.backoffMs = nextBackoff(entry.backoffMs, ranFor);
    entry.restartTimer = setTimeout(() => {
      entry.restartTimer = undefined;
      if (entry.removing || entry.process || entry.starting || this.shuttingDown) return;
      record.RestartCount = (record.RestartCount ?? 0) + 1;
      entry.starting = true;
      entry.launching = this.launch(entry);
      entry.launching
        .catch((err) => {
          this.log.warn({ id: record.Id, err: errorMessage(err) }, 'restart by policy failed');
          if (!this.shuttingDown && shouldRestart(record.HostConfig, record.State.ExitCode, record.RestartCount ?? 0, record.HasBeenManuallyStopped === true)) {
            record.State = { ...record.State, Status: 'restarting', Restarting: true };
            this.scheduleRestart(entry);
          } else {
            record.State = { ...record.State, Status: 'exited', Restarting: false };
          }
          return this.save(record);
        })
        .catch((err) => this.log.error({ id: record.Id, err: errorMessage(err) }, 'saving state failed'))
        .finally(() => {
          entry.starting = false;
          entry.launching = undefined;
        });
    }, entry.backoffMs);
  }

  /** Starts what Docker starts with the daemon: always / unless-stopped containers nobody stopped. */
  async autoStart(): Promise<void> {
    for (const entry of this.entries.values()) {
      const record = entry.record;
      const hasRun = record.State.StartedAt !== '0001-01-01T00:00:00Z';
      if (!restartsWithDaemon(record.HostConfig, hasRun, record.HasBeenManuallyStopped === true) || entry.process || entry.starting) continue;
      await this.start(record.Id).catch((err) => this.log.warn({ id: record.Id, err: errorMessage(err) }, 'starting a container with a restart policy failed'));
    }
  }

  /** SIGKILL, thawing a paused container so that the signal lands. */
  private async forceKill(entry: Entry): Promise<void> {
    await this.exec.kill(entry.record.Id, 'SIGKILL').catch(() => undefined);
    if (entry.record.State.Paused) await this.resumeQuietly(entry);
  }

  private async resumeQuietly(entry: Entry): Promise<void> {
    await this.exec.resume(entry.record.Id).catch(() => undefined);
    entry.record.State = { ...entry.record.State, Paused: false, Status: entry.process ? 'running' : entry.record.State.Status };
  }

  /** The running container behind `ref`, for exec sessions. */
  runningEntry(ref: string): { id: string; record: ContainerRecord; execIds: Set<string> } {
    const entry = this.lookup(ref);
    if (!entry.process) throw conflict(`Container ${entry.record.Id} is not running`);
    if (entry.record.State.Paused) throw conflict(`Container ${entry.record.Id} is paused, unpause the container before exec`);
    return { id: entry.record.Id, record: entry.record, execIds: entry.execIds };
  }

  async list(options: { all?: boolean; filters?: ContainerListFilters; size?: boolean; limit?: number }): Promise<ContainerSummary[]> {
    const filters = options.filters ?? {};
    const matches = await listFilterOf(filters, (ref) => this.images.resolve(ref).then((i) => i.id).catch(() => undefined), (ref) => this.lookup(ref).record, (record) => this.summary(record));
    const all = options.all || (filters.status?.length ?? 0) > 0 || (filters.exited?.length ?? 0) > 0 || (options.limit ?? 0) > 0;
    let entries = [...this.entries.values()]
      .filter((e) => all || e.process !== undefined)
      .filter((e) => matches(e.record))
      .sort((a, b) => b.record.Created.localeCompare(a.record.Created));
    if ((options.limit ?? 0) > 0) entries = entries.slice(0, options.limit);
    return Promise.all(
      entries.map(async (e) => {
        const summary = this.summary(e.record);
        if (options.size) {
          const image = await this.images.resolve(e.record.Image).catch(() => undefined);
          summary.SizeRw = await this.graph.diffSize(e.record.Id, image?.topLayer ?? null).catch(() => 0);
          summary.SizeRootFs = summary.SizeRw + ((await this.extras.imageSize?.(e.record.Image).catch(() => 0)) ?? 0);
        }
        return summary;
      }),
    );
  }

  async logs(ref: string, options: ContainerLogsOptions, streams: AttachStreams, signal: AbortSignal): Promise<void> {
    const entry = this.lookup(ref);
    const driver = this.logDriverOf(entry.record);
    if (!driver) throw invalid('configured logging driver does not support reading');
    const tty = entry.record.Config.Tty === true;
    const outputs = [...new Set([streams.stdout, streams.stderr].filter((w): w is Writable => w !== undefined))];
    for (const w of outputs) w.on('error', () => undefined);
    try {
      for await (const e of driver.read(entry.record.Id, { follow: options.follow === true, ...(options.tail !== undefined ? { tail: options.tail } : {}), ...(options.since !== undefined ? { since: options.since } : {}), ...(options.until !== undefined ? { until: options.until } : {}), signal })) {
        if (e.stream === 'stdout' ? !options.stdout : !options.stderr) continue;
        const target = tty || e.stream === 'stdout' ? streams.stdout : streams.stderr;
        if (!target || target.destroyed) continue;
        const payload = options.timestamps ? Buffer.concat([Buffer.from(`${e.time} `), e.line]) : e.line;
        if (!target.write(payload)) await new Promise<void>((resolve) => target.once('drain', resolve).once('close', resolve));
      }
    } finally {
      await Promise.all(
        outputs.map(async (w) => {
          if (w.destroyed) return;
          w.end();
          await finished(w).catch(() => undefined);
        }),
      );
    }
  }

  async restart(ref: string, timeout: number | undefined): Promise<void> {
    const entry = this.lookup(ref);
    if (entry.process || entry.restartTimer) await this.stop(entry.record.Id, timeout).catch((err) => {
      if (!(err instanceof Error && (err as { kind?: string }).kind === 'notmodified')) throw err;
    });
    await this.start(entry.record.Id).catch((err) => {
      if (!(err instanceof Error && (err as { kind?: string }).kind === 'notmodified')) throw err;
    });
    this.emit(entry.record, 'restart');
  }

  async rename(ref: string, newName: string): Promise<void> {
    const entry = this.lookup(ref);
    if (!newName) throw invalid('Neither old nor new names may be empty');
    const name = validateName(newName);
    const old = entry.record.Name;
    if (name === old) throw invalid('Renaming a container with the same name as its current name');
    const holder = this.names.get(name);
    if (holder) throw conflict(`Conflict. The container name "${name}" is already in use by container "${holder}". You have to remove (or rename) that container to be able to reuse that name.`);
    this.names.set(name, entry.record.Id);
    this.names.delete(old);
    entry.record.Name = name;
    try {
      await this.save(entry.record);
    } catch (err) {
      entry.record.Name = old;
      this.names.set(old, entry.record.Id);
      this.names.delete(name);
      throw err;
    }
    this.emit(entry.record, 'rename', { oldName: old });
  }

  async pause(ref: string): Promise<void> {
    const entry = this.lookup(ref);
    if (!entry.process) throw conflict(`Container ${entry.record.Id} is not running`);
    if (entry.record.State.Paused) throw conflict(`Container ${entry.record.Id} is already paused`);
    await this.exec.pause(entry.record.Id);
    entry.record.State = { ...entry.record.State, Paused: true, Status: 'paused' };
    await this.save(entry.record);
    this.emit(entry.record, 'pause');
  }

  async unpause(ref: string): Promise<void> {
    const entry = this.lookup(ref);
    if (!entry.process || !entry.record.State.Paused) throw conflict(`Container ${entry.record.Id} is not paused`);
    await this.exec.resume(entry.record.Id);
    entry.record.State = { ...entry.record.State, Paused: false, Status: 'running' };
    await this.save(entry.record);
    this.emit(entry.record, 'unpause');
  }

  async top(ref: string, psArgs: string | undefined): Promise<ContainerTop> {
    const entry = this.lookup(ref);
    if (!entry.process) throw conflict(`Container ${entry.record.Id} is not running`);
    const processes = await this.exec.top(entry.record.Id);
    return topView(
      processes.map((p) => p.pid),
      psArgs,
    );
  }

  /** One StatsJSON after a second's sample (precpu filled), or one per second to `out` until it ends. */
  async stats(ref: string, stream: boolean, out: Writable | undefined, signal: AbortSignal): Promise<unknown> {
    const entry = this.lookup(ref);
    const { Id: id } = entry.record;
    const name = () => entry.record.Name;
    const sample = async () => (entry.process ? this.exec.stats(id).catch(() => undefined) : undefined);
    const tick = () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, 1000);
        signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
      });
    let previous = await sample();
    if (!stream) {
      if (previous) await tick();
      return statsJson(await sample(), previous, id, name());
    }
    while (!signal.aborted && out && !out.destroyed) {
      await tick();
      if (signal.aborted) break;
      const current = await sample();
      if (!out.write(JSON.stringify(statsJson(current, previous, id, name())) + '\n')) await new Promise<void>((resolve) => out.once('drain', resolve).once('close', resolve));
      previous = current;
      if (!entry.process && !this.entries.has(id)) break;
    }
    return undefined;
  }

  async resize(ref: string, height: number, width: number): Promise<void> {
    const entry = this.lookup(ref);
    if (!entry.process) throw conflict(`Container ${entry.record.Id} is not running`);
    if (height > 0 && width > 0) entry.process.resize?.(height, width);
    this.emit(entry.record, 'resize', { height: String(height), width: String(width) });
  }

  async prune(filters: ContainerListFilters): Promise<{ ContainersDeleted: string[]; SpaceReclaimed: number }> {
    // Docker's container prune takes only these; the list filters are refused as docker does.
    for (const key of Object.keys(filters)) if (!['label', 'label!', 'until'].includes(key)) throw invalid(`invalid filter '${key}'`);
    const matches = await listFilterOf(filters, async () => undefined, (ref) => this.lookup(ref).record);
    const deleted: string[] = [];
    let space = 0;
    for (const entry of [...this.entries.values()]) {
      if (entry.process || entry.starting || entry.restartTimer || entry.removing || !matches(entry.record)) continue;
      const image = await this.images.resolve(entry.record.Image).catch(() => undefined);
      const size = await this.graph.diffSize(entry.record.Id, image?.topLayer ?? null).catch(() => 0);
      try {
        await this.removeEntry(entry);
        deleted.push(entry.record.Id);
        space += size;
      } catch (err) {
        this.log.warn({ id: entry.record.Id, err: errorMessage(err) }, 'prune could not remove a container');
      }
    }
    return { ContainersDeleted: deleted, SpaceReclaimed: space };
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

  /**
   * A start that never ran the program: resources released, the failure recorded, waiters (docker
   * run's wait) released and --rm honoured, whichever step failed.
   */
  private async recordFailedStart(entry: Entry, exitCode: number, message: string): Promise<void> {
    const record = entry.record;
    await this.releaseResources(record.Id);
    await this.graph.put(record.Id).catch((e) => this.log.warn({ id: record.Id, err: errorMessage(e) }, 'put after a failed start'));
    record.State = { ...record.State, Running: false, Pid: 0, ExitCode: exitCode, Error: message, FinishedAt: new Date().toISOString() };
    await this.save(record).catch((e) => this.log.error({ id: record.Id, err: errorMessage(e) }, 'saving state failed'));
    this.endAttachments(entry);
    this.notify(entry.exitWaiters, exitCode);
    if (record.HostConfig.AutoRemove) void this.removeEntry(entry).catch((e) => this.log.error({ id: record.Id, err: errorMessage(e) }, 'auto-remove failed'));
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

function signalNumber(signal: string): number | undefined {
  if (/^\d+$/.test(signal)) return Number(signal);
  const upper = signal.toUpperCase();
  return (osConstants.signals as Record<string, number>)[upper.startsWith('SIG') ? upper : `SIG${upper}`];
}

function writeIfOpen(stream: Writable | undefined, chunk: Buffer): void {
  if (stream && !stream.writableEnded && !stream.destroyed) stream.write(chunk);
}
