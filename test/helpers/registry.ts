import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A Debian `docker-registry` (distribution 2.8) serving plain HTTP on 127.0.0.1, with its storage in a temp folder. */
export interface TestRegistry {
  /** 127.0.0.1:PORT, the domain part of image references. */
  host: string;
  port: number;
  dir: string;
  process: ChildProcess;
  logs(): string;
  /** GET http://host<path>: status, headers and body. */
  get(path: string, headers?: Record<string, string>): Promise<RegistryAnswer>;
  /** Any request to the registry (e.g. PUT a manifest list). */
  request(method: string, path: string, headers?: Record<string, string>, body?: Buffer): Promise<RegistryAnswer>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolvePort(port));
    });
  });
}

export interface RegistryAnswer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: Buffer;
}

function request(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<RegistryAnswer> {
  return new Promise((resolveGet, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.end(body);
  });
}

function get(port: number, path: string, headers: Record<string, string> = {}): Promise<RegistryAnswer> {
  return request(port, 'GET', path, headers);
}

export async function startRegistry(timeoutMs = 15_000): Promise<TestRegistry> {
  const dir = await mkdtemp(join(tmpdir(), 'tsengine-registry-'));
  const port = await freePort();
  const config = join(dir, 'config.yml');
  await writeFile(
    config,
    ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'storage')}`, 'http:', `  addr: 127.0.0.1:${port}`, ''].join('\n'),
  );
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  const registry: TestRegistry = {
    host: `127.0.0.1:${port}`,
    port,
    dir,
    process: child,
    logs: () => output,
    get: (path, headers) => get(port, path, headers),
    request: (method, path, headers, body) => request(port, method, path, headers, body),
    async stop() {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ready = await get(port, '/v2/').then(
      (r) => r.status === 200,
      () => false,
    );
    if (ready) return registry;
    if (child.exitCode !== null || Date.now() > deadline) {
      await registry.stop();
      throw new Error(`docker-registry did not answer /v2/ on 127.0.0.1:${port}: ${output}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}
