import { randomBytes } from 'node:crypto';
import type { Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import {
  type AttachStreams,
  type ContainerProcess,
  ContainerStartError,
  type ExecCreateBody,
  type ExecDriver,
  type ExecInspect,
  type Logger,
  type ProcessSpec,
  conflict,

  invalid,
  notFound,
} from '@tsengine/core';
import { mergeEnv, processEnv } from './config.js';
import type { ContainerRecord } from './manager.js';

interface Session {
  id: string;
  containerId: string;
  body: ExecCreateBody;
  started: boolean;
  running: boolean;
  exitCode: number | null;
  pid: number;
  process: ContainerProcess | undefined;
}

type RunningContainer = { id: string; record: ContainerRecord; execIds: Set<string> };

/** Docker's exec instances: created against a running container, started once, inspectable after. */
export class ExecSessions {
  private readonly sessions = new Map<string, Session>();

  constructor(
    private readonly driver: ExecDriver,
    private readonly log: Logger,
    private readonly runningContainer: (ref: string) => RunningContainer,
    private readonly emit: (container: { record: ContainerRecord }, action: string, attributes: Record<string, string>) => void,
  ) {}

  create(containerRef: string, body: ExecCreateBody): { Id: string } {
    const container = this.runningContainer(containerRef);
    if (!body || !Array.isArray(body.Cmd) || body.Cmd.length === 0) throw invalid('No exec command specified');
    const id = randomBytes(32).toString('hex');
    this.sessions.set(id, { id, containerId: container.id, body, started: false, running: false, exitCode: null, pid: 0, process: undefined });
    container.execIds.add(id);
    this.emit(container, `exec_create: ${body.Cmd.join(' ')}`, { execID: id });
    return { Id: id };
  }

  inspect(id: string): ExecInspect {
    const s = this.get(id);
    const [entrypoint = '', ...args] = s.body.Cmd ?? [];
    return {
      ID: s.id,
      Running: s.running,
      ExitCode: s.exitCode,
      ProcessConfig: { tty: s.body.Tty === true, entrypoint, arguments: args, privileged: s.body.Privileged === true, user: s.body.User ?? '' },
      OpenStdin: s.body.AttachStdin === true,
      OpenStderr: s.body.AttachStderr === true,
      OpenStdout: s.body.AttachStdout === true,
      CanRemove: !s.running && s.started,
      ContainerID: s.containerId,
      DetachKeys: s.body.DetachKeys ?? '',
      Pid: s.pid,
    };
  }

  /** Tty sessions write everything to streams.stdout; see the exec.start job. */
  async start(id: string, detach: boolean, streams: AttachStreams, consoleSize: [number, number] | undefined): Promise<void> {
    const s = this.get(id);
    if (s.running) throw conflict(`Error: Exec command ${id} is already running`);
    if (s.started) throw conflict(`Error: Exec command ${id} has already run`);
    const container = this.runningContainer(s.containerId);
    s.started = true;
    const body = s.body;
    const config = container.record.Config;
    const tty = body.Tty === true;
    const size = consoleSize ?? (body.ConsoleSize && body.ConsoleSize[0] > 0 ? body.ConsoleSize : undefined);
    const spec: ProcessSpec = {
      args: body.Cmd!,
      env: mergeEnv(processEnv({ ...config, Tty: tty }), body.Env ?? []),
      cwd: body.WorkingDir || config.WorkingDir || '/',
      user: body.User || config.User || '',
      terminal: tty,
      ...(Array.isArray(container.record.HostConfig.GroupAdd) && container.record.HostConfig.GroupAdd.length ? { additionalGroups: container.record.HostConfig.GroupAdd as string[] } : {}),
      ...(size && size[0] > 0 && size[1] > 0 ? { consoleSize: { rows: size[0], cols: size[1] } } : {}),
    };
    const attachStdin = !detach && body.AttachStdin === true && streams.stdin !== undefined;
    let proc: ContainerProcess;
    try {
      proc = await this.driver.exec(container.id, spec, { stdin: attachStdin }, { privileged: body.Privileged === true });
    } catch (err) {
      s.exitCode = err instanceof ContainerStartError ? err.exitCode : 126;
      this.emit(container, 'exec_die', { execID: id, exitCode: String(s.exitCode) });
      throw err;
    }
    s.process = proc;
    s.pid = proc.pid;
    s.running = true;
    this.emit(container, `exec_start: ${body.Cmd!.join(' ')}`, { execID: id });
    const outputs = [...new Set([streams.stdout, streams.stderr].filter((w): w is Writable => w !== undefined))];
    const finish = (exitCode: number) => {
      s.running = false;
      s.exitCode = exitCode;
      s.process = undefined;
      this.emit(container, 'exec_die', { execID: id, exitCode: String(exitCode) });
    };
    if (detach) {
      proc.stdout.resume();
      proc.stderr?.resume();
      void proc.exited.then((status) => finish(status.exitCode));
      return;
    }
    for (const w of outputs) w.on('error', () => undefined);
    proc.stdout.on('data', (chunk: Buffer) => writeIfOpen(streams.stdout, chunk));
    proc.stderr?.on('data', (chunk: Buffer) => writeIfOpen(streams.stderr ?? streams.stdout, chunk));
    if (attachStdin && proc.stdin) {
      proc.stdin.on('error', () => undefined);
      // A terminal's master is also its output: only a pipe is closed at the client's end of input.
      streams.stdin!.pipe(proc.stdin, { end: !tty });
    }
    const status = await proc.exited;
    if (attachStdin && proc.stdin) streams.stdin!.unpipe(proc.stdin);
    finish(status.exitCode);
    await Promise.all(
      outputs.map(async (w) => {
        if (w.destroyed) return;
        w.end();
        await finished(w).catch(() => undefined);
      }),
    );
  }

  resize(id: string, height: number, width: number): void {
    const s = this.get(id);
    if (!s.running || !s.process) throw conflict(`Exec ${id} is not running`);
    if (height > 0 && width > 0) s.process.resize?.(height, width);
  }

  /** The container stopped: its exec processes died with it. */
  containerExited(ids: Iterable<string>): void {
    for (const id of ids) {
      const s = this.sessions.get(id);
      if (s && s.running) this.log.debug({ exec: id }, 'container exited while an exec ran');
    }
  }

  /** Forgets every session of a removed container. */
  forget(containerId: string): void {
    for (const [id, s] of this.sessions) if (s.containerId === containerId) this.sessions.delete(id);
  }

  private get(id: string): Session {
    const s = this.sessions.get(id);
    if (!s) throw notFound(`No such exec instance: ${id}`);
    return s;
  }
}

function writeIfOpen(stream: Writable | undefined, chunk: Buffer): void {
  if (stream && !stream.writableEnded && !stream.destroyed) stream.write(chunk);
}


