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
    'container.list': { in: { all?: boolean }; out: ContainerSummary[] };
    'container.inspect': { in: { id: string }; out: ContainerInspect };
    /** `volumes` also removes the container's anonymous volumes (rm -v). */
    'container.remove': { in: { id: string; force?: boolean; volumes?: boolean }; out: void };
    /** Signal name or number; default SIGKILL. */
    'container.kill': { in: { id: string; signal?: string }; out: void };
    /** Sends the stop signal, waits `timeout` seconds (default 10), then kills. notmodified when not running. */
    'container.stop': { in: { id: string; timeout?: number }; out: void };
  }
}
