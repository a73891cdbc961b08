import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type ContainerStats, type ContainerTop, invalid } from '@tsengine/core';

const run = promisify(execFile);

/** `ps` output of the host filtered to the container's processes, as Docker's top does. */
export async function topView(pids: number[], psArgs: string | undefined): Promise<ContainerTop> {
  const args = (psArgs && psArgs.trim() ? psArgs.trim() : '-ef').split(/\s+/);
  let stdout: string;
  try {
    ({ stdout } = await run('ps', args, { maxBuffer: 16 * 1024 * 1024 }));
  } catch (err) {
    throw invalid(`ps: ${(err as { stderr?: string }).stderr?.trim() || (err as Error).message}`);
  }
  const lines = stdout.split('\n').filter((l) => l.trim() !== '');
  const titles = (lines.shift() ?? '').trim().split(/\s+/);
  const pidColumn = titles.indexOf('PID');
  if (pidColumn < 0) throw invalid(`Couldn't find PID field in ps output`);
  const wanted = new Set(pids);
  const processes: string[][] = [];
  for (const line of lines) {
    const fields = line.trim().split(/\s+/);
    if (!wanted.has(Number(fields[pidColumn]))) continue;
    // The last column (the command) keeps its spaces.
    const row = fields.slice(0, titles.length - 1);
    row.push(fields.slice(titles.length - 1).join(' '));
    processes.push(row);
  }
  return { Titles: titles, Processes: processes };
}

/** Docker's StatsJSON (API 1.41+) from two samples of the exec driver's figures. */
export function statsJson(current: ContainerStats | undefined, previous: ContainerStats | undefined, id: string, name: string): Record<string, unknown> {
  return {
    read: current?.read ?? '0001-01-01T00:00:00Z',
    preread: previous?.read ?? '0001-01-01T00:00:00Z',
    pids_stats: current ? { current: current.pids.current, ...(current.pids.limit !== undefined ? { limit: current.pids.limit } : {}) } : {},
    blkio_stats: { io_service_bytes_recursive: null, io_serviced_recursive: null, io_queue_recursive: null, io_service_time_recursive: null, io_wait_time_recursive: null, io_merged_recursive: null, io_time_recursive: null, sectors_recursive: null },
    num_procs: 0,
    storage_stats: {},
    cpu_stats: cpuStats(current),
    precpu_stats: cpuStats(previous),
    memory_stats: current
      ? {
          usage: current.memory.usage,
          ...(current.memory.maxUsage !== undefined ? { max_usage: current.memory.maxUsage } : {}),
          stats: current.memory.stats,
          ...(current.memory.failcnt !== undefined ? { failcnt: current.memory.failcnt } : {}),
          limit: current.memory.limit,
        }
      : {},
    name,
    id,
  };
}

function cpuStats(s: ContainerStats | undefined): Record<string, unknown> {
  if (!s) return { cpu_usage: { total_usage: 0, usage_in_kernelmode: 0, usage_in_usermode: 0 }, throttling_data: { periods: 0, throttled_periods: 0, throttled_time: 0 } };
  return {
    cpu_usage: {
      total_usage: s.cpu.totalUsage,
      ...(s.cpu.perCpuUsage.length ? { percpu_usage: s.cpu.perCpuUsage } : {}),
      usage_in_kernelmode: s.cpu.usageInKernelmode,
      usage_in_usermode: s.cpu.usageInUsermode,
    },
    system_cpu_usage: s.cpu.systemUsage,
    online_cpus: s.cpu.onlineCpus,
    throttling_data: { periods: s.cpu.throttling.periods, throttled_periods: s.cpu.throttling.throttledPeriods, throttled_time: s.cpu.throttling.throttledTime },
  };
}
