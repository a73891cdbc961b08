import type { AttachStreams } from './containers.js';

/** POST /containers/{id}/exec body (the fields this engine reads). */
export interface ExecCreateBody {
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  Tty?: boolean;
  Cmd?: string[];
  Env?: string[] | null;
  WorkingDir?: string;
  User?: string;
  Privileged?: boolean;
  DetachKeys?: string;
  ConsoleSize?: [number, number] | null;
}

/** GET /exec/{id}/json. */
export interface ExecInspect {
  ID: string;
  Running: boolean;
  ExitCode: number | null;
  ProcessConfig: { tty: boolean; entrypoint: string; arguments: string[]; privileged: boolean; user: string };
  OpenStdin: boolean;
  OpenStderr: boolean;
  OpenStdout: boolean;
  CanRemove: boolean;
  ContainerID: string;
  DetachKeys: string;
  Pid: number;
}

declare module '../kernel/job-map.js' {
  interface JobMap {
    'exec.create': { in: { container: string; body: ExecCreateBody }; out: { Id: string } };
    'exec.inspect': { in: { id: string }; out: ExecInspect };
    /**
     * Starts the exec'd process. Detached: resolves once it runs. Attached: pipes its output into
     * the streams (and stdin from them) and resolves once it has exited and the output is flushed.
     */
    'exec.start': { in: { id: string; detach?: boolean; streams: AttachStreams; consoleSize?: [number, number] }; out: void };
    'exec.resize': { in: { id: string; height: number; width: number }; out: void };
  }
}
