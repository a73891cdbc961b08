import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { freeSubnets } from '@tsengine/test/dist/helpers/network.js';
import {
  apiRunRm,
  busyboxRootfsTar,
  childPids,
  type Figure,
  findPeer,
  median,
  peerPid,
  postJson,
  printFigures,
  request,
  rssMiB,
  startOurDaemon,
  timeAsyncMs,
} from './harness.js';
import { leftovers, sweep } from './network.js';

const RUNS = 20;
const DETACHED = 20;
const IDLE = 100;
const IMAGE = 'tsengine-bench-busybox:latest';
/** Issue #4's targets. */
const TIME_TARGET_RATIO = 0.25;
const MEMORY_TARGET_MIB = 0.5;

function dockerCli(socket: string, args: string[], input?: Buffer): string {
  const r = spawnSync('docker', args, { env: { ...process.env, DOCKER_HOST: `unix://${socket}` }, input, maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0) throw new Error(`docker ${args.join(' ')} (${socket}) failed with ${r.status}: ${r.stderr.toString()}`);
  return r.stdout.toString();
}

function timeMs(fn: () => void): number {
  const t0 = process.hrtime.bigint();
  fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

function safeRss(pid: number): number {
  try {
    return rssMiB(pid);
  } catch {
    return 0; // gone
  }
}

async function containerPid(socket: string, id: string): Promise<number> {
  const res = await request(socket, 'GET', `/containers/${id}/json`);
  return (JSON.parse(res.body) as { State: { Pid: number } }).State.Pid;
}

/**
 * What a running container costs on the host besides its own processes: for us, any child of the
 * daemon that is not a container's PID 1 (there should be none: no shim); for docker, its
 * containerd (a child of dockerd) and one containerd-shim per container (reparented, found by `-id`).
 */
type HelpersRss = (containerIds: string[], containerPids: number[]) => number;

function ourHelpersRss(daemonPid: number): HelpersRss {
  return (_ids, pids) => childPids(daemonPid).filter((p) => !pids.includes(p)).reduce((sum, p) => sum + safeRss(p), 0);
}

function dockerHelpersRss(dockerdPid: number | undefined): HelpersRss {
  return (ids) => {
    let total = 0;
    if (dockerdPid) for (const p of childPids(dockerdPid)) if (readCmdline(p).includes('containerd')) total += safeRss(p);
    for (const entry of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
      const cmdline = readCmdline(Number(entry));
      if (cmdline.includes('containerd-shim') && ids.some((id) => cmdline.includes(id))) total += safeRss(Number(entry));
    }
    return total;
  };
}

function readCmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

interface Measured {
  idleDaemonMiB: number;
  idleHelpersMiB: number;
  runRmCli: number;
  runRmApi: number;
  runDetachedTotal: number;
  runDetachedMedian: number;
  perContainerMiB: number;
  daemonGrowthMiB: number;
  helpersGrowthMiB: number;
}

async function measure(socket: string, daemonPid: number | undefined, tar: Buffer, helpers: HelpersRss): Promise<Measured> {
  await sleep(1000);
  const idleDaemonMiB = daemonPid ? safeRss(daemonPid) : 0;
  const idleHelpersMiB = helpers([], []);
  dockerCli(socket, ['import', '-', IMAGE], tar);
  const names: string[] = [];
  try {
    dockerCli(socket, ['run', '--rm', IMAGE, 'true']);
    await apiRunRm(socket, { Image: IMAGE, Cmd: ['true'] });
    const cliTimes: number[] = [];
    const apiTimes: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      cliTimes.push(timeMs(() => dockerCli(socket, ['run', '--rm', IMAGE, 'true'])));
      apiTimes.push(
        await timeAsyncMs(async () => {
          const code = await apiRunRm(socket, { Image: IMAGE, Cmd: ['true'] });
          if (code !== 0) throw new Error(`run --rm ${IMAGE} true exited with ${code}`);
        }),
      );
    }

    await sleep(500);
    const daemonBefore = daemonPid ? safeRss(daemonPid) : 0;
    const helpersBefore = helpers([], []);
    const ids: string[] = [];
    const detached: number[] = [];
    for (let i = 0; i < IDLE; i++) {
      const name = `tsengine-bench-${process.pid}-${i}`;
      names.push(name);
      if (i < DETACHED) {
        detached.push(timeMs(() => ids.push(dockerCli(socket, ['run', '-d', '--name', name, IMAGE, 'sleep', '600']).trim())));
      } else {
        // Only the first ones are timed through the CLI; the rest just fill the host, faster through the API.
        const { Id } = JSON.parse(await postJson(socket, `/containers/create?name=${name}`, { Image: IMAGE, Cmd: ['sleep', '600'] }, [201])) as { Id: string };
        ids.push(Id);
        await postJson(socket, `/containers/${Id}/start`, {}, [204]);
      }
    }
    const pids = await Promise.all(ids.map((id) => containerPid(socket, id)));
    await sleep(2000);
    const daemonAfter = daemonPid ? safeRss(daemonPid) : 0;
    const helpersAfter = helpers(ids, pids);
    return {
      idleDaemonMiB,
      idleHelpersMiB,
      runRmCli: median(cliTimes),
      runRmApi: median(apiTimes),
      runDetachedTotal: detached.reduce((a, b) => a + b, 0),
      runDetachedMedian: median(detached),
      perContainerMiB: (daemonAfter - daemonBefore + helpersAfter - helpersBefore) / IDLE,
      daemonGrowthMiB: daemonAfter - daemonBefore,
      helpersGrowthMiB: helpersAfter - helpersBefore,
    };
  } finally {
    for (let i = 0; i < names.length; i += 25) {
      try {
        dockerCli(socket, ['rm', '-f', ...names.slice(i, i + 25)]);
      } catch (err) {
        console.error(`cleanup: ${String(err)}`);
      }
    }
    dockerCli(socket, ['rmi', IMAGE]);
  }
}

function verdict(met: boolean | undefined): string {
  return met === undefined ? 'cannot judge without a peer' : met ? 'MET' : 'NOT met';
}

/**
 * Issue #4's container figures: `run --rm busybox true` through the docker CLI and through the API
 * (median of 20 each), 20 sequential `run -d`, host memory per running container with 100 idle
 * containers (daemon RSS growth plus helper processes), idle daemon RSS; with a peer, its figures
 * and the ratios; then the targets and whether they are met. Our daemon runs with the bridge
 * network (like dockerd's default) on its own bridge name and a subnet no host route overlaps.
 */
export async function benchContainers(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tsengine-bench-containers-'));
  const config = join(dir, 'tsengine.json');
  const [block] = freeSubnets(1);
  const bridge = `tsb${randomBytes(3).toString('hex')}`;
  const plugins = [
    '@tsengine/api-server',
    '@tsengine/system',
    '@tsengine/images',
    '@tsengine/graphdriver-overlay',
    '@tsengine/exec-native',
    '@tsengine/logdriver-json-file',
    { plugin: '@tsengine/networks', options: { bip: `${block}.1/24`, 'bridge-name': bridge } },
    '@tsengine/net-bridge',
    '@tsengine/net-host',
    '@tsengine/containers',
  ];
  writeFileSync(config, JSON.stringify({ plugins, graphdriver: 'overlay' }));
  const tar = busyboxRootfsTar();
  const daemon = await startOurDaemon(config);
  const daemonDir = join(daemon.socket, '..', '..');
  let ours: Measured;
  try {
    ours = await measure(daemon.socket, daemon.process.pid, tar, ourHelpersRss(daemon.process.pid!));
  } finally {
    await daemon.stop().catch((err: unknown) => console.error(`stopping the daemon: ${String(err)}`));
    rmSync(dir, { recursive: true, force: true });
    const found = leftovers([bridge], daemonDir);
    if (found.links.length || found.rules.length || found.mounts.length) {
      console.error(`warning: the daemon left ${found.links.length} bridge(s), ${found.rules.length} iptables line(s), ${found.mounts.length} mount(s); removing them`);
      sweep(found);
    }
  }
  const row = (name: string, unit: string, pick: (m: Measured) => number): [Figure, (m: Measured) => number] => [{ name, unit, ours: pick(ours), lowerIsBetter: true }, pick];
  const rows = [
    row(`docker run --rm busybox true, docker CLI (median of ${RUNS})`, 'ms', (m) => m.runRmCli),
    row(`run --rm busybox true, API (median of ${RUNS})`, 'ms', (m) => m.runRmApi),
    row(`${DETACHED} sequential docker run -d (total)`, 'ms', (m) => m.runDetachedTotal),
    row(`docker run -d (median of ${DETACHED})`, 'ms', (m) => m.runDetachedMedian),
    row(`host memory per running container (${IDLE} idle)`, 'MiB', (m) => m.perContainerMiB),
    row(`  daemon RSS growth, ${IDLE} containers`, 'MiB', (m) => m.daemonGrowthMiB),
    row(`  helper processes' RSS growth, ${IDLE} containers`, 'MiB', (m) => m.helpersGrowthMiB),
    row('idle daemon RSS', 'MiB', (m) => m.idleDaemonMiB),
    row('idle daemon + helpers RSS (docker: containerd)', 'MiB', (m) => m.idleDaemonMiB + m.idleHelpersMiB),
  ];
  const peer = await findPeer();
  if (peer) {
    const pid = peerPid();
    const theirs = await measure(peer, pid, tar, dockerHelpersRss(pid));
    for (const [figure, pick] of rows) figure.peer = pick(theirs);
  }
  const figures = rows.map(([f]) => f);
  printFigures('containers', figures);
  if (!peer) console.log('(dockerd not reachable: set DOCKER_PEER_SOCKET or run with --start-peer for side-by-side figures)');
  const cli = figures[0]!;
  const timeRatio = cli.peer ? cli.ours / cli.peer : undefined;
  console.log(
    `target: docker run --rm at most ${TIME_TARGET_RATIO}x dockerd's time: ${timeRatio === undefined ? '-' : `${timeRatio.toFixed(2)}x`} → ${verdict(timeRatio === undefined ? undefined : timeRatio <= TIME_TARGET_RATIO)}`,
  );
  console.log(`target: host memory per running container under ${MEMORY_TARGET_MIB} MiB: ${ours.perContainerMiB.toFixed(2)} MiB → ${verdict(ours.perContainerMiB < MEMORY_TARGET_MIB)}`);
}
