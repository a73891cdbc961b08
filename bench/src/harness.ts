import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
