import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { imageConfigFor, layerTar } from '@tsengine/test';
import { type BenchDaemon, type Figure, findPeer, median, printFigures, pseudoRandom, request, startOurDaemon, stopProcess } from './harness.js';

const MB = 1024 * 1024;
const REPO = 'bench/pull';
/** Pulls per figure; the median is reported (one sample swings by a second on a shared machine). */
const RUNS = 3;
/** Quiet time before each timed pull, after flushing the previous pull's (or removal's) dirty pages. */
const SETTLE_MS = 2000;

/** Lets the previous pull's after-effects (writeback, a daemon's cleanup) finish before timing the next. */
async function settle(): Promise<void> {
  spawnSync('sync');
  await new Promise((r) => setTimeout(r, SETTLE_MS));
}

function sha256(data: Buffer): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
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

function call(port: number, method: string, path: string, headers: Record<string, string> = {}, body?: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolveCall, reject) => {
    const req = http.request({ host: '127.0.0.1', port, method, path, headers: { ...headers, ...(body ? { 'Content-Length': String(body.length) } : {}) } }, (res) => {
      let text = '';
      res.on('data', (c: Buffer) => (text += c.toString()));
      res.on('end', () => resolveCall({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

/** Debian's docker-registry on 127.0.0.1 with its storage in `dir`. */
async function startRegistry(dir: string): Promise<{ port: number; child: ChildProcess }> {
  const port = await freePort();
  const config = join(dir, 'registry.yml');
  await writeFile(config, ['version: 0.1', 'log:', '  level: error', 'storage:', '  filesystem:', `    rootdirectory: ${join(dir, 'storage')}`, 'http:', `  addr: 127.0.0.1:${port}`, ''].join('\n'));
  const child = spawn('docker-registry', ['serve', config], { stdio: 'ignore' });
  const deadline = Date.now() + 20_000;
  for (;;) {
    const up = await call(port, 'GET', '/v2/').then((r) => r.status === 200, () => false);
    if (up) return { port, child };
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('docker-registry did not start');
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function upload(port: number, blob: Buffer): Promise<string> {
  const digest = sha256(blob);
  if ((await call(port, 'HEAD', `/v2/${REPO}/blobs/${digest}`)).status === 200) return digest;
  const start = await call(port, 'POST', `/v2/${REPO}/blobs/uploads/`);
  const target = new URL(String(start.headers.location), `http://127.0.0.1:${port}`);
  target.searchParams.set('digest', digest);
  const put = await call(port, 'PUT', target.pathname + target.search, { 'Content-Type': 'application/octet-stream' }, blob);
  if (put.status !== 201) throw new Error(`upload failed: ${put.status} ${put.body}`);
  return digest;
}

/** An image of gzip layers in the registry under `tag`. */
async function pushImage(port: number, tag: string, tars: Buffer[], gzips: Buffer[]): Promise<void> {
  const { configBytes } = imageConfigFor(tars, { config: { Cmd: ['sh'] } });
  const layers = [];
  for (const gz of gzips) layers.push({ mediaType: 'application/vnd.docker.image.rootfs.diff.tar.gzip', size: gz.length, digest: await upload(port, gz) });
  const configDigest = await upload(port, configBytes);
  const manifest = Buffer.from(
    JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.docker.distribution.manifest.v2+json', config: { mediaType: 'application/vnd.docker.container.image.v1+json', size: configBytes.length, digest: configDigest }, layers }),
  );
  const put = await call(port, 'PUT', `/v2/${REPO}/manifests/${tag}`, { 'Content-Type': 'application/vnd.docker.distribution.manifest.v2+json' }, manifest);
  if (put.status !== 201) throw new Error(`manifest upload failed: ${put.status} ${put.body}`);
}

async function layer(seed: string, files: number): Promise<Buffer> {
  const spec: Record<string, Buffer> = {};
  for (let i = 0; i < files; i++) spec[`${seed}/f${i}`] = pseudoRandom(MB, `${seed}-${i}`);
  return layerTar({ files: spec });
}

const PLUGINS = ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', '@tsengine/registry-v2'];

/** One pull through an Engine API socket (ours or dockerd's), read to the end of its progress. */
async function pullThrough(socket: string, host: string, tag: string): Promise<number> {
  const t = performance.now();
  const r = await new Promise<{ status: number; body: string }>((resolvePull, reject) => {
    const req = http.request({ socketPath: socket, method: 'POST', path: `/images/create?fromImage=${encodeURIComponent(`${host}/${REPO}`)}&tag=${tag}` }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => (body += c.toString()));
      res.on('end', () => resolvePull({ status: res.statusCode ?? 0, body }));
    });
    req.on('error', reject);
    req.end();
  });
  if (r.status !== 200 || r.body.includes('"error"')) throw new Error(`pull through ${socket} failed: ${r.status} ${r.body.slice(-300)}`);
  return performance.now() - t;
}

/** The cold pull (tag a), then the one with 3 of 4 layers present (tag b), both removed afterwards. */
async function timePulls(socket: string, host: string): Promise<{ coldMs: number; warmMs: number }> {
  const cleanup = async () => {
    for (const tag of ['a', 'b']) await request(socket, 'DELETE', `/images/${host}/${REPO}:${tag}?force=1`).catch(() => undefined);
  };
  await cleanup();
  try {
    return { coldMs: await pullThrough(socket, host, 'a'), warmMs: await pullThrough(socket, host, 'b') };
  } finally {
    await cleanup();
  }
}

/** A registry holding tags a (4 layers) and b (the same but its top layer). */
export async function prepareRegistry(dir: string): Promise<{ port: number; child: ChildProcess }> {
  const registry = await startRegistry(dir);
  const tars: Buffer[] = [];
  for (let i = 0; i < 4; i++) tars.push(await layer(`p${i}`, 50));
  const top = await layer('p3b', 50);
  const gzips = tars.map((t) => gzipSync(t, { level: 1 }));
  const topGz = gzipSync(top, { level: 1 });
  await pushImage(registry.port, 'a', tars, gzips);
  await pushImage(registry.port, 'b', [...tars.slice(0, 3), top], [...gzips.slice(0, 3), topGz]);
  return registry;
}

/**
 * Pull of a ~200 MB, 4-layer image (gzip layers) from a local docker-registry: cold, then a second
 * image sharing all but its top layer. With dockerd reachable, the same pulls through it and the ratio.
 * Medians of RUNS, ours and the peer's taking turns so that both see the same background load; the
 * first of ours is also shown, as it alone pays for loading and compiling the code on the pull path.
 */
export async function benchPull(): Promise<void> {
  const dir = await mkdtemp(join(tmpdir(), 'tsengine-bench-registry-'));
  let registry: { port: number; child: ChildProcess } | undefined;
  const configFile = join(dir, 'daemon.json');
  let daemon: BenchDaemon | undefined;
  try {
    registry = await prepareRegistry(dir);
    const host = `127.0.0.1:${registry.port}`;
    const peer = await findPeer();
    // A daemon for the whole run, like the peer: its first pull alone pays for starting threads and
    // compiling the code on the pull path, and is shown on its own.
    writeFileSync(configFile, JSON.stringify({ plugins: PLUGINS, graphdriver: 'overlay' }));
    daemon = await startOurDaemon(configFile);
    const ourSocket = daemon.socket;
    const ours: Array<{ coldMs: number; warmMs: number }> = [];
    const peers: Array<{ coldMs: number; warmMs: number }> = [];
    // Turns alternate who goes first: a pull slows the one right after it (writeback, the daemon's cleanup).
    for (let i = 0; i < RUNS; i++) {
      const turns = [async () => ours.push(await timePulls(ourSocket, host)), async () => peer && peers.push(await timePulls(peer, host))];
      if (i % 2 === 1) turns.reverse();
      for (const turn of turns) {
        await settle();
        await turn();
      }
    }
    const peerMedian = (key: 'coldMs' | 'warmMs') => (peers.length ? median(peers.map((p) => p[key])) : undefined);
    const figures: Figure[] = [
      { name: `pull of a 4×50 MB image, cold (median of ${RUNS})`, unit: 'ms', ours: median(ours.map((o) => o.coldMs)), peer: peerMedian('coldMs'), lowerIsBetter: true },
      { name: 'pull of a 4×50 MB image, cold (a fresh daemon, first pull)', unit: 'ms', ours: ours[0]!.coldMs, peer: peers[0]?.coldMs, lowerIsBetter: true },
      { name: `pull with 3 of 4 layers present (median of ${RUNS})`, unit: 'ms', ours: median(ours.map((o) => o.warmMs)), peer: peerMedian('warmMs'), lowerIsBetter: true },
    ];
    printFigures('pull (overlay, local docker-registry)', figures);
    const list = (runs: Array<{ coldMs: number; warmMs: number }>, key: 'coldMs' | 'warmMs') => runs.map((r) => Math.round(r[key])).join(', ');
    console.log(`samples, cold: ours ${list(ours, 'coldMs')}${peers.length ? `; dockerd ${list(peers, 'coldMs')}` : ''}`);
    console.log(`samples, 3 of 4 present: ours ${list(ours, 'warmMs')}${peers.length ? `; dockerd ${list(peers, 'warmMs')}` : ''}`);
  } finally {
    await daemon?.stop();
    if (registry) await stopProcess(registry.child);
    await rm(dir, { recursive: true, force: true });
  }
}
