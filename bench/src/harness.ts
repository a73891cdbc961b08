import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

export const repoRoot = resolve(__dirname, '..', '..', '..');
export const cliMain = join(repoRoot, 'cli', 'dist', 'src', 'main.js');

/** One row of a benchmark's output: our figure, the peer's when it was reachable, and ours/peer. */
export interface Figure {
  name: string;
  unit: string;
  ours: number;
  peer?: number;
  /** true when smaller is better (times, memory); false for throughput. */
  lowerIsBetter: boolean;
}

export function printFigures(title: string, figures: Figure[], peerName = 'dockerd'): void {
  console.log(`\n## ${title}`);
  const rows = figures.map((f) => [
    f.name,
    `${fmt(f.ours)} ${f.unit}`,
    f.peer === undefined ? '-' : `${fmt(f.peer)} ${f.unit}`,
    f.peer === undefined || f.peer === 0 ? '-' : `${(f.ours / f.peer).toFixed(2)}x${f.lowerIsBetter ? '' : ' (higher is better)'}`,
  ]);
  const header = ['figure', 'tsengine', peerName, 'ratio'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const row of [header, ...rows]) console.log(row.map((c, i) => c.padEnd(widths[i]!)).join('   '));
}

function fmt(n: number): string {
  return n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2);
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

