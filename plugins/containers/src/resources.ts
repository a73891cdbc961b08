import { cpus } from 'node:os';
import { type HostConfig, type ResourceSpec, invalid } from '@tsengine/core';

const MIN_MEMORY = 6 * 1024 * 1024;

/** Docker's checks on HostConfig's resources at create, with its messages. */
export function validateHostConfig(host: HostConfig): void {
  const memory = host.Memory ?? 0;
  if (memory > 0 && memory < MIN_MEMORY) throw invalid('Minimum memory limit allowed is 6MB');
  const swap = host.MemorySwap ?? 0;
  if (swap > 0 && memory <= 0) throw invalid('You should always set the Memory limit when using Memoryswap limit, see usage');
  if (swap > 0 && swap < memory) throw invalid('Minimum memoryswap limit should be larger than memory limit, see usage');
  const online = cpus().length;
  const nanoCpus = host.NanoCpus ?? 0;
  if (nanoCpus < 0 || nanoCpus > online * 1e9) {
    throw invalid(`Range of CPUs is from 0.01 to ${online.toFixed(2)}, as there are only ${online} CPUs available`);
  }
  if (nanoCpus > 0 && ((host.CpuQuota ?? 0) > 0 || (host.CpuPeriod ?? 0) > 0)) throw invalid('Conflicting options: Nano CPUs and CPU Period cannot both be set');
  const shares = host.CpuShares ?? 0;
  if (shares < 0) throw invalid(`invalid CPU shares: ${shares}`);
  if (host.CpusetCpus) {
    const wanted = parseCpuList(host.CpusetCpus);
    if (!wanted) throw invalid(`Invalid value ${host.CpusetCpus} for cpuset cpus`);
    const missing = wanted.filter((c) => c >= online);
    if (missing.length) throw invalid(`Requested CPUs are not available - requested ${host.CpusetCpus}, available: ${online === 1 ? '0' : `0-${online - 1}`}`);
  }
  for (const opt of host.SecurityOpt ?? []) securityOption(opt);
  const policy = host.RestartPolicy?.Name ?? '';
  if (!['', 'no', 'always', 'unless-stopped', 'on-failure'].includes(policy)) throw invalid(`invalid restart policy '${policy}'`);
  if ((host.RestartPolicy?.MaximumRetryCount ?? 0) < 0) throw invalid('invalid restart policy: maximum retry count cannot be negative');
  if ((host.RestartPolicy?.MaximumRetryCount ?? 0) > 0 && policy !== 'on-failure') {
    throw invalid(`invalid restart policy: maximum retry count can only be used with 'on-failure'`);
  }
  if (host.AutoRemove && policy !== '' && policy !== 'no') throw invalid("can't create 'AutoRemove' container with restart policy");
  if ((host.ShmSize ?? 0) < 0) throw invalid('SHM size can not be less than 0');
}

function parseCpuList(text: string): number[] | undefined {
  const out: number[] = [];
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim());
    if (!m) return undefined;
    const from = Number(m[1]);
    const to = m[2] === undefined ? from : Number(m[2]);
    if (to < from) return undefined;
    for (let c = from; c <= to; c++) out.push(c);
  }
  return out;
}

/** One --security-opt: returns whether it asks for no_new_privs; refuses what this engine cannot honour. */
function securityOption(opt: string): boolean {
  const [key, value] = opt.includes('=') ? [opt.slice(0, opt.indexOf('=')), opt.slice(opt.indexOf('=') + 1)] : opt.includes(':') ? [opt.slice(0, opt.indexOf(':')), opt.slice(opt.indexOf(':') + 1)] : [opt, undefined];
  if (key === 'no-new-privileges') {
    if (value === undefined || value === 'true') return true;
    if (value === 'false') return false;
    throw invalid(`invalid --security-opt 2: "${opt}"`);
  }
  // No LSM here: accepting "unconfined" changes nothing, which is what it asks for.
  if ((key === 'seccomp' || key === 'apparmor') && value === 'unconfined') return false;
  if (key === 'label' && value === 'disable') return false;
  throw invalid(`invalid --security-opt 2: "${opt}"`);
}

export function noNewPrivileges(host: HostConfig): boolean {
  let on = false;
  for (const opt of host.SecurityOpt ?? []) {
    const asks = securityOption(opt);
    if (opt.startsWith('no-new-privileges')) on = asks;
  }
  return on;
}

/** HostConfig's limits in the exec driver's terms. */
export function resourcesOf(host: HostConfig): ResourceSpec {
  const r: ResourceSpec = {};
  if ((host.Memory ?? 0) > 0) r.memory = host.Memory!;
  if (host.MemorySwap !== undefined && host.MemorySwap !== 0) r.memorySwap = host.MemorySwap;
  if ((host.NanoCpus ?? 0) > 0) r.nanoCpus = host.NanoCpus!;
  else if ((host.CpuQuota ?? 0) > 0) r.nanoCpus = Math.round((host.CpuQuota! * 1e9) / (host.CpuPeriod && host.CpuPeriod > 0 ? host.CpuPeriod : 100000));
  if ((host.CpuShares ?? 0) > 0) r.cpuShares = Math.max(2, host.CpuShares!);
  if (host.CpusetCpus) r.cpusetCpus = host.CpusetCpus;
  if (host.CpusetMems) r.cpusetMems = host.CpusetMems;
  if (typeof host.PidsLimit === 'number' && host.PidsLimit > 0) r.pidsLimit = host.PidsLimit;
  return r;
}
