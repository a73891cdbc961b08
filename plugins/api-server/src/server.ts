import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import net, { type AddressInfo } from 'node:net';
import { dirname } from 'node:path';
import { type ApiServer, type DaemonSettings, type Engine, EngineError, type Logger, errorMessage } from '@tsengine/core';
import { type DockerApp, buildApp } from './app.js';
import type { RouteModule } from './helpers.js';
import { type ListenAddress, parseHost } from './hosts.js';
import { routeModules } from './routes/index.js';

export interface DockerApiServerOptions {
  engine: Engine;
  logger: Logger;
  settings: DaemonSettings;
  /** Defaults to every area in routes/index.ts; tests add their own. */
  routes?: RouteModule[];
}

interface Listener {
  address: ListenAddress;
  docker: DockerApp;
  /** The address actually bound (tcp port 0 becomes the real port). */
  uri: string;
}

/** The Docker Engine API, served on every host given to listen(). */
export class DockerApiServer implements ApiServer {
  readonly name = 'docker';
  private readonly listeners: Listener[] = [];

  constructor(private readonly options: DockerApiServerOptions) {}

  async listen(hosts: string[]): Promise<void> {
    const addresses = hosts.map(parseHost);
    for (const address of addresses) {
      const docker = buildApp({ ...this.options, routes: this.options.routes ?? routeModules });
      try {
        const uri = await this.bind(docker, address);
        this.listeners.push({ address, docker, uri });
        this.options.logger.info({ host: uri }, `API listening on ${uri}`);
      } catch (err) {
        await docker.app.close().catch(() => undefined);
        throw new EngineError('system', `cannot listen on ${address.uri}: ${errorMessage(err)}`, { cause: err });
      }
    }
  }

  /** The bound addresses, e.g. tcp://127.0.0.1:41234 for tcp://127.0.0.1:0. */
  addresses(): string[] {
    return this.listeners.map((l) => l.uri);
  }

  async close(): Promise<void> {
    const listeners = this.listeners.splice(0);
    await Promise.all(
      listeners.map(async ({ address, docker }) => {
        for (const socket of docker.upgraded) socket.destroy();
        await docker.app.close();
        if (address.kind === 'unix') await unlink(address.path).catch(() => undefined);
      }),
    );
  }

  private async bind({ app }: DockerApp, address: ListenAddress): Promise<string> {
    if (address.kind === 'tcp') {
      await app.listen({ host: address.host, port: address.port });
      const bound = app.server.address() as AddressInfo;
      const host = bound.family === 'IPv6' ? `[${bound.address}]` : bound.address;
      return `tcp://${host}:${bound.port}`;
    }
    await mkdir(dirname(address.path), { recursive: true });
    await removeStaleSocket(address.path);
    await app.listen({ path: address.path });
    await chmod(address.path, 0o660);
    return address.uri;
  }
}

/** A socket file left by a daemon that died is removed; one that still answers belongs to a live daemon. */
async function removeStaleSocket(path: string): Promise<void> {
  let stats;
  try {
    stats = await lstat(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  if (!stats.isSocket()) throw new Error(`${path} exists and is not a socket`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(path);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) throw new Error(`${path} is in use by another process`);
  await unlink(path);
}
