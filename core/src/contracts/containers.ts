import type { Readable, Writable } from 'node:stream';
import type { EndpointSettings, NetworkSettings } from '../capabilities/networks.js';
import type { MountPoint } from '../capabilities/volumes.js';
import type { ContainerConfig } from './images.js';

/**
 * Container jobs. Bodies and outputs use the Docker Engine API's JSON shapes (container create body,
 * ContainerJSON, container list items, wait responses) so front ends pass them through unchanged.
 */

/** The subset of Docker's HostConfig this engine reads; unknown keys are kept and echoed by inspect. */
export interface HostConfig {
  NetworkMode?: string;
  AutoRemove?: boolean;
  Privileged?: boolean;
  ReadonlyRootfs?: boolean;
  CapAdd?: string[] | null;
  CapDrop?: string[] | null;
  ConsoleSize?: [number, number];
  Memory?: number;
  MemorySwap?: number;
  NanoCpus?: number;
  CpuShares?: number;
  CpuPeriod?: number;
  CpuQuota?: number;
  CpusetCpus?: string;
  CpusetMems?: string;
  PidsLimit?: number | null;
  SecurityOpt?: string[] | null;
  GroupAdd?: string[] | null;
  ShmSize?: number;
  RestartPolicy?: { Name?: string; MaximumRetryCount?: number };
  LogConfig?: { Type?: string; Config?: Record<string, string> };
  [extra: string]: unknown;
}

/** POST /containers/create body. */
export interface ContainerCreateBody extends ContainerConfig {
  HostConfig?: HostConfig;
  NetworkingConfig?: unknown;
}

/** Docker's State object in GET /containers/{id}/json. */
export interface ContainerState {
  Status: 'created' | 'running' | 'paused' | 'restarting' | 'removing' | 'exited' | 'dead';
  Running: boolean;
  Paused: boolean;
  Restarting: boolean;
  OOMKilled: boolean;
  Dead: boolean;
  Pid: number;
  ExitCode: number;
  Error: string;
  StartedAt: string;
  FinishedAt: string;
}

/** GET /containers/{id}/json: the fields this engine has. */
export interface ContainerInspect {
  Id: string;
  Created: string;
  Path: string;
  Args: string[];
  State: ContainerState;
  Image: string;
  ResolvConfPath: string;
  HostnamePath: string;
  HostsPath: string;
  LogPath: string;
  Name: string;
  RestartCount: number;
  Driver: string;
  Platform: string;
  MountLabel: string;
  ProcessLabel: string;
  AppArmorProfile: string;
  ExecIDs: string[] | null;
  HostConfig: HostConfig;
  GraphDriver: { Data: Record<string, string> | null; Name: string };
  Mounts: MountPoint[];
  Config: ContainerConfig;
  NetworkSettings: NetworkSettings;
}

/** GET /containers/{id}/top. */
export interface ContainerTop {
  Titles: string[];
  Processes: string[][];
}

/** GET /containers/json filters, name → values (Docker's semantics: any value of a key, every key). */
export type ContainerListFilters = Record<string, string[]>;

/** GET /containers/{id}/logs options (Docker's query, times as unix seconds). */
export interface ContainerLogsOptions {
  stdout: boolean;
  stderr: boolean;
  follow?: boolean;
  tail?: number;
  since?: number;
  until?: number;
  timestamps?: boolean;
}

/** GET /containers/json item. */
export interface ContainerSummary {
  Id: string;
  Names: string[];
  Image: string;
  ImageID: string;
  Command: string;
  Created: number;
  Ports: Array<{ PrivatePort: number; Type: string; IP?: string; PublicPort?: number }>;
  Labels: Record<string, string>;
  State: ContainerState['Status'];
  Status: string;
  HostConfig: { NetworkMode: string };
  NetworkSettings: { Networks: Record<string, EndpointSettings> };
  Mounts: MountPoint[];
  SizeRw?: number;
  SizeRootFs?: number;
}

/** Docker's wait conditions: "not-running" (default), "next-exit", "removed". */
export type WaitCondition = 'not-running' | 'next-exit' | 'removed';

export interface WaitResult {
  StatusCode: number;
  Error: { Message: string } | null;
}

/**
 * Where an attach sends the container's output and reads its input. With a TTY, all output goes
 * to `stdout`. The job ends the writables once the process has exited and its output is flushed.
 */
export interface AttachStreams {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
}

declare module '../kernel/job-map.js' {
  interface JobMap {
    /** Output: Docker's create response. A missing image is a notfound `No such image: name:tag`. */
    'container.create': { in: { name?: string; body: ContainerCreateBody }; out: { Id: string; Warnings: string[] } };
    /** Rejects with notmodified when the container already runs. */
    'container.start': { in: { id: string }; out: void };
    /** Resolves at the condition; the caller may send headers first. */
    'container.wait': { in: { id: string; condition?: WaitCondition }; out: WaitResult };
    /**
     * Pipes the container's output (of its current run, or of the next start when it is not running)
     * into the given streams until the process exits. Resolves with nothing once the output is flushed.
     */
    'container.attach': { in: { id: string; streams: AttachStreams }; out: void };
    'container.list': { in: { all?: boolean; filters?: ContainerListFilters; size?: boolean; limit?: number }; out: ContainerSummary[] };
    /**
     * Writes the log's entries to the streams (all to stdout for TTY containers), each prefixed with
     * its RFC 3339 time when `timestamps`; with follow, until the container stops or the signal.
     */
    'container.logs': { in: { id: string; options: ContainerLogsOptions; streams: AttachStreams }; out: void };
    /** Stops (with timeout) if running, then starts. */
    'container.restart': { in: { id: string; timeout?: number }; out: void };
    'container.rename': { in: { id: string; name: string }; out: void };
    'container.pause': { in: { id: string }; out: void };
    'container.unpause': { in: { id: string }; out: void };
    /** ps_args like "-ef" or "aux" choose the columns. */
    'container.top': { in: { id: string; psArgs?: string }; out: ContainerTop };
    /** Docker's StatsJSON objects, one per second to job.stdout as JSON lines when `stream`, else the result. */
    'container.stats': { in: { id: string; stream: boolean }; out: unknown };
    'container.resize': { in: { id: string; height: number; width: number }; out: void };
    'container.prune': { in: { filters?: ContainerListFilters }; out: { ContainersDeleted: string[]; SpaceReclaimed: number } };
    'container.inspect': { in: { id: string }; out: ContainerInspect };
    /** `volumes` also removes the container's anonymous volumes (rm -v). */
    'container.remove': { in: { id: string; force?: boolean; volumes?: boolean }; out: void };
    /** Signal name or number; default SIGKILL. */
    'container.kill': { in: { id: string; signal?: string }; out: void };
    /** Sends the stop signal, waits `timeout` seconds (default 10), then kills. notmodified when not running. */
    'container.stop': { in: { id: string; timeout?: number }; out: void };
  }
}
