import { findPeer, median, peerPid, printFigures, requestsPerSecond, rssMiB, startOurDaemon, type Figure } from './harness.js';

/** Daemon cold start to first /_ping, idle RSS, and /_ping and /version requests per second. */
export async function benchDaemon(): Promise<void> {
  const starts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const daemon = await startOurDaemon();
    starts.push(daemon.startMs);
    await daemon.stop();
  }
  const daemon = await startOurDaemon();
  let figures: Figure[];
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const idleRss = rssMiB(daemon.process.pid!);
    const pingRps = await requestsPerSecond(daemon.socket, '/_ping');
    const versionRps = await requestsPerSecond(daemon.socket, '/version');
    figures = [
      { name: 'cold start to first /_ping (median of 5)', unit: 'ms', ours: median(starts), lowerIsBetter: true },
      { name: 'idle daemon RSS', unit: 'MiB', ours: idleRss, lowerIsBetter: true },
      { name: 'GET /_ping', unit: 'req/s', ours: pingRps, lowerIsBetter: false },
      { name: 'GET /version', unit: 'req/s', ours: versionRps, lowerIsBetter: false },
    ];
  } finally {
    await daemon.stop();
  }
  const peer = await findPeer();
  if (peer) {
    figures[2]!.peer = await requestsPerSecond(peer, '/_ping');
    figures[3]!.peer = await requestsPerSecond(peer, '/version');
    const pid = peerPid();
    if (pid) figures[1]!.peer = rssMiB(pid);
  }
  printFigures('daemon', figures);
  if (!peer) console.log('(dockerd not reachable: set DOCKER_PEER_SOCKET or run with --start-peer for side-by-side figures)');
}
