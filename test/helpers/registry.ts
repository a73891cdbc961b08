import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { REPO_ROOT } from './daemon.js';

/** A Debian `docker-registry` (distribution 2.8) serving plain HTTP on 127.0.0.1, with its storage in a temp folder. */
export interface TestRegistry {
  /** http or https. */
  scheme: 'http' | 'https';
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

function request(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer, ca?: Buffer, client?: { cert: Buffer; key: Buffer }): Promise<RegistryAnswer> {
  return new Promise((resolveGet, reject) => {
    const transport = ca ? https : http;
    const req = transport.request({ host: '127.0.0.1', port, method, path, headers, agent: false, ...(ca ? { ca } : {}), ...(client ?? {}) }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolveGet({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.setTimeout(5000, () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.end(body);
  });
}

/** A CA and a server certificate for 127.0.0.1 and localhost signed by it, made with openssl in `dir`. */
export interface TestCertificates {
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
}

export function makeCertificates(dir: string): TestCertificates {
  const path = (name: string) => join(dir, name);
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  run(['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path('ca.key'), '-out', path('ca.crt'), '-days', '2', '-subj', '/CN=tsengine test CA']);
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', path('server.key'), '-out', path('server.csr'), '-subj', '/CN=127.0.0.1']);
  execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\nbasicConstraints=CA:FALSE\\n' > '${path('server.ext')}'`]);
  run(['x509', '-req', '-in', path('server.csr'), '-CA', path('ca.crt'), '-CAkey', path('ca.key'), '-CAcreateserial', '-out', path('server.crt'), '-days', '2', '-extfile', path('server.ext')]);
  return { caCert: path('ca.crt'), caKey: path('ca.key'), serverCert: path('server.crt'), serverKey: path('server.key') };
}

/** A client certificate signed by the test CA (for registries that require one: http.tls.clientcas). */
export function makeClientCertificate(dir: string, certs: TestCertificates): { cert: string; key: string } {
  const path = (name: string) => join(dir, name);
  const run = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  run(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', path('client.key'), '-out', path('client.csr'), '-subj', '/CN=tsengine test client']);
  execFileSync('sh', ['-c', `printf 'extendedKeyUsage=clientAuth\\n' > '${path('client.ext')}'`]);
  run(['x509', '-req', '-in', path('client.csr'), '-CA', certs.caCert, '-CAkey', certs.caKey, '-CAcreateserial', '-out', path('client.cert'), '-days', '2', '-extfile', path('client.ext')]);
  return { cert: path('client.cert'), key: path('client.key') };
}

export interface RegistryOptions {
  /** Basic auth from an htpasswd file (bcrypt, made with apache2-utils' htpasswd -B): user → password. */
  htpasswd?: Record<string, string>;
  /** Bearer auth from a token server. */
  token?: { realm: string; service: string; issuer: string; rootCertBundle: string };
  /** Serve HTTPS with this certificate and key; `ca` is what the helper trusts for its own requests. */
  tls?: { cert: string; key: string; ca: string; clientCa?: string; clientCert?: string; clientKey?: string };
  timeoutMs?: number;
}

export async function startRegistry(options: RegistryOptions | number = {}): Promise<TestRegistry> {
  const opts: RegistryOptions = typeof options === 'number' ? { timeoutMs: options } : options;
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const dir = await mkdtemp(join(tmpdir(), 'tsengine-registry-'));
  const port = await freePort();
  const config = join(dir, 'config.yml');
  const lines = ['version: 0.1', 'log:', '  level: warn', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'storage')}`, '  delete:', '    enabled: true', 'http:', `  addr: 127.0.0.1:${port}`];
  if (opts.tls) lines.push('  tls:', `    certificate: ${opts.tls.cert}`, `    key: ${opts.tls.key}`);
  if (opts.tls?.clientCa) lines.push('    clientcas:', `      - ${opts.tls.clientCa}`);
  if (opts.htpasswd) {
    const file = join(dir, 'htpasswd');
    for (const [user, password] of Object.entries(opts.htpasswd)) execFileSync('htpasswd', ['-B', '-b', ...(Object.keys(opts.htpasswd)[0] === user ? ['-c'] : []), file, user, password], { stdio: 'ignore' });
    lines.push('auth:', '  htpasswd:', '    realm: tsengine-test', `    path: ${file}`);
  }
  if (opts.token) lines.push('auth:', '  token:', `    realm: ${opts.token.realm}`, `    service: ${opts.token.service}`, `    issuer: ${opts.token.issuer}`, `    rootcertbundle: ${opts.token.rootCertBundle}`);
  await writeFile(config, lines.join('\n') + '\n');
  const ca = opts.tls ? await readFile(opts.tls.ca) : undefined;
  const client = opts.tls?.clientCert && opts.tls.clientKey ? { cert: await readFile(opts.tls.clientCert), key: await readFile(opts.tls.clientKey) } : undefined;
  const get = (port: number, path: string, headers: Record<string, string> = {}) => request(port, 'GET', path, headers, undefined, ca, client);
  const child = spawn('docker-registry', ['serve', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout!.on('data', (c: Buffer) => (output += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (output += c.toString()));
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));
  const registry: TestRegistry = {
    scheme: opts.tls ? 'https' : 'http',
    host: `127.0.0.1:${port}`,
    port,
    dir,
    process: child,
    logs: () => output,
    get: (path, headers) => get(port, path, headers),
    request: (method, path, headers, body) => request(port, method, path, headers, body, ca, client),
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
      (r) => r.status === 200 || r.status === 401,
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

/** The token-server fixture (test/fixtures/registry/token-server.js). */
export interface TokenServer {
  port: number;
  realm: string;
  requests: Array<{ method: string; account?: string; scopes: string[]; grant?: string; refused?: boolean }>;
  close(): Promise<void>;
}

export function startTokenServer(options: { users: Record<string, string>; readOnly?: string[]; key: string; cert: string; issuer: string; service: string; expiresIn?: number }): Promise<TokenServer> {
  const fixture = require(join(REPO_ROOT, 'test', 'fixtures', 'registry', 'token-server.js')) as { startTokenServer(o: unknown): Promise<TokenServer> };
  return fixture.startTokenServer(options);
}

/** The hostile registry fixture (test/fixtures/registry/hostile-registry.js); repositories hostile/<mode>. */
export interface HostileRegistry {
  port: number;
  host: string;
  layerDigest: string;
  configDigest: string;
  requests: Array<{ method: string; path: string; range?: string }>;
  close(): Promise<void>;
}

export function startHostileRegistry(options: { layer: Buffer; architecture: string }): Promise<HostileRegistry> {
  const fixture = require(join(REPO_ROOT, 'test', 'fixtures', 'registry', 'hostile-registry.js')) as { startHostileRegistry(o: unknown): Promise<HostileRegistry> };
  return fixture.startHostileRegistry(options);
}
