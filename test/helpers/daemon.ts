import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The repository root (this file runs from test/dist/helpers). */
export const REPO_ROOT = resolve(__dirname, '..', '..', '..');
/** The built `tsengine` entry. */
export const CLI_MAIN = join(REPO_ROOT, 'cli', 'dist', 'src', 'main.js');
export const BASE_PLUGINS = ['@tsengine/api-server', '@tsengine/system'];

/** What running containers needs, without networks and volumes. */
export const CONTAINER_PLUGINS = [...BASE_PLUGINS, '@tsengine/images', '@tsengine/graphdriver-overlay', '@tsengine/exec-native', '@tsengine/logdriver-json-file', '@tsengine/containers'];

export type PluginRef = string | { plugin: string; options?: unknown };

export interface StartDaemonOptions {
  /** Plugins for the generated config file; default: api-server and system. */
  plugins?: PluginRef[];
  /** Extra config keys merged into the generated file (e.g. {"graphdriver": "vfs"}). */
  config?: Record<string, unknown>;
  /** Use this config file as is instead of generating one; `false` passes no --plugins (search, then built-in defaults). */
  configFile?: string | false;
  /** Extra daemon flags, appended last (e.g. ['-H', 'tcp://127.0.0.1:0']). */
  extraArgs?: string[];
  /** Reuse a data root (e.g. to test a restart); default: a fresh one inside the daemon's temp folder. */
  dataRoot?: string;
  logLevel?: 'debug' | 'info' | 'warn' | 'error';
  /** The program to start instead of the compiled CLI (e.g. an embedded bundle). */
  entry?: string;
  env?: NodeJS.ProcessEnv;
  /** How long to wait for the first answered /_ping. */
  timeoutMs?: number;
}

export interface ExitResult {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface Daemon {
  /** Its private temp folder (data, run, config), removed by stop(). */
  dir: string;
  socket: string;
  /** unix://<socket>, for DOCKER_HOST and -H. */
  host: string;
  dataRoot: string;
  execRoot: string;
  pidfile: string;
  configFile: string | undefined;
  pid: number;
  process: ChildProcess;
  /** Everything the daemon wrote to stderr and stdout so far. */
  logs(): string;
  stdout(): string;
  /** Resolves when the process exits. */
  exited: Promise<ExitResult>;
  /** SIGTERM, wait (SIGKILL after `graceMs`), remove the temp folder; resolves with how it exited. */
  stop(graceMs?: number): Promise<ExitResult>;
}

export interface CommandResult {
  stdout: string;
  stderr: string;
  status: number | null;
  signal: NodeJS.Signals | null;
}

/** Starts `tsengine daemon` on a fresh temp data root, exec root and socket, and waits until it answers /_ping. */
export async function startDaemon(options: StartDaemonOptions = {}): Promise<Daemon> {
  const dir = await mkdtemp(join(tmpdir(), 'tsengine-daemon-'));
  const dataRoot = options.dataRoot ?? join(dir, 'data');
  const execRoot = join(dir, 'run');
  const socket = join(execRoot, 'tsengine.sock');
  let configFile: string | undefined;
  if (options.configFile === undefined) {
    configFile = join(dir, 'tsengine.json');
    await writeFile(configFile, JSON.stringify({ plugins: options.plugins ?? BASE_PLUGINS, ...options.config }, null, 2));
  } else if (options.configFile !== false) configFile = options.configFile;

  const args = [options.entry ?? CLI_MAIN, 'daemon', '--data-root', dataRoot, '--exec-root', execRoot, '-H', `unix://${socket}`, '--log-level', options.logLevel ?? 'debug'];
  if (configFile) args.push('--plugins', configFile);
  args.push(...(options.extraArgs ?? []));
  const child = spawn(process.execPath, args, { cwd: dir, env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  let stdout = '';
  child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
  const exited = new Promise<ExitResult>((resolveExit) => child.once('exit', (code, signal) => resolveExit({ code, signal })));
  let exitResult: ExitResult | undefined;
  void exited.then((r) => (exitResult = r));

  const daemon: Daemon = {
    dir,
    socket,
    host: `unix://${socket}`,
    dataRoot,
    execRoot,
    pidfile: join(execRoot, 'tsengine.pid'),
    configFile,
    pid: child.pid!,
    process: child,
    logs: () => stderr + stdout,
    stdout: () => stdout,
    exited,
    async stop(graceMs = 15_000) {
      if (!exitResult) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
      return exitResult ?? (await exited);
    },
  };

  const deadline = Date.now() + (options.timeoutMs ?? 20_000);
  for (;;) {
    if (exitResult) {
      await rm(dir, { recursive: true, force: true });
      throw new Error(`tsengine daemon exited (${exitResult.code ?? exitResult.signal}) before answering /_ping:\n${stderr}${stdout}`);
    }
    if (await ping(socket)) return daemon;
    if (Date.now() > deadline) {
      await daemon.stop(2000);
      throw new Error(`tsengine daemon did not answer /_ping within ${options.timeoutMs ?? 20_000} ms:\n${stderr}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** GET /_ping over a unix socket; true on 200 OK. */
export function ping(socketPath: string): Promise<boolean> {
  return new Promise((resolvePing) => {
    const req = http.get({ socketPath, path: '/_ping', agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolvePing(res.statusCode === 200 && body === 'OK'));
    });
    req.on('error', () => resolvePing(false));
    req.setTimeout(2000, () => req.destroy());
  });
}

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Written to the command's stdin, then closed. */
  input?: string | Buffer;
  cwd?: string;
  timeoutMs?: number;
}

/** Runs any program and collects its output. */
export function runCommand(file: string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  return new Promise((resolveRun, reject) => {
    const child = spawn(file, args, { cwd: options.cwd, env: { ...process.env, ...options.env }, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 60_000);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (status, signal) => {
      clearTimeout(timer);
      resolveRun({ stdout, stderr, status, signal });
    });
    child.stdin.on('error', () => undefined);
    child.stdin.end(options.input);
  });
}

/** The real docker CLI (first `docker` on PATH) against `host` (a Daemon or unix://…/tcp://… URI). */
export function docker(host: Daemon | string, args: string[], options: RunOptions = {}): Promise<CommandResult> {
  const uri = typeof host === 'string' ? host : host.host;
  return runCommand('docker', args, { ...options, env: { ...options.env, DOCKER_HOST: uri } });
}

/** Our CLI (`node cli/dist/src/main.js …`); with a host it sets DOCKER_HOST. */
export function tsengine(args: string[], options: RunOptions & { host?: Daemon | string } = {}): Promise<CommandResult> {
  const env = { ...options.env };
  if (options.host !== undefined) env.DOCKER_HOST = typeof options.host === 'string' ? options.host : options.host.host;
  return runCommand(process.execPath, [CLI_MAIN, ...args], { ...options, env });
}
