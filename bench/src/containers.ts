import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Figure, findPeer, median, peerPid, printFigures, rssMiB, startOurDaemon } from './harness.js';

const RUNS = 20;
const DETACHED = 20;
const IMAGE = 'tsengine-bench-busybox:latest';
const PLUGINS = ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', '@tsengine/exec-native', '@tsengine/logdriver-json-file', '@tsengine/containers'];

function dockerCli(socket: string, args: string[], input?: Buffer): string {
  const r = spawnSync('docker', args, { env: { ...process.env, DOCKER_HOST: `unix://${socket}` }, input, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')} (${socket}) failed with ${r.status}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

/** A busybox rootfs with the applets the benchmark runs, as a tar for `docker import`. */
function busyboxTar(): Buffer {
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

function timeMs(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

/** RSS (MiB) of every process whose command line names a containerd shim: docker's per-container helpers. */
function shimRssMiB(): number {
  let total = 0;
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      if (readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('containerd-shim')) total += rssMiB(Number(pid));
    } catch {
      // gone
    }
  }
  return total;
}

interface Measured {
  runRm: number;
  runDetached: number;
  perContainerMiB: number;
}

function measure(socket: string, daemonPid: number | undefined, tar: Buffer, helpersMiB: () => number): Measured {
  dockerCli(socket, ['import', '-', IMAGE], tar);
  const names: string[] = [];
  try {
    dockerCli(socket, ['run', '--rm', IMAGE, 'true']);
    const times: number[] = [];
    for (let i = 0; i < RUNS; i++) times.push(timeMs(() => dockerCli(socket, ['run', '--rm', IMAGE, 'true'])));
    const rssBefore = (daemonPid ? rssMiB(daemonPid) : 0) + helpersMiB();
    const detached: number[] = [];
    for (let i = 0; i < DETACHED; i++) {
      const name = `tsengine-bench-${process.pid}-${i}`;
      names.push(name);
      detached.push(timeMs(() => dockerCli(socket, ['run', '-d', '--name', name, IMAGE, 'sleep', '600'])));
    }
    const rssAfter = (daemonPid ? rssMiB(daemonPid) : 0) + helpersMiB();
    return { runRm: median(times), runDetached: detached.reduce((a, b) => a + b, 0), perContainerMiB: (rssAfter - rssBefore) / DETACHED };
  } finally {
    if (names.length) dockerCli(socket, ['rm', '-f', ...names]);
    dockerCli(socket, ['rmi', IMAGE]);
  }
}

/**
 * `docker run --rm busybox true` through the real CLI (median of 20), 20 sequential `run -d`, and
 * the host memory each running container costs (daemon RSS growth plus helper processes).
 */
export async function benchContainers(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tsengine-bench-containers-'));
  const config = join(dir, 'tsengine.json');
  writeFileSync(config, JSON.stringify({ plugins: PLUGINS, graphdriver: 'overlay' }));
  const tar = busyboxTar();
  const daemon = await startOurDaemon(config);
  let ours: Measured;
  try {
    ours = measure(daemon.socket, daemon.process.pid, tar, () => 0);
  } finally {
    await daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
  const figures: Figure[] = [
    { name: `docker run --rm busybox true (median of ${RUNS})`, unit: 'ms', ours: ours.runRm, lowerIsBetter: true },
    { name: `${DETACHED} sequential docker run -d`, unit: 'ms', ours: ours.runDetached, lowerIsBetter: true },
    { name: 'host memory per running container', unit: 'MiB', ours: ours.perContainerMiB, lowerIsBetter: true },
  ];
  const peer = await findPeer();
  if (peer) {
    const theirs = measure(peer, peerPid(), tar, shimRssMiB);
    figures[0]!.peer = theirs.runRm;
    figures[1]!.peer = theirs.runDetached;
    figures[2]!.peer = theirs.perContainerMiB;
  }
  printFigures('containers (through the docker CLI)', figures);
  if (!peer) console.log('(dockerd not reachable: set DOCKER_PEER_SOCKET or run with --start-peer for side-by-side figures)');
}
