import type { Command } from 'commander';
import { type CommandModule, withHostOption } from '../context.js';
import { formatTable, humanSize } from '../format/index.js';
import { checkArgs, clientFor } from './image-support.js';

interface DiskUsage {
  LayersSize?: number;
  Images?: Array<{ Containers: number; Size: number; SharedSize: number; VirtualSize?: number }> | null;
  Containers?: Array<{ State: string; SizeRw?: number }> | null;
  Volumes?: Array<{ UsageData?: { Size: number; RefCount: number } | null }> | null;
  BuildCache?: Array<{ Size: number; InUse: boolean; Shared: boolean }> | null;
}

export const systemDfCommand: CommandModule = (program, context) => {
  const system = program.commands.find((c) => c.name() === 'system') ?? withHostOption(program.command('system')).description('Manage tsengine').usage('COMMAND');
  withHostOption(system.command('df'))
    .description('Show tsengine disk usage')
    .argument('[ARG...]')
    .action(async (args: string[], _options: unknown, cmd: Command) => {
      checkArgs(cmd, args, 0, 0);
      const usage = await clientFor(context, cmd).request<DiskUsage>('GET', '/system/df');
      context.stdout.write(formatDiskUsage(usage));
    });
};

/** The summary table of `docker system df`, with the docker CLI's figures for each row. */
export function formatDiskUsage(usage: DiskUsage): string {
  const images = usage.Images ?? [];
  const containers = usage.Containers ?? [];
  const volumes = usage.Volumes ?? [];
  const cache = usage.BuildCache ?? [];
  const imagesSize = usage.LayersSize ?? 0;
  const imagesUsed = images.filter((i) => i.Containers > 0 && i.SharedSize !== -1).reduce((sum, i) => sum + (i.VirtualSize ?? i.Size) - i.SharedSize, 0);
  const containersSize = containers.reduce((sum, c) => sum + (c.SizeRw ?? 0), 0);
  const containersIdle = containers.filter((c) => c.State !== 'running').reduce((sum, c) => sum + (c.SizeRw ?? 0), 0);
  const volumesSize = volumes.reduce((sum, v) => sum + Math.max(v.UsageData?.Size ?? 0, 0), 0);
  const volumesIdle = volumes.filter((v) => (v.UsageData?.RefCount ?? 0) === 0).reduce((sum, v) => sum + Math.max(v.UsageData?.Size ?? 0, 0), 0);
  const cacheSize = cache.reduce((sum, b) => sum + b.Size, 0);
  const cacheIdle = cache.filter((b) => !b.InUse && !b.Shared).reduce((sum, b) => sum + b.Size, 0);
  const rows = [
    ['Images', images.length, images.filter((i) => i.Containers > 0).length, imagesSize, imagesSize - imagesUsed, true],
    ['Containers', containers.length, containers.filter((c) => c.State === 'running').length, containersSize, containersIdle, true],
    ['Local Volumes', volumes.length, volumes.filter((v) => (v.UsageData?.RefCount ?? 0) > 0).length, volumesSize, volumesIdle, true],
    ['Build Cache', cache.length, cache.filter((b) => b.InUse).length, cacheSize, cacheIdle, false],
  ] as const;
  return formatTable(
    ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE'],
    rows.map(([type, total, active, size, reclaimable, percent]) => [
      type,
      String(total),
      String(active),
      humanSize(size, 4),
      percent && size > 0 ? `${humanSize(reclaimable, 4)} (${Math.floor((reclaimable * 100) / size)}%)` : humanSize(reclaimable, 4),
    ]),
  );
}
