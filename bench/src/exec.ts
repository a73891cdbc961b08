import { copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerSpec } from '@tsengine/core';
import { NativeExecDriver } from '@tsengine/exec-native';
import { median, printFigures } from './harness.js';

const RUNS = 20;
const IDLE = 20;

/** A rootfs with just the busybox applets the benchmark runs. */
function makeRootfs(dir: string): void {
  for (const d of ['bin', 'etc', 'tmp', 'proc', 'sys', 'dev']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync('/bin/busybox', join(dir, 'bin/busybox'));
  for (const applet of ['sh', 'true', 'sleep']) symlinkSync('busybox', join(dir, 'bin', applet));
}

function spec(id: string, rootfs: string, args: string[]): ContainerSpec {
  return {
    id,
    rootfs,
    process: { args, env: ['PATH=/bin'], cwd: '/', user: '', terminal: false },
    hostname: id.slice(0, 12),
    readonlyRootfs: false,
    privileged: false,
    capAdd: [],
    capDrop: [],
    noNewPrivileges: false,
    mounts: [],
    network: { mode: 'none' },
    resources: {},
  };
}

const drain = (s: Readable | undefined) => s?.resume();

/**
 * Sequential start→exit of `true` through the native exec driver (no daemon, no API), and the
 * daemon-side memory each idle running container costs (there is no shim process).
 */
export async function benchExecNative(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'tsengine-bench-exec-'));
  const rootfs = join(dir, 'rootfs');
  makeRootfs(rootfs);
  const driver = new NativeExecDriver({ cgroupParent: `tsengine-bench-${process.pid}` });
  const ids: string[] = [];
  try {
    const times: number[] = [];
    for (let i = 0; i <= RUNS; i++) {
      const id = `bench-true-${i}`;
      const t0 = process.hrtime.bigint();
      const p = await driver.start(spec(id, rootfs, ['true']), { stdin: false });
      drain(p.stdout);
      drain(p.stderr);
      await p.exited;
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      await driver.destroy(id);
      if (i > 0) times.push(ms); // the first run warms caches
    }
    const total = times.reduce((a, b) => a + b, 0);

    global.gc?.();
    await sleep(100);
    const before = process.memoryUsage().rss;
    for (let i = 0; i < IDLE; i++) {
      const id = `bench-idle-${i}`;
      ids.push(id);
      const p = await driver.start(spec(id, rootfs, ['sleep', '600']), { stdin: false });
      drain(p.stdout);
      drain(p.stderr);
    }
    global.gc?.();
    await sleep(200);
    const after = process.memoryUsage().rss;

    printFigures('exec driver (native)', [
      { name: `${RUNS} sequential start→exit of true`, unit: 'ms', ours: total, lowerIsBetter: true },
      { name: 'start→exit per container (median)', unit: 'ms', ours: median(times), lowerIsBetter: true },
      { name: 'daemon RSS growth per idle container', unit: 'KiB', ours: Math.max(0, after - before) / IDLE / 1024, lowerIsBetter: true },
    ]);
  } finally {
    for (const id of ids) await driver.destroy(id).catch(() => undefined);
    driver.removeCgroupParent();
    driver.close();
    rmSync(dir, { recursive: true, force: true });
  }
}