/** Resident set size of a process in MiB, from /proc. */
export function rssMiB(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

export function request(socketPath: string, method: string, path: string, agent?: http.Agent): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = http.request({ socketPath, method, path, agent }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** POSTs a body and drains the answer; for peer timings of load/import. */
export function postBody(socketPath: string, path: string, body: Buffer, contentType = 'application/x-tar'): Promise<{ status: number; body: string }> {
  return new Promise((resolvePromise, reject) => {
    const req = http.request({ socketPath, method: 'POST', path, headers: { 'Content-Type': contentType, 'Content-Length': body.length } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (text += c));
      res.on('end', () => resolvePromise({ status: res.statusCode ?? 0, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function waitForPing(socketPath: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await request(socketPath, 'GET', '/_ping')).status === 200) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`no answer on ${socketPath} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** Requests per second for `durationMs`, with `concurrency` requests in flight over keep-alive connections. */
export async function requestsPerSecond(socketPath: string, path: string, durationMs = 3000, concurrency = 16): Promise<number> {
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const end = Date.now() + durationMs;
  let count = 0;
  const worker = async () => {
    while (Date.now() < end) {
      await request(socketPath, 'GET', path, agent);
      count++;
    }
  };
  const started = Date.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  agent.destroy();
  return count / ((Date.now() - started) / 1000);
}

export interface BenchDaemon {
  socket: string;
  dataRoot: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts our daemon on private paths; resolves once it answers /_ping. */
export async function startOurDaemon(configFile?: string): Promise<BenchDaemon & { startMs: number }> {
  const dir = mkdtempSync(join(tmpdir(), 'tsengine-bench-'));
  const socket = join(dir, 'run', 'tsengine.sock');
  const args = [cliMain, 'daemon', '--data-root', join(dir, 'data'), '--exec-root', join(dir, 'run'), '-H', `unix://${socket}`, '--log-level', 'warn'];
  if (configFile) args.push('--plugins', configFile);
  const started = process.hrtime.bigint();
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'ignore', 'inherit'] });
  await waitForPing(socket);
  const startMs = Number(process.hrtime.bigint() - started) / 1e6;
  return {
    socket,
    dataRoot: join(dir, 'data'),
    process: child,
    startMs,
    stop: () => stopProcess(child).then(() => rmSync(dir, { recursive: true, force: true })),
  };
}

export function stopProcess(child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('exit', () => {
      clearTimeout(timer);
      resolvePromise();
    });
    child.kill('SIGTERM');
  });
}

/**
 * The peer dockerd, for side-by-side figures: DOCKER_PEER_SOCKET, else /var/run/docker.sock when it
 * answers. A benchmark never installs or starts it unless asked with --start-peer (see run.ts).
 */
export async function findPeer(): Promise<string | undefined> {
  const socket = process.env.DOCKER_PEER_SOCKET ?? '/var/run/docker.sock';
  if (!existsSync(socket)) return undefined;
  try {
    return (await request(socket, 'GET', '/_ping')).status === 200 ? socket : undefined;
  } catch {
    return undefined;
  }
}

export function peerPid(): number | undefined {
  const pidfile = process.env.DOCKER_PEER_PIDFILE ?? '/var/run/docker.pid';
  return existsSync(pidfile) ? Number(readFileSync(pidfile, 'utf8').trim()) : undefined;
}

/** Deterministic, incompressible-looking bytes (a hash chain), cheaper than crypto.randomBytes. */
export function pseudoRandom(size: number, seed: string): Buffer {
  const out = Buffer.alloc(size);
  let block = createHash('sha256').update(seed).digest();
  for (let off = 0; off < size; off += block.length) {
    block.copy(out, off);
    block = createHash('sha256').update(block).digest();
  }
  return out;
}

/** POSTs a JSON body; the answer must have the expected status or this throws with the body. */
export async function postJson(socketPath: string, path: string, body: unknown, expected = [200, 201, 204]): Promise<string> {
  const res = await postBody(socketPath, path, Buffer.from(JSON.stringify(body)), 'application/json');
  if (!expected.includes(res.status)) throw new Error(`POST ${path} (${socketPath}) answered ${res.status}: ${res.body}`);
  return res.body;
}

/** Resolves once the answer's headers arrive, with a promise of the whole body (for /wait, which answers headers at once). */
function postStreaming(socketPath: string, path: string): Promise<{ status: number; body: Promise<string> }> {
  return new Promise((resolvePromise, reject) => {
    const req = http.request({ socketPath, method: 'POST', path }, (res) => {
      const body = new Promise<string>((resolveBody, rejectBody) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolveBody(text));
        res.on('error', rejectBody);
      });
      resolvePromise({ status: res.statusCode ?? 0, body });
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * `docker run --rm IMAGE CMD` through the API the way the CLI sends it (create with AutoRemove,
 * wait?condition=removed held open, start), without attaching. Resolves with the exit code.
 */
export async function apiRunRm(socketPath: string, config: Record<string, unknown>): Promise<number> {
  const hostConfig = { ...((config.HostConfig as Record<string, unknown> | undefined) ?? {}), AutoRemove: true };
  const { Id: id } = JSON.parse(await postJson(socketPath, '/containers/create', { ...config, HostConfig: hostConfig }, [201])) as { Id: string };
  const wait = await postStreaming(socketPath, `/containers/${id}/wait?condition=removed`);
  if (wait.status !== 200) throw new Error(`wait for ${id} answered ${wait.status}: ${await wait.body}`);
  await postJson(socketPath, `/containers/${id}/start`, {}, [204]);
  const result = JSON.parse(await wait.body) as { StatusCode: number; Error?: { Message?: string } | null };
  if (result.Error?.Message) throw new Error(`run --rm ${id}: ${result.Error.Message}`);
  return result.StatusCode;
}

/** A busybox rootfs with the applets the benchmarks run, as a tar for `docker import` / POST /images/create?fromSrc=-. */
export function busyboxRootfsTar(): Buffer {
  const dir = mkdtempSync(join(tmpdir(), 'tsengine-bench-rootfs-'));
  try {
    for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev']) mkdirSync(join(dir, d), { recursive: true });
    copyFileSync('/bin/busybox', join(dir, 'bin/busybox'));
    for (const applet of ['sh', 'true', 'sleep']) symlinkSync('busybox', join(dir, 'bin', applet));
    writeFileSync(join(dir, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\n');
    return execFileSync('tar', ['-C', dir, '-cf', '-', '.'], { maxBuffer: 64 * 1024 * 1024 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Imports a rootfs tar as `repo:tag` through the API. */
export async function importImage(socketPath: string, tar: Buffer, repo: string, tag = 'latest'): Promise<void> {
  const res = await postBody(socketPath, `/images/create?fromSrc=-&repo=${encodeURIComponent(repo)}&tag=${encodeURIComponent(tag)}`, tar);
  if (res.status !== 200 || /"error"/.test(res.body)) throw new Error(`import ${repo}:${tag} (${socketPath}) answered ${res.status}: ${res.body}`);
}

export async function deleteOrThrow(socketPath: string, path: string): Promise<void> {
  const res = await request(socketPath, 'DELETE', path);
  if (res.status >= 300) throw new Error(`DELETE ${path} (${socketPath}) answered ${res.status}: ${res.body}`);
}

export async function timeAsyncMs(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** PIDs whose parent is `pid`, from /proc. */
export function childPids(pid: number): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === pid) out.push(Number(entry));
    } catch {
      // gone
    }
  }
  return out;
}
