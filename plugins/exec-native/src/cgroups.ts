import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ContainerStats, ResourceSpec } from '@tsengine/core';

/** One container's control group, on whichever cgroup version the host runs. */
export interface Cgroup {
  /** Creates the group(s) and writes the limits; throws with the file that refused a value. */
  create(resources: ResourceSpec, privileged: boolean): void;
  /** Writes the limits (and, unprivileged, the device rules) of an existing group. */
  limit(resources: ResourceSpec, privileged: boolean): void;
  /**
   * Gives the group, with its processes, another id under the same parent (a rename: unlike moving
   * processes, it waits for no RCU grace period). The target must not exist.
   */
  rename(id: string): void;
  /**
   * Moves a process (all its threads) into the group. `background` moves it one hierarchy at a
   * time, keeping the thread pool free for work that someone waits for.
   */
  addProcess(pid: number, background?: boolean): Promise<void>;
  pids(): number[];
  /** Sets (or, with undefined/0/-1, lifts) the pids limit of an existing group. */
  setPidsLimit(limit: number | undefined): void;
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  /** How many times the OOM killer killed a process in this group. */
  oomKills(): number;
  stats(): ContainerStats;
  /** SIGKILLs every process in the group and waits until it is empty. */
  killAll(): Promise<void>;
  /** Removes the group (after killAll); no error when it is already gone. */
  remove(): void;
  exists(): boolean;
}

export interface CgroupHost {
  version: '1' | '2';
  /** Group for a container id. */
  group(id: string): Cgroup;
  /** Container ids that have a group under our parent. */
  ids(): string[];
  /** Which limits this host can enforce. */
  features(): { memoryLimit: boolean; swapLimit: boolean; pidsLimit: boolean; cpuCfs: boolean; cpuShares: boolean; cpuSet: boolean; freezer: boolean };
  /** Removes the parent group if it is empty (tests). */
  removeParent(): void;
}

const V1_CONTROLLERS = ['cpu', 'cpuacct', 'cpuset', 'memory', 'pids', 'freezer', 'devices', 'blkio'] as const;
type V1Controller = (typeof V1_CONTROLLERS)[number];

/**
 * Finds how cgroups are mounted: v2 when /sys/fs/cgroup is cgroup2 itself (or no v1 controller is
 * mounted but a cgroup2 one is), else v1 with a mount point per controller from mountinfo.
 */
export function detectCgroups(parent: string): CgroupHost {
  if (!/^[A-Za-z0-9][A-Za-z0-9_.\-/]*$/.test(parent) || parent.split('/').includes('..')) throw new Error(`invalid cgroup parent ${JSON.stringify(parent)}`);
  const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  const v1 = new Map<V1Controller, string>();
  let v2Root: string | undefined;
  for (const line of mountinfo) {
    const [left, right] = line.split(' - ');
    if (!left || !right) continue;
    const mountPoint = unescapeMount(left.split(' ')[4]!);
    const [fstype, , superOptions = ''] = right.split(' ');
    if (fstype === 'cgroup2' && (v2Root === undefined || mountPoint === '/sys/fs/cgroup')) v2Root = mountPoint;
    if (fstype === 'cgroup') {
      for (const option of superOptions.split(',')) {
        if ((V1_CONTROLLERS as readonly string[]).includes(option) && !v1.has(option as V1Controller)) v1.set(option as V1Controller, mountPoint);
      }
    }
  }
  if (v1.has('memory') || v1.has('pids') || v1.has('cpu')) return new CgroupV1Host(v1, parent);
  if (v2Root && existsSync(join(v2Root, 'cgroup.controllers'))) return new CgroupV2Host(v2Root, parent);
  throw new Error('no usable cgroup hierarchy: neither v1 controllers nor a cgroup2 mount with controllers');
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, oct: string) => String.fromCharCode(parseInt(oct, 8)));
}

function readText(path: string): string {
  return readFileSync(path, 'utf8').trim();
}

function readNumber(path: string): number | undefined {
  try {
    const text = readText(path);
    if (text === 'max') return undefined;
    return Number(text);
  } catch {
    return undefined;
  }
}

function write(path: string, value: string | number): void {
  try {
    writeFileSync(path, String(value));
  } catch (err) {
    throw new Error(`cgroup: writing ${JSON.stringify(String(value))} to ${path}: ${(err as Error).message}`, { cause: err });
  }
}

