import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freeSubnets } from '@tsengine/test/dist/helpers/network.js';
import {
  apiRunRm,
  busyboxRootfsTar,
  deleteOrThrow,
  type Figure,
  findPeer,
  importImage,
  median,
  postJson,
  printFigures,
  startOurDaemon,
  timeAsyncMs,
} from './harness.js';

const RUNS = 20;
const IMAGE = 'tsengine-bench-busybox:latest';
const MODES = ['bridge', 'none', 'host'] as const;
type Mode = (typeof MODES)[number];

interface Measured {
  runRm: Record<Mode, number>;
  networkCreate: number;
  networkRemove: number;
}

/** Runs `run --rm IMAGE true` in each network mode, interleaved so that load drifts hit every mode alike. */
async function measure(socket: string, tar: Buffer, subnet: string, label: string, networkIds: string[] = []): Promise<Measured> {
  await importImage(socket, tar, IMAGE.split(':')[0]!);
  try {
    const times: Record<Mode, number[]> = { bridge: [], none: [], host: [] };
    const run = async (mode: Mode) => {
      const code = await apiRunRm(socket, { Image: IMAGE, Cmd: ['true'], HostConfig: { NetworkMode: mode } });
      if (code !== 0) throw new Error(`run --rm --network ${mode} ${IMAGE} true exited with ${code} (${label})`);
    };
    for (const mode of MODES) await run(mode);
    for (let i = 0; i < RUNS; i++) for (const mode of MODES) times[mode].push(await timeAsyncMs(() => run(mode)));

    const creates: number[] = [];
    const removes: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const name = `tsengine-bench-net-${process.pid}-${i}`;
      let id = '';
      creates.push(
        await timeAsyncMs(async () => {
          const body = { Name: name, Driver: 'bridge', CheckDuplicate: true, IPAM: { Driver: 'default', Config: [{ Subnet: `${subnet}.0/24` }] } };
          id = (JSON.parse(await postJson(socket, '/networks/create', body, [201])) as { Id: string }).Id;
          networkIds.push(id);
        }),
      );
      removes.push(await timeAsyncMs(() => deleteOrThrow(socket, `/networks/${id}`)));
    }
    return {
      runRm: { bridge: median(times.bridge), none: median(times.none), host: median(times.host) },
      networkCreate: median(creates),
      networkRemove: median(removes),
    };
  } finally {
    await deleteOrThrow(socket, `/images/${IMAGE}`).catch((err: unknown) => console.error(`cleanup: ${String(err)}`));
  }
}

