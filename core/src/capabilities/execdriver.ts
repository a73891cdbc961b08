import type { Readable, Writable } from 'node:stream';
import { defineCapability } from './capability.js';

/** The program to run (a container's main process or an exec session). */
export interface ProcessSpec {
  /** argv; args[0] is looked up in the container's PATH when it has no slash. */
  args: string[];
  /** KEY=value pairs, passed as given; HOME is added from /etc/passwd when absent. */
  env: string[];
  /** Absolute working directory inside the container; created when missing. */
  cwd: string;
  /** "" or "root", "name", "uid", "uid:gid", "name:group" resolved against the container's /etc/passwd and /etc/group. */
  user: string;
  /** Extra groups (names or gids), Docker's --group-add. */
  additionalGroups?: string[];
  /** Give the process a pseudo-terminal as stdin/stdout/stderr (the container's /dev/pts/0). */
  terminal: boolean;
  consoleSize?: { rows: number; cols: number };
}

export interface MountSpec {
  type: 'bind' | 'tmpfs';
  /** Host path for bind mounts; ignored for tmpfs. */
  source: string;
  /** Absolute path inside the container; symlinks in it resolve inside the rootfs. */
  destination: string;
  readonly?: boolean;
  /** tmpfs data options ("size=64m,mode=1777") or bind flags (nosuid, nodev, noexec). */
  options?: string[];
  /** Mount propagation for bind mounts (Docker's default rprivate). */
  propagation?: 'rprivate' | 'private' | 'rslave' | 'slave' | 'rshared' | 'shared';
  /** Bind mounts are recursive unless this is false. */
  recursive?: boolean;
}

export type NetworkSpec = { mode: 'none' } | { mode: 'host' } | { mode: 'netns'; path: string };

export interface ResourceSpec {
  /** Bytes; 0/undefined = unlimited. */
  memory?: number;
  /** Memory plus swap in bytes; -1 = unlimited swap. Docker's --memory-swap. */
  memorySwap?: number;
  /** CPU quota in units of 1e-9 CPUs (Docker's --cpus × 1e9). */
  nanoCpus?: number;
  /** Relative weight (Docker's --cpu-shares, 2..262144). */
  cpuShares?: number;
  /** "0-2,4" */
  cpusetCpus?: string;
  cpusetMems?: string;
  /** Maximum number of processes; 0/undefined/-1 = unlimited. */
  pidsLimit?: number;
}

export interface ContainerSpec {
  /** Names the cgroup and the driver's bookkeeping; [A-Za-z0-9][A-Za-z0-9_.-]* */
  id: string;
  /** An existing directory holding the container's filesystem (e.g. a graph driver mount). */
  rootfs: string;
  process: ProcessSpec;
  hostname: string;
  domainname?: string;
  readonlyRootfs: boolean;
  privileged: boolean;
  /** Capability names with or without CAP_, or "ALL". */
  capAdd: string[];
  capDrop: string[];
  noNewPrivileges: boolean;
  /** Applied in order after /proc, /sys and /dev; /etc/hosts etc. are bind mounts of files the caller wrote. */
  mounts: MountSpec[];
  network: NetworkSpec;
  resources: ResourceSpec;
  /** Default: Docker's masked paths (ignored when privileged). */
  maskedPaths?: string[];
  /** Default: Docker's read-only paths (ignored when privileged). */
  readonlyPaths?: string[];
  /** Size of /dev/shm in bytes (default 64 MiB). */
  shmSize?: number;
}

/**
 * How the process's stdio is connected. "pipes": the driver makes a pipe per stream (stdin only when
 * asked). "terminal": one pty whose master is the process's `stdout` (and `stdin` when asked).
 */
export interface StdioSpec {
  stdin: boolean;
}

export interface ExitStatus {
  /** The program's exit code, or 128+N when killed by signal N. */
  exitCode: number;
  /** Name of the signal that killed it (SIGKILL), if any. */
  signal?: string;
  /** The kernel's OOM killer killed a process of this container while it ran. */
  oomKilled: boolean;
}

