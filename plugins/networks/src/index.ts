import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type CapabilityProviders, type NetworkDriver, NetworkDriverCapability, NetworkServiceCapability, definePlugin } from '@tsengine/core';
import { type ControllerOptions, NetworkController } from './controller.js';
import { type AddressPool, DEFAULT_ADDRESS_POOLS, DefaultIpam, type Ipam, IpamCapability } from './ipam.js';

export { NetworkController, type ControllerOptions, type NetworkRecord, hostRoutes, linkEnv, portRequests } from './controller.js';
export { DEFAULT_ADDRESS_POOLS, DefaultIpam, type Ipam, IpamCapability, type Pool, type PoolRequest } from './ipam.js';
export * from './cidr.js';
export { hostsContent, resolvConfContent } from './files.js';

export interface NetworksOptions extends ControllerOptions {
  defaultAddressPools: AddressPool[];
}

function parseOptions(raw: unknown): NetworksOptions {
  const o = (raw ?? {}) as Record<string, unknown>;
  if (typeof o !== 'object' || Array.isArray(o)) throw new Error('options must be an object');
  const known = new Set(['bip', 'default-address-pools', 'bridge-name', 'icc', 'mtu']);
  for (const key of Object.keys(o)) if (!known.has(key)) throw new Error(`unknown option "${key}" (known: ${[...known].join(', ')})`);
  const pools = o['default-address-pools'];
  if (pools !== undefined && (!Array.isArray(pools) || pools.some((p) => typeof p?.base !== 'string' || !Number.isInteger(p?.size)))) {
    throw new Error('"default-address-pools" must be a list of {"base": "CIDR", "size": prefix length}');
  }
  if (o.bip !== undefined && (typeof o.bip !== 'string' || !/^\d+\.\d+\.\d+\.\d+\/\d+$/.test(o.bip))) throw new Error('"bip" must be an address with a prefix length, e.g. "10.200.0.1/24"');
  if (o['bridge-name'] !== undefined && (typeof o['bridge-name'] !== 'string' || !/^[A-Za-z0-9_.-]{1,15}$/.test(o['bridge-name']))) throw new Error('"bridge-name" must be an interface name of at most 15 characters');
  if (o.icc !== undefined && typeof o.icc !== 'boolean') throw new Error('"icc" must be true or false');
  if (o.mtu !== undefined && !(Number.isInteger(o.mtu) && (o.mtu as number) >= 68)) throw new Error('"mtu" must be an integer of at least 68');
  return {
    defaultAddressPools: (pools as AddressPool[] | undefined) ?? DEFAULT_ADDRESS_POOLS,
    ...(o.bip !== undefined ? { bip: o.bip as string } : {}),
    ...(o['bridge-name'] !== undefined ? { bridgeName: o['bridge-name'] as string } : {}),
    ...(o.icc !== undefined ? { icc: o.icc as boolean } : {}),
    ...(o.mtu !== undefined ? { mtu: o.mtu as number } : {}),
  };
}

export default definePlugin<NetworksOptions>({
  name: '@tsengine/networks',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'The network controller ("networks" local) and IPAM ("ipam" default) over the loaded network drivers.',
  provides: [
    { capability: NetworkServiceCapability.name, name: 'local' },
    { capability: IpamCapability.name, name: 'default' },
  ],
  requires: [NetworkDriverCapability.name],
  parseOptions,
  async register(container, ctx) {
    const dataDir = join(ctx.settings.dataRoot, 'network');
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const ipam = new DefaultIpam(dataDir, ctx.options.defaultAddressPools, ctx.logger);
    await ipam.load();
    ctx.provide(IpamCapability, 'default', () => ipam);
    const drivers = container.resolve<CapabilityProviders<NetworkDriver>>(NetworkDriverCapability.providersToken);
    // The kernel refuses to resolve a capability while its own provider is still loading (our
    // init), so until then the controller works with our own IPAM; afterwards with the selected one.
    let loaded = false;
    const selectedIpam = (): Ipam => (loaded ? container.resolve<Ipam>(IpamCapability.token) : ipam);
    const controller = new NetworkController(dataDir, ctx.settings.execRoot, drivers, selectedIpam, ctx.engine, ctx.logger, ctx.options);
    ctx.provide(NetworkServiceCapability, 'local', () => controller);
    ctx.handle('network.create', async (job) => controller.create(job.input.body));
    ctx.handle('network.list', async (job) => controller.list(job.input.filters));
    ctx.handle('network.inspect', async (job) => controller.inspect(job.input.id));
    ctx.handle('network.remove', async (job) => controller.remove(job.input.id));
    ctx.handle('network.connect', async (job) => controller.connect(job.input.id, job.input.container, job.input.endpointConfig));
    ctx.handle('network.disconnect', async (job) => controller.disconnect(job.input.id, job.input.container, job.input.force ?? false));
    ctx.handle('network.prune', async (job) => controller.prune(job.input.filters));
    ctx.onShutdown(() => controller.shutdown());
    await controller.restore();
    setImmediate(() => (loaded = true));
  },
});
