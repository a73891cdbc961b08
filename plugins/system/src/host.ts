import { existsSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';

/** Facts about the host, read defensively: a missing file means "unknown", never a failure. */

export function readText(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

export interface OsRelease {
  prettyName: string;
  versionId: string;
}

/** /etc/os-release (falling back to /usr/lib/os-release), as `docker info` reports it. */
export function osRelease(): OsRelease {
  const text = readText('/etc/os-release') ?? readText('/usr/lib/os-release') ?? '';
  const fields = new Map<string, string>();
  for (const line of text.split('\n')) {
    const match = /^([A-Z0-9_]+)=(.*)$/.exec(line.trim());
    if (match) fields.set(match[1]!, unquote(match[2]!));
  }
  return {
    prettyName: fields.get('PRETTY_NAME') ?? fields.get('NAME') ?? `${os.type()} ${os.release()}`,
    versionId: fields.get('VERSION_ID') ?? '',
  };
}

function unquote(value: string): string {
  const m = /^(["'])(.*)\1$/.exec(value);
  return m ? m[2]!.replace(/\\(.)/g, '$1') : value;
}

/** `uname -m` spelling, which `docker info` uses for Architecture. */
export function unameMachine(arch: string = process.arch): string {
  const map: Record<string, string> = { x64: 'x86_64', arm64: 'aarch64', ia32: 'i686', arm: 'armv7l', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return map[arch] ?? arch;
}

/** Go's GOARCH spelling, which `docker version` uses for Arch. */
export function goArch(arch: string = process.arch): string {
  const map: Record<string, string> = { x64: 'amd64', ia32: '386', arm64: 'arm64', arm: 'arm', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };
  return map[arch] ?? arch;
}

export interface CgroupFacts {
  version: '1' | '2' | '';
  driver: string;
  memoryLimit: boolean;
  swapLimit: boolean;
  cpuCfsPeriod: boolean;
  cpuCfsQuota: boolean;
  cpuShares: boolean;
  cpuSet: boolean;
  pidsLimit: boolean;
}

/** v2 has cgroup.controllers at the root; v1 (and hybrid, as on these machines) has one folder per controller. */
export function cgroupFacts(root = '/sys/fs/cgroup'): CgroupFacts {
  const controllers = readText(`${root}/cgroup.controllers`);
  if (controllers !== undefined) {
    const has = new Set(controllers.trim().split(/\s+/));
    return {
      version: '2',
      driver: 'cgroupfs',
      memoryLimit: has.has('memory'),
      swapLimit: has.has('memory'),
      cpuCfsPeriod: has.has('cpu'),
      cpuCfsQuota: has.has('cpu'),
      cpuShares: has.has('cpu'),
      cpuSet: has.has('cpuset'),
      pidsLimit: has.has('pids'),
    };
  }
  if (!existsSync(root)) {
    return { version: '', driver: 'none', memoryLimit: false, swapLimit: false, cpuCfsPeriod: false, cpuCfsQuota: false, cpuShares: false, cpuSet: false, pidsLimit: false };
  }
  return {
    version: '1',
    driver: 'cgroupfs',
    memoryLimit: existsSync(`${root}/memory/memory.limit_in_bytes`),
    swapLimit: existsSync(`${root}/memory/memory.memsw.limit_in_bytes`),
    cpuCfsPeriod: existsSync(`${root}/cpu/cpu.cfs_period_us`),
    cpuCfsQuota: existsSync(`${root}/cpu/cpu.cfs_quota_us`),
    cpuShares: existsSync(`${root}/cpu/cpu.shares`),
    cpuSet: existsSync(`${root}/cpuset/cpuset.cpus`),
    pidsLimit: existsSync(`${root}/pids`),
  };
}

export function ipv4Forwarding(): boolean {
  return readText('/proc/sys/net/ipv4/ip_forward')?.trim() === '1';
}

export function openFileDescriptors(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}
