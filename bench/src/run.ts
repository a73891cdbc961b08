#!/usr/bin/env node
// npm run bench -- [name ...] [--start-peer]
// Each benchmark prints its own figures and, when dockerd is reachable, the peer's and the ratio.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchBuild } from './build.js';
import { benchContainers } from './containers.js';
import { benchDaemon } from './daemon.js';
import { benchExecNative } from './exec.js';
import { benchGraphDrivers } from './graphdriver.js';
import { benchImages } from './images.js';
import { benchNetwork } from './network.js';
import { benchPull } from './pull.js';
import { stopProcess, waitForPing } from './harness.js';

const benchmarks: Record<string, () => Promise<void>> = {
  daemon: benchDaemon,
  graphdriver: () => benchGraphDrivers(),
  images: benchImages,
  exec: benchExecNative,
  containers: benchContainers,
  network: benchNetwork,
  build: benchBuild,
  pull: benchPull,
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const names = args.filter((a) => !a.startsWith('--'));
  const unknown = names.filter((n) => !(n in benchmarks));
  if (unknown.length) {
    console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${Object.keys(benchmarks).join(', ')}`);
    process.exit(2);
  }
  const stopPeer = args.includes('--start-peer') ? await startPeer() : undefined;
  try {
    for (const name of names.length ? names : Object.keys(benchmarks)) await benchmarks[name]!();
  } finally {
    await stopPeer?.();
  }
}

/** Starts Debian's dockerd (if installed) on private paths; it is a peer for figures, never a dependency. */
async function startPeer(): Promise<(() => Promise<void>) | undefined> {
  const dockerd = ['/usr/sbin/dockerd', '/usr/bin/dockerd'].find((p) => existsSync(p));
  if (!dockerd) {
    console.log('--start-peer: dockerd is not installed (Debian package docker.io); running without a peer');
    return undefined;
  }
  const dir = mkdtempSync(join(tmpdir(), 'bench-dockerd-'));
  const socket = join(dir, 'docker.sock');
  const pidfile = join(dir, 'docker.pid');
  const child = spawn(dockerd, ['--data-root', join(dir, 'data'), '--exec-root', join(dir, 'exec'), '-H', `unix://${socket}`, '--pidfile', pidfile], { stdio: 'ignore' });
  await waitForPing(socket, 60_000);
  process.env.DOCKER_PEER_SOCKET = socket;
  process.env.DOCKER_PEER_PIDFILE = pidfile;
  return async () => {
    await stopProcess(child, 30_000);
    // dockerd leaves mounts (its netns files, overlay) under its roots; lazily unmount them, deepest first.
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
      .split('\n')
      .map((line) => line.split(' ')[4] ?? '')
      .filter((point) => point.startsWith(dir + '/'))
      .sort((a, b) => b.length - a.length);
    for (const point of mounts) spawnSync('umount', ['-l', point]);
    rmSync(dir, { recursive: true, force: true });
  };
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
