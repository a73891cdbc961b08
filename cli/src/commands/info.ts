import type { SystemInfo } from '@tsengine/core';
import { type CommandModule, withHostOption } from '../context.js';
import { alignTabs, bytesSize, renderTemplate } from '../format/index.js';
import { TSENGINE_VERSION } from '../version.js';

export const infoCommand: CommandModule = (program, context) => {
  withHostOption(program.command('info'))
    .description('Display system-wide information')
    .option('-f, --format <template>', "format the output using a template, e.g. '{{json .}}' or '{{.NCPU}}'")
    .action(async (options: { format?: string }, command) => {
      const client = context.client(command);
      if (options.format) {
        const info = await client.request<SystemInfo>('GET', '/info');
        context.stdout.write(renderTemplate(options.format, info));
        return;
      }
      context.stdout.write(alignTabs(['Client:', ` Version:\t${TSENGINE_VERSION}`, ' Debug Mode:\tfalse'].join('\n'), 0, 1) + '\n');
      const info = await client.request<SystemInfo>('GET', '/info');
      context.stdout.write('\n' + formatServerInfo(info));
      for (const warning of info.Warnings ?? []) context.stderr.write(`${warning}\n`);
    });
};

/** The Server section of `docker info`, with docker's labels and order. */
export function formatServerInfo(info: SystemInfo): string {
  const lines: string[] = ['Server:'];
  const add = (line: string) => lines.push(line);
  add(` Containers: ${info.Containers}`);
  add(`  Running: ${info.ContainersRunning}`);
  add(`  Paused: ${info.ContainersPaused}`);
  add(`  Stopped: ${info.ContainersStopped}`);
  add(` Images: ${info.Images}`);
  add(` Server Version: ${info.ServerVersion}`);
  add(` Storage Driver: ${info.Driver}`);
  for (const [key, value] of info.DriverStatus ?? []) add(`  ${key}: ${value}`);
  add(` Logging Driver: ${info.LoggingDriver}`);
  add(` Cgroup Driver: ${info.CgroupDriver}`);
  add(` Cgroup Version: ${info.CgroupVersion}`);
  add(' Plugins:');
  add(`  Volume: ${(info.Plugins?.Volume ?? []).join(' ')}`);
  add(`  Network: ${(info.Plugins?.Network ?? []).join(' ')}`);
  add(`  Log: ${(info.Plugins?.Log ?? []).join(' ')}`);
  add(` Swarm: ${info.Swarm?.LocalNodeState ?? 'inactive'}`);
  add(` Runtimes: ${Object.keys(info.Runtimes ?? {}).sort().join(' ')}`);
  add(` Default Runtime: ${info.DefaultRuntime}`);
  add(` Init Binary: ${info.InitBinary}`);
  if (info.SecurityOptions?.length) {
    add(' Security Options:');
    for (const option of info.SecurityOptions) add(`  ${option.replace(/^name=/, '')}`);
  }
  add(` Kernel Version: ${info.KernelVersion}`);
  add(` Operating System: ${info.OperatingSystem}`);
  add(` OSType: ${info.OSType}`);
  add(` Architecture: ${info.Architecture}`);
  add(` CPUs: ${info.NCPU}`);
  add(` Total Memory: ${bytesSize(info.MemTotal)}`);
  add(` Name: ${info.Name}`);
  add(` ID: ${info.ID}`);
  add(` Docker Root Dir: ${info.DockerRootDir}`);
  add(` Debug Mode: ${info.Debug}`);
  if (info.HttpProxy) add(` HTTP Proxy: ${info.HttpProxy}`);
  if (info.HttpsProxy) add(` HTTPS Proxy: ${info.HttpsProxy}`);
  if (info.NoProxy) add(` No Proxy: ${info.NoProxy}`);
  add(` Experimental: ${info.ExperimentalBuild}`);
  const insecure = (info.RegistryConfig?.InsecureRegistryCIDRs as string[] | undefined) ?? [];
  if (insecure.length) {
    add(' Insecure Registries:');
    for (const cidr of insecure) add(`  ${cidr}`);
  }
  add(` Live Restore Enabled: ${info.LiveRestoreEnabled}`);
  return lines.join('\n') + '\n';
}
