import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, openSync, readFileSync, readlinkSync, statSync, writeSync } from 'node:fs';
import { Socket } from 'node:net';
import { constants } from 'node:os';
import { join } from 'node:path';
import { PassThrough, type Readable, type Writable } from 'node:stream';
import { ReadStream as TtyStream } from 'node:tty';
import {
  ContainerStartError,
  EngineError,
  conflict,
  invalid,
  notFound,
  type ContainerProcess,
  type ContainerProcessInfo,
  type ContainerSpec,
  type ContainerStats,
  type ExecDriver,
  type ExecDriverInfo,
  type ExitStatus,
  type ProcessSpec,
  type StdioSpec,
} from '@tsengine/core';
import { CLONE, pidfdGetfd, pidfdOpen, pipe, setWindowSize, setns, unshare } from '@tsengine/linux';
import { detectCgroups, type Cgroup, type CgroupHost } from './cgroups.js';
import { allCapabilities, containerCapabilities } from './capabilities.js';
import { REPORT_FD, SPEC_FD, type CreateInit, type InitReport, type InitSpec, type JoinInit } from './protocol.js';

export const DEFAULT_MASKED_PATHS = [
  '/proc/asound',
  '/proc/acpi',
  '/proc/kcore',
  '/proc/keys',
  '/proc/latency_stats',
  '/proc/timer_list',
  '/proc/timer_stats',
  '/proc/sched_debug',
  '/proc/scsi',
  '/sys/firmware',
  '/sys/devices/virtual/powercap',
];
export const DEFAULT_READONLY_PATHS = ['/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'];
const DEFAULT_SHM_SIZE = 64 * 1024 * 1024;
const ID_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export interface NativeExecDriverOptions {
  /** Groups live at <controller>/<cgroupParent>/<id> (v1) or <cgroupParent>/<id> (v2). */
  cgroupParent: string;
  /** The init entry; defaults to init.js next to this file. */
  initScript?: string;
  /** How many container inits to keep started ahead of need (default 1; 0 disables). */
  prestart?: number;
}

interface ChildExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** A spawned init, blocked reading its spec on fd 3, and the daemon's ends of its pipes. */
interface SpawnedInit {
  child: ChildProcess;
  pid: number;
  exit: Promise<ChildExit>;
  exited: boolean;
  specWrite?: number;
  reportRead?: number;
  stdinWrite?: number;
  stdoutRead?: number;
  stderrRead?: number;
  /** A pre-started init's own cgroup, once it is in it; undefined when that failed. */
  parked?: Promise<Cgroup | undefined>;
}

/** Pre-started inits wait in groups of their own under the parent: prestart-<daemon pid>-<random>. */
const PARKING_PREFIX = 'prestart-';

