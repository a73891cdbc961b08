import type { VersionInfo } from '@tsengine/core';
import { type CommandModule, withHostOption } from '../context.js';
import { formatKeyValues, renderTemplate } from '../format/index.js';
import { API_VERSION, TSENGINE_VERSION } from '../version.js';

interface ClientVersion {
  Platform: { Name: string };
  Version: string;
  ApiVersion: string;
  NodeVersion: string;
  Os: string;
  Arch: string;
}

export const versionCommand: CommandModule = (program, context) => {
  withHostOption(program.command('version'))
    .description('Show the tsengine version information')
    .option('-f, --format <template>', "format the output using a template, e.g. '{{json .}}'")
    .action(async (options: { format?: string }, command) => {
      const client: ClientVersion = {
        Platform: { Name: 'tsengine' },
        Version: TSENGINE_VERSION,
        ApiVersion: API_VERSION,
        NodeVersion: process.version,
        Os: 'linux',
        Arch: process.arch === 'x64' ? 'amd64' : process.arch,
      };
      let server: VersionInfo | undefined;
      let failure: unknown;
      try {
        server = await context.client(command).request<VersionInfo>('GET', '/version');
      } catch (err) {
        failure = err;
      }
      if (options.format) {
        context.stdout.write(renderTemplate(options.format, { Client: client, Server: server ?? null }));
      } else {
        context.stdout.write(formatVersion(client, server));
      }
      if (failure) throw failure;
    });
};

function formatVersion(client: ClientVersion, server: VersionInfo | undefined): string {
  const lines = [
    `Client: ${client.Platform.Name}`,
    ` Version:\t${client.Version}`,
    ` API version:\t${client.ApiVersion}`,
    ` Node version:\t${client.NodeVersion}`,
    ` OS/Arch:\t${client.Os}/${client.Arch}`,
  ];
  if (server) {
    lines.push('', `Server:${server.Platform?.Name ? ' ' + server.Platform.Name : ''}`);
    for (const component of server.Components ?? []) {
      lines.push(` ${component.Name}:`);
      const d = component.Details ?? {};
      if (component.Name === 'Engine') {
        lines.push(
          `  Version:\t${component.Version}`,
          `  API version:\t${d.ApiVersion ?? server.ApiVersion} (minimum version ${d.MinAPIVersion ?? server.MinAPIVersion})`,
          `  Go version:\t${d.GoVersion ?? server.GoVersion}`,
          `  Git commit:\t${d.GitCommit ?? server.GitCommit}`,
          `  Built:\t${d.BuildTime ?? server.BuildTime}`,
          `  OS/Arch:\t${d.Os ?? server.Os}/${d.Arch ?? server.Arch}`,
          `  Kernel version:\t${d.KernelVersion ?? server.KernelVersion}`,
          `  Experimental:\t${d.Experimental ?? 'false'}`,
        );
      } else {
        lines.push(`  Version:\t${component.Version}`, ...Object.keys(d).sort().map((k) => `  ${k}:\t${d[k]}`));
      }
    }
  }
  return formatKeyValues(lines);
}