export interface ContainerProcess {
  /** Host PID (PID 1 inside the container for start()). */
  pid: number;
  stdin?: Writable;
  /** Program output; with a terminal, stdout and stderr arrive merged here. */
  stdout: Readable;
  /** Absent with a terminal. */
  stderr?: Readable;
  /** Sets the terminal size (rows × cols); present only with a terminal. */
  resize?(rows: number, cols: number): void;
  /**
   * Settles once the process is gone and every output stream being read (flowing or piped) has
   * ended, so consumers see all output before the exit. Never rejects.
   */
  exited: Promise<ExitStatus>;
}

/**
 * Raised by start()/exec() when the process never ran: the driver's own setup failed or the program
 * could not be executed. `exitCode` is Docker's: 127 = command not found (or no such file), 126 = not
 * executable / permission denied, 125 = any other engine failure. A program that ran reports its own
 * code through ContainerProcess.exited instead.
 */
export class ContainerStartError extends Error {
  constructor(
    readonly exitCode: 125 | 126 | 127,
    message: string,
  ) {
    super(message);
    this.name = 'ContainerStartError';
  }
}

export interface ExecDriverInfo {
  name: string;
  cgroupVersion: '1' | '2';
  cgroupDriver: 'cgroupfs';
  memoryLimit: boolean;
  swapLimit: boolean;
  pidsLimit: boolean;
  cpuCfs: boolean;
  cpuShares: boolean;
  cpuSet: boolean;
  oomKillDisable: boolean;
  freezer: boolean;
}

/** Figures in the shape of Docker's stats (types.StatsJSON), all from the container's cgroup. */
export interface ContainerStats {
  read: string;
  pids: { current: number; limit?: number };
  cpu: {
    /** Nanoseconds of CPU time used by the container. */
    totalUsage: number;
    perCpuUsage: number[];
    usageInKernelmode: number;
    usageInUsermode: number;
    /** Host CPU time in nanoseconds since boot (Docker's system_cpu_usage). */
    systemUsage: number;
    onlineCpus: number;
    throttling: { periods: number; throttledPeriods: number; throttledTime: number };
  };
  memory: {
    usage: number;
    maxUsage?: number;
    /** The limit, or the host's memory when unlimited (as Docker reports it). */
    limit: number;
    failcnt?: number;
    /** The raw memory.stat counters. */
    stats: Record<string, number>;
  };
}

/** One process of a container, as ps would show it. */
export interface ContainerProcessInfo {
  pid: number;
  ppid: number;
  uid: number;
  user: string;
  /** Process state letter (R, S, D, Z, T, …). */
  state: string;
  /** Start time in milliseconds since the Unix epoch. */
  startTime: number;
  /** CPU time used (user+system) in milliseconds. */
  cpuTime: number;
  /** Resident set size in bytes. */
  rss: number;
  vsz: number;
  tty: string;
  /** Full command line (argv joined by spaces; [comm] for kernel-side names). */
  cmd: string;
}

export interface ExecDriver {
  readonly name: string;
  info(): Promise<ExecDriverInfo>;
  /**
   * Creates the cgroup, starts the container's init and resolves once the program has been executed
   * (or rejects with ContainerStartError, having released everything).
   */
  start(spec: ContainerSpec, stdio: StdioSpec): Promise<ContainerProcess>;
  /** Runs another process in every namespace and the cgroup of a running container. */
  exec(id: string, process: ProcessSpec, stdio: StdioSpec, options?: { privileged?: boolean }): Promise<ContainerProcess>;
  /** Signals the container's PID 1 (name like "SIGTERM"/"TERM" or a number). */
  kill(id: string, signal: string | number): Promise<void>;
  pause(id: string): Promise<void>;
  resume(id: string): Promise<void>;
  stats(id: string): Promise<ContainerStats>;
  top(id: string): Promise<ContainerProcessInfo[]>;
  /** Kills whatever still runs in the container, removes its cgroup and forgets it. Idempotent. */
  destroy(id: string): Promise<void>;
  /** Ids of containers this driver started and whose PID 1 still runs. */
  list(): Promise<string[]>;
  /** Ids with a cgroup left by an earlier daemon (not started by this one). */
  listStale(): Promise<string[]>;
  /** Kills every process left in a stale container's cgroup and removes the cgroup. */
  cleanupStale(id: string): Promise<void>;
}

export const ExecDriverCapability = defineCapability<ExecDriver>('execdriver', { mode: 'one', preference: ['native'] });