async function writeAsync(path: string, value: string | number): Promise<void> {
  try {
    await writeFile(path, String(value));
  } catch (err) {
    throw new Error(`cgroup: writing ${JSON.stringify(String(value))} to ${path}: ${(err as Error).message}`, { cause: err });
  }
}

function keyValues(path: string): Record<string, number> {
  const out: Record<string, number> = {};
  try {
    for (const line of readText(path).split('\n')) {
      const [key, value] = line.split(/\s+/);
      if (key && value !== undefined) out[key] = Number(value);
    }
  } catch {
    // missing file: no figures
  }
  return out;
}

function readPids(path: string): number[] {
  try {
    return readText(path).split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** Host CPU time since boot in nanoseconds, Docker's system_cpu_usage (from /proc/stat, USER_HZ = 100). */
function systemCpuUsage(): number {
  const line = readFileSync('/proc/stat', 'utf8').split('\n').find((l) => l.startsWith('cpu '));
  if (!line) return 0;
  const ticks = line.trim().split(/\s+/).slice(1, 8).reduce((sum, v) => sum + Number(v), 0);
  return ticks * 1e7;
}

async function waitEmpty(pids: () => number[], what: string): Promise<void> {
  for (let i = 0; i < 500; i++) {
    if (pids().length === 0) return;
    await sleep(10);
  }
  throw new Error(`cgroup ${what} still has processes ${pids().join(' ')} after SIGKILL`);
}

function killPids(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

/** Docker's default device rules: mknod anything, use only the harmless nodes and ptys. */
const DEFAULT_DEVICE_RULES = ['c *:* m', 'b *:* m', 'c 1:3 rwm', 'c 1:5 rwm', 'c 1:7 rwm', 'c 1:8 rwm', 'c 1:9 rwm', 'c 5:0 rwm', 'c 5:1 rwm', 'c 5:2 rwm', 'c 136:* rwm', 'c 10:200 rwm'];

class CgroupV1Host implements CgroupHost {
  readonly version = '1' as const;
  constructor(
    private readonly mounts: Map<V1Controller, string>,
    private readonly parent: string,
  ) {}

  group(id: string): Cgroup {
    return new CgroupV1(this.mounts, this.parent, id);
  }

  ids(): string[] {
    const base = this.mounts.get('pids') ?? this.mounts.get('memory') ?? [...this.mounts.values()][0]!;
    try {
      return readdirSync(join(base, this.parent), { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return [];
    }
  }

  features() {
    const memory = this.mounts.get('memory');
    const cpu = this.mounts.get('cpu');
    return {
      memoryLimit: memory !== undefined,
      swapLimit: memory !== undefined && existsSync(join(memory, 'memory.memsw.limit_in_bytes')),
      pidsLimit: this.mounts.has('pids'),
      cpuCfs: cpu !== undefined && existsSync(join(cpu, 'cpu.cfs_quota_us')),
      cpuShares: cpu !== undefined && existsSync(join(cpu, 'cpu.shares')),
      cpuSet: this.mounts.has('cpuset'),
      freezer: this.mounts.has('freezer'),
    };
  }

  removeParent(): void {
    for (const mount of new Set(this.mounts.values())) {
      try {
        rmdirSync(join(mount, this.parent));
      } catch {
        // not empty or gone
      }
    }
  }
}

class CgroupV1 implements Cgroup {
  private readonly paths = new Map<V1Controller, string>();

  constructor(
    private readonly mounts: Map<V1Controller, string>,
    private readonly parent: string,
    private readonly id: string,
  ) {
    for (const [controller, mount] of mounts) this.paths.set(controller, join(mount, parent, id));
  }

  private path(controller: V1Controller, file: string): string | undefined {
    const dir = this.paths.get(controller);
    return dir === undefined ? undefined : join(dir, file);
  }

  create(resources: ResourceSpec, privileged: boolean): void {
    for (const [controller, dir] of this.paths) {
      if (controller === 'cpuset') this.createCpuset();
      else mkdirSync(dir, { recursive: true });
    }
    this.limit(resources, privileged);
  }

  rename(id: string): void {
    // Controllers mounted together share a directory: each directory moves once.
    const moved = new Set<string>();
    for (const [controller, dir] of this.paths) {
      if (moved.has(dir)) continue;
      renameSync(dir, join(this.mounts.get(controller)!, this.parent, id));
      moved.add(dir);
    }
  }

  limit(resources: ResourceSpec, privileged: boolean): void {
    const r = resources;
    const memory = this.paths.get('memory');
    if (memory) {
      if (r.memory && r.memory > 0) {
        write(join(memory, 'memory.limit_in_bytes'), r.memory);
        const memsw = join(memory, 'memory.memsw.limit_in_bytes');
        // Docker's default without --memory-swap: as much swap as memory.
        const swap = r.memorySwap === undefined || r.memorySwap === 0 ? r.memory * 2 : r.memorySwap;
        if (existsSync(memsw)) write(memsw, swap === -1 ? -1 : swap);
      }
    }
    const cpu = this.paths.get('cpu');
    if (cpu) {
      if (r.nanoCpus && r.nanoCpus > 0) {
        write(join(cpu, 'cpu.cfs_period_us'), 100000);
        write(join(cpu, 'cpu.cfs_quota_us'), Math.round((r.nanoCpus * 100000) / 1e9));
      }
      if (r.cpuShares && r.cpuShares > 0) write(join(cpu, 'cpu.shares'), r.cpuShares);
    }
    const cpuset = this.paths.get('cpuset');
    if (cpuset) {
      if (r.cpusetCpus) write(join(cpuset, 'cpuset.cpus'), r.cpusetCpus);
      if (r.cpusetMems) write(join(cpuset, 'cpuset.mems'), r.cpusetMems);
    }
    const pids = this.paths.get('pids');
    if (pids && r.pidsLimit && r.pidsLimit > 0) write(join(pids, 'pids.max'), r.pidsLimit);
    const devices = this.paths.get('devices');
    if (devices && !privileged) {
      write(join(devices, 'devices.deny'), 'a');
      for (const rule of DEFAULT_DEVICE_RULES) write(join(devices, 'devices.allow'), rule);
    }
  }

  /** A new v1 cpuset group starts with no cpus or mems and refuses tasks: copy them down from the parent. */
  private createCpuset(): void {
    const mount = this.mounts.get('cpuset')!;
    let dir = mount;
    for (const part of [...this.parent.split('/'), this.id]) {
      const child = join(dir, part);
      if (!existsSync(child)) mkdirSync(child);
      for (const file of ['cpuset.cpus', 'cpuset.mems']) {
        if (readText(join(child, file)) === '') write(join(child, file), readText(join(dir, file)));
      }
      dir = child;
    }
  }

  async addProcess(pid: number, background = false): Promise<void> {
    // Each move waits for an RCU grace period in the kernel: one after another, eight hierarchies
    // cost 5–13 ms; side by side on the thread pool, 1–4 ms, and the event loop goes on meanwhile.
    const dirs = [...new Set(this.paths.values())];
    if (background) for (const dir of dirs) await writeAsync(join(dir, 'cgroup.procs'), pid);
    else await Promise.all(dirs.map((dir) => writeAsync(join(dir, 'cgroup.procs'), pid)));
  }

  setPidsLimit(limit: number | undefined): void {
    const file = this.path('pids', 'pids.max');
    if (file) write(file, limit && limit > 0 ? limit : 'max');
  }

  private procsFile(): string {
    return this.path('pids', 'cgroup.procs') ?? this.path('freezer', 'cgroup.procs') ?? join([...this.paths.values()][0]!, 'cgroup.procs');
  }

  pids(): number[] {
    return readPids(this.procsFile());
  }

  private async setFreezer(state: 'FROZEN' | 'THAWED'): Promise<void> {
    const file = this.path('freezer', 'freezer.state');
    if (!file) throw new Error('the freezer cgroup controller is not mounted');
    for (let i = 0; i < 1000; i++) {
      write(file, state);
      if (readText(file) === state) return;
      await sleep(2);
    }
    throw new Error(`cgroup freezer did not reach ${state}`);
  }

  freeze(): Promise<void> {
    return this.setFreezer('FROZEN');
  }

  thaw(): Promise<void> {
    return this.setFreezer('THAWED');
  }

  oomKills(): number {
    const file = this.path('memory', 'memory.oom_control');
    return file ? (keyValues(file).oom_kill ?? 0) : 0;
  }

  stats(): ContainerStats {
    const mem = (f: string) => (this.path('memory', f) ? readNumber(this.path('memory', f)!) : undefined);
    const acct = (f: string) => this.path('cpuacct', f);
    const usage = acct('cpuacct.usage') ? (readNumber(acct('cpuacct.usage')!) ?? 0) : 0;
    let perCpu: number[] = [];
    try {
      perCpu = readText(acct('cpuacct.usage_percpu')!).split(/\s+/).filter(Boolean).map(Number);
    } catch {
      // not available
    }
    const ticks = acct('cpuacct.stat') ? keyValues(acct('cpuacct.stat')!) : {};
    const throttle = this.path('cpu', 'cpu.stat') ? keyValues(this.path('cpu', 'cpu.stat')!) : {};
    const limit = mem('memory.limit_in_bytes');
    const host = totalmem();
    return {
      read: new Date().toISOString(),
      pids: { current: this.path('pids', 'pids.current') ? (readNumber(this.path('pids', 'pids.current')!) ?? 0) : this.pids().length, limit: this.path('pids', 'pids.max') ? readNumber(this.path('pids', 'pids.max')!) : undefined },
      cpu: {
        totalUsage: usage,
        perCpuUsage: perCpu,
        usageInKernelmode: (ticks.system ?? 0) * 1e7,
        usageInUsermode: (ticks.user ?? 0) * 1e7,
        systemUsage: systemCpuUsage(),
        onlineCpus: cpus().length,
        throttling: { periods: throttle.nr_periods ?? 0, throttledPeriods: throttle.nr_throttled ?? 0, throttledTime: throttle.throttled_time ?? 0 },
      },
      memory: {
        usage: mem('memory.usage_in_bytes') ?? 0,
        maxUsage: mem('memory.max_usage_in_bytes'),
        limit: limit === undefined || limit > host ? host : limit,
        failcnt: mem('memory.failcnt'),
        stats: this.path('memory', 'memory.stat') ? keyValues(this.path('memory', 'memory.stat')!) : {},
      },
    };
  }

  async killAll(): Promise<void> {
    if (!this.exists()) return;
    const freezer = this.path('freezer', 'freezer.state');
    // Frozen processes cannot fork while we kill them; SIGKILL still lands once thawed.
    if (freezer && existsSync(freezer)) await this.freeze().catch(() => undefined);
    killPids(this.pids());
    if (freezer && existsSync(freezer)) await this.thaw().catch(() => undefined);
    await waitEmpty(() => this.pids(), this.id);
  }

  remove(): void {
    // Every hierarchy is tried, so one busy directory does not leave the others behind.
    let failure: Error | undefined;
    for (const dir of new Set(this.paths.values())) {
      try {
        rmdirSync(dir);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') failure ??= new Error(`removing cgroup ${dir}: ${(err as Error).message}`, { cause: err });
      }
    }
    if (failure) throw failure;
  }

  exists(): boolean {
    for (const dir of this.paths.values()) if (existsSync(dir)) return true;
    return false;
  }
}

class CgroupV2Host implements CgroupHost {
  readonly version = '2' as const;
  constructor(
    private readonly root: string,
    private readonly parent: string,
  ) {}

  group(id: string): Cgroup {
    return new CgroupV2(this.root, this.parent, id);
  }

  ids(): string[] {
    try {
      return readdirSync(join(this.root, this.parent), { withFileTypes: true })
        .filter((e) => e.isDirectory())
        .map((e) => e.name);
    } catch {
      return [];
    }
  }

  features() {
    const controllers = readText(join(this.root, 'cgroup.controllers')).split(' ');
    return {
      memoryLimit: controllers.includes('memory'),
      swapLimit: controllers.includes('memory') && existsSync(join(this.root, 'memory.stat')),
      pidsLimit: controllers.includes('pids'),
      cpuCfs: controllers.includes('cpu'),
      cpuShares: controllers.includes('cpu'),
      cpuSet: controllers.includes('cpuset'),
      freezer: true,
    };
  }

  removeParent(): void {
    try {
      rmdirSync(join(this.root, this.parent));
    } catch {
      // not empty or gone
    }
  }
}

class CgroupV2 implements Cgroup {
  private readonly dir: string;

  constructor(
    private readonly root: string,
    private readonly parent: string,
    private readonly id: string,
  ) {
    this.dir = join(root, parent, id);
  }

  private file(name: string): string {
    return join(this.dir, name);
  }

  create(resources: ResourceSpec): void {
    // Each level must delegate the controllers to its children before the leaf can use them.
    const wanted = readText(join(this.root, 'cgroup.controllers')).split(' ').filter((c) => ['cpu', 'cpuset', 'memory', 'pids', 'io'].includes(c));
    let dir = this.root;
    for (const part of [...this.parent.split('/'), this.id]) {
      const enable = wanted.map((c) => `+${c}`).join(' ');
      if (enable) write(join(dir, 'cgroup.subtree_control'), enable);
      dir = join(dir, part);
      if (!existsSync(dir)) mkdirSync(dir);
    }
    this.limit(resources);
  }

  rename(id: string): void {
    renameSync(this.dir, join(this.root, this.parent, id));
  }

  limit(resources: ResourceSpec): void {
    const r = resources;
    if (r.memory && r.memory > 0) {
      write(this.file('memory.max'), r.memory);
      const swap = r.memorySwap === undefined || r.memorySwap === 0 ? r.memory * 2 : r.memorySwap;
      if (existsSync(this.file('memory.swap.max'))) write(this.file('memory.swap.max'), swap === -1 ? 'max' : swap - r.memory);
    }
    if (r.nanoCpus && r.nanoCpus > 0) write(this.file('cpu.max'), `${Math.round((r.nanoCpus * 100000) / 1e9)} 100000`);
    // runc's conversion of cpu.shares [2, 262144] to cpu.weight [1, 10000].
    if (r.cpuShares && r.cpuShares > 0) write(this.file('cpu.weight'), Math.floor(1 + ((r.cpuShares - 2) * 9999) / 262142));
    if (r.cpusetCpus) write(this.file('cpuset.cpus'), r.cpusetCpus);
    if (r.cpusetMems) write(this.file('cpuset.mems'), r.cpusetMems);
    if (r.pidsLimit && r.pidsLimit > 0) write(this.file('pids.max'), r.pidsLimit);
  }

  addProcess(pid: number): Promise<void> {
    return writeAsync(this.file('cgroup.procs'), pid);
  }

  setPidsLimit(limit: number | undefined): void {
    if (existsSync(this.file('pids.max'))) write(this.file('pids.max'), limit && limit > 0 ? limit : 'max');
  }

  pids(): number[] {
    return readPids(this.file('cgroup.procs'));
  }

  private async setFrozen(frozen: boolean): Promise<void> {
    write(this.file('cgroup.freeze'), frozen ? 1 : 0);
    for (let i = 0; i < 1000; i++) {
      const events = keyValues(this.file('cgroup.events'));
      if ((events.frozen ?? 0) === (frozen ? 1 : 0)) return;
      await sleep(2);
    }
    throw new Error(`cgroup ${this.dir} did not ${frozen ? 'freeze' : 'thaw'}`);
  }

  freeze(): Promise<void> {
    return this.setFrozen(true);
  }

  thaw(): Promise<void> {
    return this.setFrozen(false);
  }

  oomKills(): number {
    return keyValues(this.file('memory.events')).oom_kill ?? 0;
  }

  stats(): ContainerStats {
    const cpu = keyValues(this.file('cpu.stat'));
    const host = totalmem();
    const limit = readNumber(this.file('memory.max'));
    return {
      read: new Date().toISOString(),
      pids: { current: readNumber(this.file('pids.current')) ?? this.pids().length, limit: readNumber(this.file('pids.max')) },
      cpu: {
        totalUsage: (cpu.usage_usec ?? 0) * 1000,
        perCpuUsage: [],
        usageInKernelmode: (cpu.system_usec ?? 0) * 1000,
        usageInUsermode: (cpu.user_usec ?? 0) * 1000,
        systemUsage: systemCpuUsage(),
        onlineCpus: cpus().length,
        throttling: { periods: cpu.nr_periods ?? 0, throttledPeriods: cpu.nr_throttled ?? 0, throttledTime: (cpu.throttled_usec ?? 0) * 1000 },
      },
      memory: {
        usage: readNumber(this.file('memory.current')) ?? 0,
        maxUsage: readNumber(this.file('memory.peak')),
        limit: limit === undefined || limit > host ? host : limit,
        stats: keyValues(this.file('memory.stat')),
      },
    };
  }

  async killAll(): Promise<void> {
    if (!this.exists()) return;
    if (existsSync(this.file('cgroup.kill'))) write(this.file('cgroup.kill'), 1);
    else {
      await this.freeze().catch(() => undefined);
      killPids(this.pids());
      await this.thaw().catch(() => undefined);
    }
    await waitEmpty(() => this.pids(), this.id);
  }

  remove(): void {
    try {
      rmdirSync(this.dir);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`removing cgroup ${this.dir}: ${(err as Error).message}`, { cause: err });
    }
  }

  exists(): boolean {
    return existsSync(this.dir);
  }
}