function linkExists(name: string): boolean {
  try {
    execFileSync('ip', ['link', 'show', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Our bridges (default and user-defined `tse-*` made during the run) and every iptables line naming one. */
export function leftovers(bridges: string[], dir: string): { links: string[]; rules: Array<[string, string]>; mounts: string[] } {
  const links = execFileSync('ip', ['-o', 'link', 'show'], { encoding: 'utf8' })
    .split('\n')
    .map((l) => l.split(': ')[1]?.split('@')[0] ?? '')
    .filter((n) => bridges.includes(n));
  const rules: Array<[string, string]> = [];
  for (const table of ['filter', 'nat']) {
    for (const line of execFileSync('iptables', ['-w', '-t', table, '-S'], { encoding: 'utf8' }).split('\n')) {
      if (bridges.some((bridge) => line.includes(bridge))) rules.push([table, line]);
    }
  }
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4] ?? '')
    .filter((m) => m.startsWith(dir + '/'));
  return { links, rules, mounts };
}

/** Removes what a crashed or buggy daemon left behind, and says so: the bench must leave the host as it found it. */
export function sweep(found: ReturnType<typeof leftovers>): void {
  const attempt = (command: string, args: string[]) => {
    try {
      execFileSync(command, args, { stdio: 'ignore' });
    } catch {
      console.error(`warning: could not undo: ${command} ${args.join(' ')}`);
    }
  };
  for (const mount of [...found.mounts].reverse()) attempt('umount', ['-l', mount]);
  for (const [table, line] of found.rules.filter(([, l]) => l.startsWith('-A '))) attempt('iptables', ['-w', '-t', table, ...line.replace(/^-A /, '-D ').split(' ')]);
  for (const [table, line] of found.rules.filter(([, l]) => l.startsWith('-N '))) attempt('iptables', ['-w', '-t', table, '-X', line.slice(3)]);
  for (const link of found.links) attempt('ip', ['link', 'del', link]);
}

/**
 * Per-container network set-up cost: `run --rm busybox true` through the API with --network
 * bridge, none and host (median of 20 each); bridge − none is what a veth, an address and the
 * firewall cost, none − host what a fresh namespace with loopback costs. Also `network create`
 * and `network rm` of a user-defined bridge. Our daemon gets its own bridge name and a subnet no
 * host route overlaps; everything is removed at the end and checked.
 */
export async function benchNetwork(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tsengine-bench-network-'));
  const config = join(dir, 'tsengine.json');
  const subnets = freeSubnets(4);
  const subnet = (i: number) => subnets[i]!;
  const defaultBridge = `tsb${randomBytes(3).toString('hex')}`;
  const plugins = [
    '@tsengine/api-server',
    '@tsengine/system',
    '@tsengine/images',
    '@tsengine/graphdriver-overlay',
    '@tsengine/exec-native',
    { plugin: '@tsengine/networks', options: { bip: `${subnet(0)}.1/24`, 'bridge-name': defaultBridge } },
    '@tsengine/net-bridge',
    '@tsengine/net-host',
    '@tsengine/containers',
  ];
  writeFileSync(config, JSON.stringify({ plugins, graphdriver: 'overlay' }));
  const tar = busyboxRootfsTar();
  let ours: Measured;
  const networkIds: string[] = [];
  const ourBridges = () => [defaultBridge, ...networkIds.map((id) => `tse-${id.slice(0, 11)}`)];
  const daemon = await startOurDaemon(config);
  const daemonDir = join(daemon.socket, '..', '..');
  try {
    ours = await measure(daemon.socket, tar, subnet(1), 'tsengine', networkIds);
  } finally {
    const mountsBeforeStop = leftovers(ourBridges(), daemonDir).mounts;
    if (mountsBeforeStop.length) {
      // netns bind mounts still held would make the folder removal fail; the daemon should have dropped them.
      console.error(`warning: ${mountsBeforeStop.length} mount(s) still under ${daemonDir} before shutdown`);
    }
    await daemon.stop().catch((err: unknown) => console.error(`stopping the daemon: ${String(err)}`));
    rmSync(dir, { recursive: true, force: true });
    const found = leftovers(ourBridges(), daemonDir);
    if (found.links.length || found.rules.length || found.mounts.length) {
      console.error(`warning: the daemon left ${found.links.length} bridge(s), ${found.rules.length} iptables line(s), ${found.mounts.length} mount(s); removing them`);
      sweep(found);
    }
  }
  const figures: Figure[] = [
    ...MODES.map((mode): Figure => ({ name: `run --rm --network ${mode} busybox true (API, median of ${RUNS})`, unit: 'ms', ours: ours.runRm[mode], lowerIsBetter: true })),
    { name: 'bridge set-up cost (bridge − none)', unit: 'ms', ours: ours.runRm.bridge - ours.runRm.none, lowerIsBetter: true },
    { name: 'namespace set-up cost (none − host)', unit: 'ms', ours: ours.runRm.none - ours.runRm.host, lowerIsBetter: true },
    { name: `network create (bridge, median of ${RUNS})`, unit: 'ms', ours: ours.networkCreate, lowerIsBetter: true },
    { name: `network rm (median of ${RUNS})`, unit: 'ms', ours: ours.networkRemove, lowerIsBetter: true },
  ];
  const peer = await findPeer();
  if (peer) {
    const theirs = await measure(peer, tar, subnet(2), 'dockerd');
    const values = [...MODES.map((m) => theirs.runRm[m]), theirs.runRm.bridge - theirs.runRm.none, theirs.runRm.none - theirs.runRm.host, theirs.networkCreate, theirs.networkRemove];
    values.forEach((v, i) => (figures[i]!.peer = v));
  }
  printFigures('network (per-container set-up through the API)', figures);
  if (!peer) console.log('(dockerd not reachable: set DOCKER_PEER_SOCKET or run with --start-peer for side-by-side figures)');
}