function parkingOwner(id: string): number | undefined {
  const match = /^prestart-(\d+)-[0-9a-f]+$/.exec(id);
  return match ? Number(match[1]) : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

interface InitPipes {
  stdin: boolean;
  /** stdout and stderr pipes; none for a terminal, whose pty the init opens itself. */
  output: boolean;
}

interface LiveContainer {
  id: string;
  spec: ContainerSpec;
  pid: number;
  cgroup: Cgroup;
  capabilities: bigint;
  running: boolean;
  exited: Promise<ExitStatus>;
}

export interface ExecOptions {
  /** Every capability for this process (docker exec --privileged). */
  privileged?: boolean;
}

/**
 * Runs containers as direct children of the daemon: no shim. For each container the daemon's main
 * thread briefly enters a new PID namespace (unshare) or the container's (setns), spawns the init,
 * and returns to its own PID namespace before anything else can run.
 *
 * Node's start-up is most of a container's start time, so a few create-mode inits are started
 * ahead of need, each PID 1 of its own fresh PID namespace with every stdio pipe, blocked reading
 * fd 3; start() claims one and fits its pipes to the spec. An idle one dies with the daemon: the
 * daemon's end of fd 3 is close-on-exec, so the init reads EOF and exits.
 */
export class NativeExecDriver implements ExecDriver {
  readonly name = 'native';
  private readonly cgroups: CgroupHost;
  private readonly initScript: string;
  private readonly hostPidNs: number;
  private readonly containers = new Map<string, LiveContainer>();
  private readonly prestartSize: number;
  private readonly prestarted: SpawnedInit[] = [];
  private refillScheduled = false;
  private hits = 0;
  private closing: Promise<void> | undefined;

  constructor(options: NativeExecDriverOptions) {
    const prestart = options.prestart ?? 1;
    if (!Number.isInteger(prestart) || prestart < 0) throw invalid(`prestart must be a non-negative integer, got ${JSON.stringify(prestart)}`);
    this.prestartSize = prestart;
    this.cgroups = detectCgroups(options.cgroupParent);
    this.initScript = options.initScript ?? join(__dirname, 'init.js');
    // Held for the daemon's lifetime: the way back after spawning into another PID namespace.
    this.hostPidNs = openSync('/proc/self/ns/pid', 'r');
    // Parking groups of a daemon that died: their inits are gone with it (EOF on fd 3) or soon will be.
    for (const id of this.cgroups.ids()) {
      const owner = parkingOwner(id);
      if (owner !== undefined && !isAlive(owner)) void this.cleanupGroup(this.cgroups.group(id)).catch(() => undefined);
    }
    this.refill();
  }

  /** How many starts used a pre-started init. */
  get prestartHits(): number {
    return this.hits;
  }

  /** Pids of the idle pre-started inits. */
  prestartedPids(): number[] {
    return this.prestarted.filter((s) => !s.exited).map((s) => s.pid);
  }

  async info(): Promise<ExecDriverInfo> {
    return { name: this.name, cgroupVersion: this.cgroups.version, cgroupDriver: 'cgroupfs', oomKillDisable: this.cgroups.version === '1', ...this.cgroups.features() };
  }

  async start(spec: ContainerSpec, stdio: StdioSpec): Promise<ContainerProcess> {
    if (!ID_PATTERN.test(spec.id)) throw invalid(`invalid container id ${JSON.stringify(spec.id)}`);
    if (this.containers.get(spec.id)?.running) throw conflict(`container ${spec.id} is already running`);
    this.containers.delete(spec.id);
    try {
      if (!statSync(spec.rootfs).isDirectory()) throw new Error('not a directory');
    } catch (err) {
      throw invalid(`rootfs ${spec.rootfs}: ${(err as Error).message}`);
    }
    validateProcess(spec.process);
    const capabilities = spec.privileged ? allCapabilities() : containerCapabilities(spec.capAdd, spec.capDrop);
    const cgroup = this.cgroups.group(spec.id);
    // A group with this id left by a dead daemon or an earlier run: nothing of it may survive.
    await cgroup.killAll();
    cgroup.remove();
    const init: CreateInit = {
      mode: 'create',
      process: spec.process,
      capabilities: capabilities.toString(),
      noNewPrivileges: spec.noNewPrivileges,
      rootfs: spec.rootfs,
      hostname: spec.hostname,
      domainname: spec.domainname,
      readonlyRootfs: spec.readonlyRootfs,
      privileged: spec.privileged,
      mounts: spec.mounts,
      network: spec.network,
      maskedPaths: spec.maskedPaths ?? DEFAULT_MASKED_PATHS,
      readonlyPaths: spec.readonlyPaths ?? DEFAULT_READONLY_PATHS,
      shmSize: spec.shmSize ?? DEFAULT_SHM_SIZE,
    };
    try {
      // The init is a Node process whose threads the pids controller counts: the limit is set at the
      // init's last step before execve, when it starts no more threads.
      const { pidsLimit, ...resources } = spec.resources;
      // A parked init's memory is charged to its group, which would count against a memory limit.
      const adoptable = !(resources.memory && resources.memory > 0);
      const spawned = await this.handOverCreate(spec.id, init, stdio, cgroup, adoptable, (group) => group.limit(resources, spec.privileged));
      const proc = await this.launch(spawned, init, stdio, cgroup, () => {
        if (pidsLimit && pidsLimit > 0) cgroup.setPidsLimit(pidsLimit);
      });
      const live: LiveContainer = { id: spec.id, spec, pid: proc.pid, cgroup, capabilities, running: true, exited: proc.exited };
      this.containers.set(spec.id, live);
      void proc.exited.then(() => {
        live.running = false;
      });
      return proc;
    } catch (err) {
      await cgroup.killAll().catch(() => undefined);
      try {
        cgroup.remove();
      } catch {
        // reported by the original error
      }
      if (err instanceof ContainerStartError || err instanceof EngineError) throw err;
      throw new ContainerStartError(125, (err as Error).message);
    } finally {
      this.refillSoon();
    }
  }

  async exec(id: string, proc: ProcessSpec, stdio: StdioSpec, options: ExecOptions = {}): Promise<ContainerProcess> {
    const live = this.running(id);
    validateProcess(proc);
    const init: JoinInit = {
      mode: 'join',
      pid: live.pid,
      process: proc,
      capabilities: (options.privileged ? allCapabilities() : live.capabilities).toString(),
      noNewPrivileges: live.spec.noNewPrivileges,
    };
    let pidNs: number;
    try {
      pidNs = openSync(`/proc/${live.pid}/ns/pid`, 'r');
    } catch (err) {
      throw conflict(`container ${id} is not running: ${(err as Error).message}`);
    }
    try {
      // Moved into the cgroup just before execve: a migration may exceed pids.max where the init's
      // threads could not have been created inside a container near its limit.
      const spawned = this.spawnInit({ stdin: stdio.stdin && !proc.terminal, output: !proc.terminal }, pidNs);
      await this.sendSpec(spawned, init);
      return await this.launch(spawned, init, stdio, live.cgroup, (pid) => live.cgroup.addProcess(pid));
    } finally {
      closeSync(pidNs);
    }
  }

  async kill(id: string, signal: string | number): Promise<void> {
    const live = this.running(id);
    const number = parseSignal(signal);
    try {
      process.kill(live.pid, number);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ESRCH') throw err;
    }
  }

  async pause(id: string): Promise<void> {
    await this.running(id).cgroup.freeze();
  }

  async resume(id: string): Promise<void> {
    await this.running(id).cgroup.thaw();
  }

  async stats(id: string): Promise<ContainerStats> {
    return this.group(id).stats();
  }

  async top(id: string): Promise<ContainerProcessInfo[]> {
    const users = hostUsers();
    return this.group(id)
      .pids()
      .map((pid) => processInfo(pid, users))
      .filter((p): p is ContainerProcessInfo => p !== undefined)
      .sort((a, b) => a.pid - b.pid);
  }

  async destroy(id: string): Promise<void> {
    const live = this.containers.get(id);
    const cgroup = live?.cgroup ?? this.cgroups.group(id);
    await cgroup.killAll();
    if (live) {
      if (live.running) {
        try {
          process.kill(live.pid, 'SIGKILL');
        } catch {
          // exited; its exit event is on the way
        }
      }
      await live.exited;
    }
    cgroup.remove();
    this.containers.delete(id);
  }

  async list(): Promise<string[]> {
    return [...this.containers.values()].filter((c) => c.running).map((c) => c.id);
  }

  async listStale(): Promise<string[]> {
    return this.cgroups.ids().filter((id) => !this.containers.has(id) && !id.startsWith(PARKING_PREFIX));
  }

  async cleanupStale(id: string): Promise<void> {
    if (this.containers.has(id)) throw conflict(`container ${id} is managed by this daemon; use destroy`);
    await this.cleanupGroup(this.cgroups.group(id));
  }

  private async cleanupGroup(cgroup: Cgroup): Promise<void> {
    await cgroup.killAll();
    cgroup.remove();
  }

  /**
   * Releases the driver's own resources: kills and reaps the pre-started inits. Running containers
   * are left to the caller.
   */
  close(): Promise<void> {
    this.closing ??= (async () => {
      closeSync(this.hostPidNs);
      await Promise.all(
        this.prestarted.splice(0).map(async (s) => {
          await this.discard(s);
          await this.unpark(s);
        }),
      );
    })();
    return this.closing;
  }

  /** Removes the (empty) parent cgroup; for tests that use their own parent. */
  removeCgroupParent(): void {
    this.cgroups.removeParent();
  }

  private running(id: string): LiveContainer {
    const live = this.containers.get(id);
    if (!live) throw notFound(`No such container: ${id}`);
    if (!live.running) throw conflict(`Container ${id} is not running`);
    return live;
  }

  private group(id: string): Cgroup {
    const cgroup = this.containers.get(id)?.cgroup ?? this.cgroups.group(id);
    if (!cgroup.exists()) throw notFound(`No such container: ${id}`);
    return cgroup;
  }

  /**
   * Puts a create-mode init into the container's cgroup and hands it its spec: a pre-started one
   * when there is one alive, else a fresh one. The cgroup is written before the spec, so limits
   * apply before anything of the container runs. A pre-started init's parking group becomes the
   * container's by a rename; moving a process between groups costs an RCU grace period per
   * hierarchy (about 10 ms of a start here).
   */
  private async handOverCreate(id: string, init: CreateInit, stdio: StdioSpec, cgroup: Cgroup, adoptable: boolean, limit: (group: Cgroup) => void): Promise<SpawnedInit> {
    const terminal = init.process.terminal;
    const claimed = this.claimPrestarted();
    if (claimed) {
      // Fit the all-pipes init to this spec; unused pipes are closed so no end is left open.
      if (terminal) this.closeFds(claimed, ['stdinWrite', 'stdoutRead', 'stderrRead']);
      else if (!stdio.stdin) {
        this.closeFds(claimed, ['stdinWrite']);
        init.nullStdin = true;
      }
      try {
        // Awaited either way: a move into the parking group still under way would undo ours.
        const parked = await claimed.parked;
        if (parked && adoptable) {
          parked.rename(id);
          limit(cgroup);
        } else {
          cgroup.create({}, true);
          limit(cgroup);
          await cgroup.addProcess(claimed.pid);
          if (parked) await this.cleanupGroup(parked).catch(() => undefined);
        }
        writeSync(claimed.specWrite!, `${JSON.stringify(init)}\n`);
        this.hits++;
        return claimed;
      } catch {
        // It died meanwhile (or its pipe did): a fresh one does the same.
        delete init.nullStdin;
        await this.discard(claimed);
      }
    }
    const spawned = this.spawnInit({ stdin: stdio.stdin && !terminal, output: !terminal }, undefined);
    try {
      cgroup.create({}, true);
      limit(cgroup);
      await cgroup.addProcess(spawned.pid);
    } catch (err) {
      await this.discard(spawned);
      throw new ContainerStartError(125, (err as Error).message);
    }
    await this.sendSpec(spawned, init);
    return spawned;
  }

  private async sendSpec(spawned: SpawnedInit, init: InitSpec): Promise<void> {
    try {
      writeSync(spawned.specWrite!, `${JSON.stringify(init)}\n`);
    } catch (err) {
      await this.discard(spawned);
      throw new ContainerStartError(125, (err as Error).message);
    }
  }

  private claimPrestarted(): SpawnedInit | undefined {
    for (let s = this.prestarted.shift(); s; s = this.prestarted.shift()) {
      if (s.exited) continue;
      s.child.ref();
      return s;
    }
    return undefined;
  }

  /**
   * Tops the pool up right after the current start. Waiting for a quiet moment was tried: with
   * starts back to back there is none, and the next start then spawns its own init, the slow path.
   */
  private refillSoon(): void {
    if (this.closing || this.refillScheduled || this.prestarted.length >= this.prestartSize) return;
    this.refillScheduled = true;
    setImmediate(() => {
      this.refillScheduled = false;
      this.refill();
    });
  }

  private refill(): void {
    while (!this.closing && this.prestarted.length < this.prestartSize) {
      let spawned: SpawnedInit;
      try {
        spawned = this.spawnInit({ stdin: true, output: true }, undefined);
      } catch {
        // The next start spawns its own init and reports why that fails.
        return;
      }
      // An idle init must not keep the daemon's event loop alive.
      spawned.child.unref();
      spawned.parked = this.park(spawned.pid);
      this.prestarted.push(spawned);
      void spawned.exit.then(async () => {
        await this.unpark(spawned);
        const i = this.prestarted.indexOf(spawned);
        if (i < 0) return;
        this.prestarted.splice(i, 1);
        this.closeFds(spawned);
      });
    }
  }

  /** A group of its own for a pre-started init, without limits; undefined if that fails (the claim then moves it). */
  private async park(pid: number): Promise<Cgroup | undefined> {
    const group = this.cgroups.group(`${PARKING_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}`);
    try {
      group.create({}, true);
      await group.addProcess(pid, true);
      return group;
    } catch {
      await this.cleanupGroup(group).catch(() => undefined);
      return undefined;
    }
  }

  /** Removes a pre-started init's parking group: gone already once claimed (renamed), empty once it died. */
  private async unpark(spawned: SpawnedInit): Promise<void> {
    const group = await spawned.parked;
    if (group) await this.cleanupGroup(group).catch(() => undefined);
  }

  /** Kills an unused init, waits until it is reaped and closes the daemon's ends of its pipes. */
  private async discard(spawned: SpawnedInit): Promise<void> {
    spawned.child.ref();
    if (!spawned.exited) {
      try {
        process.kill(spawned.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    await spawned.exit;
    this.closeFds(spawned);
  }

  private closeFds(spawned: SpawnedInit, which: Array<'specWrite' | 'reportRead' | 'stdinWrite' | 'stdoutRead' | 'stderrRead'> = ['specWrite', 'reportRead', 'stdinWrite', 'stdoutRead', 'stderrRead']): void {
    for (const key of which) {
      const fd = spawned[key];
      if (fd === undefined) continue;
      // Forgotten first: a closed number may be reused by the next open.
      spawned[key] = undefined;
      closeQuietly(fd);
    }
  }

  /** Spawns an init into a new PID namespace (pidNs undefined) or the given one, with its pipes. */
  private spawnInit(pipes: InitPipes, pidNs: number | undefined): SpawnedInit {
    const toClose: number[] = [];
    const ours: number[] = [];
    const [specRead, specWrite] = pipe();
    const [reportRead, reportWrite] = pipe();
    toClose.push(specRead, reportWrite);
    ours.push(specWrite, reportRead);
    const fds: Array<number | 'ignore'> = ['ignore', 'ignore', 'ignore'];
    const spawned: Omit<SpawnedInit, 'child' | 'pid' | 'exit'> = { exited: false, specWrite, reportRead };
    if (pipes.stdin) {
      const [r, w] = pipe();
      fds[0] = r;
      spawned.stdinWrite = w;
      toClose.push(r);
      ours.push(w);
    }
    if (pipes.output) {
      const [outR, outW] = pipe();
      const [errR, errW] = pipe();
      fds[1] = outW;
      fds[2] = errW;
      spawned.stdoutRead = outR;
      spawned.stderrRead = errR;
      toClose.push(outW, errW);
      ours.push(outR, errR);
    }
    fds[SPEC_FD] = specRead;
    fds[REPORT_FD] = reportWrite;
    let child: ChildProcess;
    try {
      child = this.spawnInNamespace(fds, pidNs);
    } catch (err) {
      for (const fd of ours) closeQuietly(fd);
      throw new ContainerStartError(125, `starting the container init: ${(err as Error).message}`);
    } finally {
      for (const fd of toClose) closeQuietly(fd);
    }
    if (child.pid === undefined) {
      for (const fd of ours) closeQuietly(fd);
      // The spawn error is emitted later; without a listener it would be thrown.
      child.once('error', () => undefined);
      throw new ContainerStartError(125, 'the container init could not be spawned');
    }
    const result: SpawnedInit = { ...spawned, child, pid: child.pid, exit: undefined as unknown as Promise<ChildExit> };
    result.exit = new Promise<ChildExit>((resolve) => {
      child.once('exit', (code, signal) => {
        result.exited = true;
        resolve({ code, signal });
      });
      child.once('error', () => {
        result.exited = true;
        resolve({ code: 125, signal: null });
      });
    });
    return result;
  }

  /**
   * Waits for the init's "exec" report followed by EOF, answering its "pty" and "ready" reports,
   * and builds the container process from the init's pipes.
   */
  private async launch(spawned: SpawnedInit, init: InitSpec, stdio: StdioSpec, cgroup: Cgroup, beforeExec: (pid: number) => void | Promise<void>): Promise<ContainerProcess> {
    const terminal = init.process.terminal;
    const { pid, exit: childExit } = spawned;
    const specWrite = spawned.specWrite!;
    const reportRead = spawned.reportRead!;
    const ours = [specWrite, reportRead, spawned.stdinWrite, spawned.stdoutRead, spawned.stderrRead].filter((fd): fd is number => fd !== undefined);
    const stdinWrite = spawned.stdinWrite;
    const stdoutRead = spawned.stdoutRead;
    const stderrRead = spawned.stderrRead;
    let ptyMaster: number | undefined;
    const fail = async (exitCode: 125 | 126 | 127, message: string): Promise<never> => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
      await childExit;
      for (const fd of ours) closeQuietly(fd);
      if (ptyMaster !== undefined) closeQuietly(ptyMaster);
      throw new ContainerStartError(exitCode, message);
    };

    const reports = new Socket({ fd: reportRead, readable: true, writable: false });
    ours.splice(ours.indexOf(reportRead), 1);
    let sawExec = false;
    let error: { exitCode: 125 | 126 | 127; message: string } | undefined;
    await new Promise<void>((resolve) => {
      let buffer = '';
      reports.on('data', (chunk: Buffer) => {
        buffer += chunk.toString('utf8');
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          let message: InitReport;
          try {
            message = JSON.parse(line) as InitReport;
          } catch {
            continue;
          }
          if (message.type === 'exec') sawExec = true;
          else if (message.type === 'ready') {
            // Nothing more comes from the init until it reads "go".
            Promise.resolve()
              .then(() => beforeExec(pid))
              .then(() => writeSync(specWrite, 'go\n'))
              .catch((err: unknown) => {
                error = { exitCode: 125, message: (err as Error).message };
                try {
                  process.kill(pid, 'SIGKILL');
                } catch {
                  // gone
                }
              });
          }
          else if (message.type === 'error') error = { exitCode: message.exitCode, message: message.message };
          else if (message.type === 'pty') {
            try {
              const pidfd = pidfdOpen(pid);
              try {
                ptyMaster = pidfdGetfd(pidfd, message.fd);
              } finally {
                closeSync(pidfd);
              }
              writeSync(specWrite, 'ack\n');
            } catch (err) {
              error = { exitCode: 125, message: `taking the container's terminal: ${(err as Error).message}` };
              try {
                process.kill(pid, 'SIGKILL');
              } catch {
                // gone
              }
            }
          }
        }
      });
      reports.once('close', () => resolve());
      reports.once('error', () => resolve());
    });
    closeQuietly(specWrite);
    ours.splice(ours.indexOf(specWrite), 1);
    if (error) return fail(error.exitCode, error.message);
    if (!sawExec) {
      const { code, signal } = await childExit;
      return fail(125, `container init exited before starting the program (${signal ?? `exit code ${code}`})`);
    }

    const streams: Readable[] = [];
    let stdin: Writable | undefined;
    let stdout: Readable;
    let stderr: Readable | undefined;
    let resize: ContainerProcess['resize'];
    if (terminal) {
      const master = new TtyStream(ptyMaster!, { writable: true } as never);
      const out = new PassThrough();
      master.pipe(out);
      // The master reads EIO once the last slave fd closes: that is the terminal's end of file.
      master.on('error', () => {
        out.end();
        master.destroy();
      });
      stdout = out;
      if (stdio.stdin) stdin = master;
      const fd = ptyMaster!;
      resize = (rows, cols) => {
        if (!master.destroyed) setWindowSize(fd, rows, cols);
      };
      streams.push(out);
    } else {
      stdout = new Socket({ fd: stdoutRead!, readable: true, writable: false });
      stderr = new Socket({ fd: stderrRead!, readable: true, writable: false });
      if (stdinWrite !== undefined) stdin = new Socket({ fd: stdinWrite, readable: false, writable: true });
      streams.push(stdout, stderr);
    }
    const ended = streams.map((s) => new Promise<void>((resolve) => s.once('close', resolve).once('end', resolve).once('error', () => resolve())));
    const exited = childExit.then(async ({ code, signal }) => {
      // Output a consumer reads is complete before the exit is reported; unread streams keep their
      // buffered data but do not hold the exit back. A fast program can exit before start()/exec()
      // has even returned: one turn of the event loop lets the caller attach its readers first.
      await new Promise((resolve) => setImmediate(resolve));
      await Promise.all(streams.map((s, i) => (s.readableFlowing ? ended[i] : undefined)));
      if (stdin && !stdin.destroyed) stdin.destroy();
      const status: ExitStatus = { exitCode: code ?? 128 + (signal ? (constants.signals[signal] ?? 0) : 0), oomKilled: safeOomKills(cgroup) > 0 };
      if (signal) status.signal = signal;
      return status;
    });
    const result: ContainerProcess = { pid, stdout, exited };
    if (stdin) result.stdin = stdin;
    if (stderr) result.stderr = stderr;
    if (resize) result.resize = resize;
    return result;
  }

  /** The only place the daemon's main thread leaves its PID namespace; no await in here. */
  private spawnInNamespace(fds: Array<number | 'ignore'>, pidNs: number | undefined): ChildProcess {
    if (pidNs === undefined) unshare(CLONE.NEWPID);
    else setns(pidNs, CLONE.NEWPID);
    try {
      return spawn(process.execPath, [this.initScript], { stdio: fds, env: {}, argv0: 'tsengine-init' });
    } finally {
      setns(this.hostPidNs, CLONE.NEWPID);
    }
  }
}

function safeOomKills(cgroup: Cgroup): number {
  try {
    return cgroup.oomKills();
  } catch {
    return 0;
  }
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

function validateProcess(proc: ProcessSpec): void {
  if (!Array.isArray(proc.args) || proc.args.length === 0) throw invalid('no command specified');
  if (!proc.cwd.startsWith('/')) throw invalid(`the working directory '${proc.cwd}' is invalid, it needs to be an absolute path`);
}

function parseSignal(signal: string | number): number {
  if (typeof signal === 'number' || /^\d+$/.test(signal)) {
    const n = Number(signal);
    if (n < 1 || n > 64) throw invalid(`Invalid signal: ${signal}`);
    return n;
  }
  const name = signal.toUpperCase().startsWith('SIG') ? signal.toUpperCase() : `SIG${signal.toUpperCase()}`;
  const n = (constants.signals as Record<string, number>)[name];
  if (n === undefined) throw invalid(`Invalid signal: ${signal}`);
  return n;
}

function hostUsers(): Map<number, string> {
  const users = new Map<number, string>();
  try {
    for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
      const [name, , uid] = line.split(':');
      if (name && uid && !users.has(Number(uid))) users.set(Number(uid), name);
    }
  } catch {
    // numeric users only
  }
  return users;
}

const CLOCK_TICKS = 100;
let bootTimeMs: number | undefined;
function bootTime(): number {
  if (bootTimeMs === undefined) {
    const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('btime '));
    bootTimeMs = Number(line?.split(' ')[1] ?? 0) * 1000;
  }
  return bootTimeMs;
}

/** ps-like fields of one process from /proc (host view); undefined when it is gone. */
function processInfo(pid: number, users: Map<number, string>): ContainerProcessInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    // fields[0] is stat's 3rd field (state).
    const f = (n: number) => Number(fields[n - 3]);
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = Number(/^Uid:\s+(\d+)/m.exec(status)?.[1] ?? 0);
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).join(' ');
    let tty = '?';
    if (f(7) !== 0) {
      try {
        tty = readlinkSync(`/proc/${pid}/fd/0`).replace(/^\/dev\//, '');
      } catch {
        tty = '?';
      }
    }
    return {
      pid,
      ppid: f(4),
      uid,
      user: users.get(uid) ?? String(uid),
      state: fields[0] ?? '?',
      startTime: bootTime() + (f(22) * 1000) / CLOCK_TICKS,
      cpuTime: ((f(14) + f(15)) * 1000) / CLOCK_TICKS,
      rss: f(24) * 4096,
      vsz: f(23),
      tty,
      cmd: cmdline || `[${comm}]`,
    };
  } catch {
    return undefined;
  }
}
