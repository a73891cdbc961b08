import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { layerTar } from '@tsengine/test';
import { type Figure, findPeer, median, postBody, printFigures, pseudoRandom, request, startOurDaemon } from './harness.js';

const RUNS = 3;
const PLUGINS = ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', '@tsengine/exec-native', '@tsengine/containers', '@tsengine/builder'];

/** Ten steps: metadata, two COPYs (one of 4 MB) and three RUNs. */
const DOCKERFILE = [
  'FROM tsengine-bench-base:1',
  'ENV APP=/app',
  'WORKDIR /app',
  'COPY notes.txt ./',
  'COPY blob.bin ./',
  'RUN cat notes.txt > copy.txt',
  'RUN dd if=blob.bin of=half.bin bs=1024 count=2048 2>/dev/null',
  'RUN echo built > /stamp',
  'LABEL bench=build',
  'CMD ["cat", "/stamp"]',
].join('\n');

async function baseRootfs(): Promise<Buffer> {
  const files: Record<string, { content: Buffer; mode: number } | { symlink: string } | { dir: true; mode?: number }> = {
    'bin/busybox': { content: readFileSync('/bin/busybox'), mode: 0o755 },
    tmp: { dir: true, mode: 0o1777 },
    etc: { dir: true },
  };
  for (const applet of ['sh', 'cat', 'dd', 'echo']) files[`bin/${applet}`] = { symlink: 'busybox' };
  return layerTar({ files });
}

/** POSTs a build and reads the stream to its end; returns the final image ID or throws the stream's error. */
function postBuild(socket: string, query: string, context: Buffer): Promise<string> {
  return new Promise((resolveBuild, reject) => {
    const req = http.request({ socketPath: socket, method: 'POST', path: `/build?${query}`, headers: { 'Content-Type': 'application/x-tar', 'Content-Length': context.length } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        if (res.statusCode !== 200) return reject(new Error(`build answered ${res.statusCode}: ${text}`));
        let id = '';
        for (const line of text.split('\n').filter(Boolean)) {
          const message = JSON.parse(line) as { aux?: { ID?: string }; error?: string };
          if (message.error) return reject(new Error(`build failed: ${message.error}`));
          if (message.aux?.ID) id = message.aux.ID;
        }
        if (!id) return reject(new Error(`build stream without an image ID: ${text.slice(-500)}`));
        resolveBuild(id);
      });
    });
    req.on('error', reject);
    req.end(context);
  });
}

async function timeBuilds(socket: string, context: Buffer, built: string[]): Promise<{ coldMs: number; cachedMs: number }> {
  const cold: number[] = [];
  const cached: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    built.push(await postBuild(socket, 'nocache=1&networkmode=none&rm=1', context));
    cold.push(performance.now() - t);
  }
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    built.push(await postBuild(socket, 'networkmode=none&rm=1', context));
    cached.push(performance.now() - t);
  }
  return { coldMs: median(cold), cachedMs: median(cached) };
}

/**
 * The same 10-step Dockerfile built cold (--no-cache) and with every step cached, medians of 3, on our
 * daemon (overlay) and, when dockerd is reachable, with its legacy builder (networkmode=none for both).
 */
export async function benchBuild(): Promise<void> {
  const base = await baseRootfs();
  const context = await layerTar({ files: { Dockerfile: DOCKERFILE, 'notes.txt': 'bench notes\n'.repeat(100), 'blob.bin': pseudoRandom(4 * 1024 * 1024, 'build-bench') } });
  const importPath = `/images/create?fromSrc=-&repo=tsengine-bench-base&tag=1&changes=${encodeURIComponent('CMD ["sh"]')}`;

  const configFile = join(tmpdir(), `tsengine-bench-build-${process.pid}.json`);
  writeFileSync(configFile, JSON.stringify({ plugins: PLUGINS, graphdriver: 'overlay' }));
  const daemon = await startOurDaemon(configFile);
  let ours: { coldMs: number; cachedMs: number };
  try {
    const imported = await postBody(daemon.socket, importPath, base);
    if (imported.status !== 200) throw new Error(`import failed: ${imported.body}`);
    ours = await timeBuilds(daemon.socket, context, []);
  } finally {
    await daemon.stop();
    rmSync(configFile, { force: true });
  }

  const peer = await findPeer();
  let peerMs: { coldMs: number; cachedMs: number } | undefined;
  if (peer) {
    const built: string[] = [];
    try {
      const imported = await postBody(peer, importPath, base);
      if (imported.status !== 200) throw new Error(`peer import failed: ${imported.body}`);
      peerMs = await timeBuilds(peer, context, built);
    } finally {
      // Only what this benchmark made: each built image (untagged parents go with it), then the base.
      for (const id of [...new Set(built)].reverse()) await request(peer, 'DELETE', `/images/${id}?force=1`).catch(() => undefined);
      await request(peer, 'DELETE', '/images/tsengine-bench-base:1?force=1').catch(() => undefined);
    }
  }
  const figures: Figure[] = [
    { name: '10-step build, cold (--no-cache, median of 3)', unit: 'ms', ours: ours.coldMs, peer: peerMs?.coldMs, lowerIsBetter: true },
    { name: '10-step build, fully cached (median of 3)', unit: 'ms', ours: ours.cachedMs, peer: peerMs?.cachedMs, lowerIsBetter: true },
  ];
  printFigures('build (legacy builder API, overlay)', figures);
  if (!peer) console.log('(dockerd not reachable: set DOCKER_PEER_SOCKET or run with --start-peer for side-by-side figures)');
}
