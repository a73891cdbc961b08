import type { MountSpec, NetworkSpec, ProcessSpec } from '@tsengine/core';

/**
 * The daemon ↔ init protocol. The daemon writes one InitSpec line (JSON) to the init's fd 3, and
 * "ack" lines when the init waits for it; the init writes InitReport lines to its fd 4, which it
 * marks close-on-exec: EOF after an "exec" report means execve succeeded.
 */
export const SPEC_FD = 3;
export const REPORT_FD = 4;

interface CommonInit {
  process: ProcessSpec;
  /** Capability bit masks as decimal strings (bigint). */
  capabilities: string;
  noNewPrivileges: boolean;
}

export interface CreateInit extends CommonInit {
  mode: 'create';
  rootfs: string;
  hostname: string;
  domainname?: string;
  readonlyRootfs: boolean;
  privileged: boolean;
  mounts: MountSpec[];
  network: NetworkSpec;
  maskedPaths: string[];
  readonlyPaths: string[];
  shmSize: number;
  /**
   * fd 0 is a pipe the daemon has closed (a pre-started init has every pipe): reopen it on
   * /dev/null, as Docker gives a container without stdin.
   */
  nullStdin?: boolean;
}

export interface JoinInit extends CommonInit {
  mode: 'join';
  /** Host pid of the container's PID 1, whose namespaces to enter. */
  pid: number;
}

export type InitSpec = CreateInit | JoinInit;

export type InitReport =
  /** The init holds a pty master at `fd` and waits for an ack once the daemon has taken a copy. */
  | { type: 'pty'; fd: number }
  /** Set up and about to execve; waits for a "go" line (the daemon's last step: cgroup, pids limit). */
  | { type: 'ready' }
  /** About to execve; if it fails an error follows. */
  | { type: 'exec' }
  | { type: 'error'; exitCode: 125 | 126 | 127; message: string };
