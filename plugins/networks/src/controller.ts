import { randomBytes } from 'node:crypto';
import { mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type CapabilityProviders,
  type ContainerInspect,
  type DriverEndpoint,
  type DriverNetwork,
  type Engine,
  EngineError,
  type EndpointSettings,
  type Logger,
  type NetworkContainer,
  type NetworkCreateBody,
  type NetworkDriver,
  type NetworkFilters,
  type NetworkResource,
  type NetworkService,
  type NetworkSettings,
  type PortBinding,
  type PortRequest,
  type Sandbox,
  type SandboxRequest,
  conflict,
  errorMessage,
  eventBusOf,
  invalid,
  notFound,
  writeJsonAtomic,
} from '@tsengine/core';
import { createNetworkNamespace, removeNetworkNamespace } from '@tsengine/linux';
import { contains, macForIp, overlaps, parseCidr, parseIp } from './cidr.js';
import { type HostsEntry, hostsContent, parseExtraHost, resolvConfContent, rewriteInPlace } from './files.js';
import type { AddressPool, Ipam } from './ipam.js';

const forbidden = (message: string) => new EngineError('forbidden', message);

/** What one network's file under <dataRoot>/network/networks holds. */
export interface NetworkRecord {
  Id: string;
  Name: string;
  Created: string;
  Driver: string;
  Internal: boolean;
  Attachable: boolean;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: Array<{ Subnet: string; Gateway: string; IPRange?: string }> };
  Options: Record<string, string>;
  Labels: Record<string, string>;
  /** bridge, host and none: made by the daemon, never removed by users. */
  Builtin: boolean;
}

/** A container's wish for one network, kept from create (or connect) until rm (or disconnect). */
interface EndpointWish {
  aliases: string[];
  /** --ip: the address must be this one. */
  ipv4?: string;
  links?: string[];
}

/** What <dataRoot>/network/containers/<id>.json holds. */
interface ContainerNetworks {
  id: string;
  /** Network ID → wish, in the order the interfaces are made (eth0 first). */
  networks: Record<string, EndpointWish>;
}

interface ActiveEndpoint {
  networkId: string;
  endpoint: DriverEndpoint;
  bindings: PortBinding[];
  aliases: string[];
}

type SandboxKind = 'endpoints' | 'host' | 'none' | 'container';

interface LiveSandbox {
  id: string;
  containerId: string;
  name: string;
  hostname: string;
  kind: SandboxKind;
  /** Our namespace file (endpoints/none), or the joined container's. */
  netnsPath: string;
  ownsNetns: boolean;
  request: SandboxRequest;
  files: Sandbox['files'];
  endpoints: Map<string, ActiveEndpoint>;
  linkHosts: HostsEntry[];
  linkRules: Array<{ networkId: string; from: string; to: string; ports: Array<{ port: number; protocol: 'tcp' | 'udp' }> }>;
}

export interface ControllerOptions {
  /** "10.200.0.1/24": the default bridge's gateway address and subnet. */
  bip?: string;
  defaultAddressPools?: AddressPool[];
  /** The default bridge's device name (default tse0). */
  bridgeName?: string;
  /** Containers on the default bridge may talk to each other (default true). */
  icc?: boolean;
  mtu?: number;
}

const NAME_RE = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;
const BRIDGE_NAME_OPTION = 'com.docker.network.bridge.name';

function newId(): string {
  return randomBytes(32).toString('hex');
}

/** One job at a time over the controller's state; the drivers' commands make every step async. */
class Lock {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const next = this.tail.then(fn, fn);
    this.tail = next.catch(() => undefined);
    return next;
  }
}

/**
 * The network controller (libnetwork's controller): networks persisted under
 * <dataRoot>/network, sandboxes (a network namespace per container, made here), endpoints through
 * the networks' drivers, addresses through IPAM, and the files that name things: /etc/hosts keeps
 * the peers of every user-defined network current (Docker 1.9's way), so names survive connect
 * and disconnect without a resolver process.
 */
export class NetworkController implements NetworkService {
  private readonly networks = new Map<string, NetworkRecord>();
  private readonly sandboxes = new Map<string, LiveSandbox>();
  private readonly wishes = new Map<string, ContainerNetworks>();
  /** Endpoints of torn-down sandboxes that their drivers are still removing, by container. */
  private readonly leaving = new Map<string, Promise<void>>();
  private readonly lock = new Lock();
  private readonly networksDir: string;
  private readonly containersDir: string;
  private readonly netnsDir: string;

  constructor(
    dataDir: string,
    execRoot: string,
    private readonly drivers: CapabilityProviders<NetworkDriver>,
    private readonly ipam: () => Ipam,
    private readonly engine: Engine,
    private readonly log: Logger,
    private readonly options: ControllerOptions,
  ) {
    this.networksDir = join(dataDir, 'networks');
    this.containersDir = join(dataDir, 'containers');
    this.netnsDir = join(execRoot, 'netns');
  }

  // ------------------------------------------------------------------------------------------
  // Start and shutdown

  async restore(): Promise<void> {
    await mkdir(this.networksDir, { recursive: true, mode: 0o700 });
    await mkdir(this.containersDir, { recursive: true, mode: 0o700 });
    await mkdir(this.netnsDir, { recursive: true, mode: 0o700 });
    // Namespaces of containers that ran under an earlier daemon: nothing runs in them any more.
    for (const stale of await readdir(this.netnsDir)) removeNetworkNamespace(join(this.netnsDir, stale));
    for (const file of await readdir(this.networksDir)) {
      try {
        const record = JSON.parse(await readFile(join(this.networksDir, file), 'utf8')) as NetworkRecord;
        this.networks.set(record.Id, record);
      } catch (err) {
        this.log.warn({ file, err: errorMessage(err) }, 'skipping a network whose file cannot be read');
      }
    }
    for (const file of await readdir(this.containersDir)) {
      try {
        const wish = JSON.parse(await readFile(join(this.containersDir, file), 'utf8')) as ContainerNetworks;
        this.wishes.set(wish.id, wish);
      } catch (err) {
        this.log.warn({ file, err: errorMessage(err) }, 'skipping a container network file that cannot be read');
      }
    }
    await this.ensurePredefined();
    for (const record of this.networks.values()) {
      if (!this.drivers.has(record.Driver)) {
        this.log.warn({ network: record.Name, driver: record.Driver }, 'network driver not loaded; the network stays unusable');
        continue;
      }
      await this.drivers.get(record.Driver).up(this.driverNetwork(record));
    }
    this.log.info({ networks: this.networks.size }, 'networks restored');
  }

  /** Tears every sandbox down and takes every network's devices and rules away (records stay). */
  async shutdown(): Promise<void> {
    await this.lock.run(async () => {
      for (const id of [...this.sandboxes.keys()]) await this.tearDownLocked(id).catch((err) => this.log.warn({ id, err: errorMessage(err) }, 'sandbox tear-down failed'));
      await this.leftAll();
      for (const record of this.networks.values()) {
        if (!this.drivers.has(record.Driver)) continue;
        await this.drivers
          .get(record.Driver)
          .down(this.driverNetwork(record))
          .catch((err) => this.log.warn({ network: record.Name, err: errorMessage(err) }, 'network down failed'));
      }
    });
  }

  private async ensurePredefined(): Promise<void> {
    if (this.drivers.has('null') && !this.byName('none')) await this.saveNetwork(this.predefined('none', 'null', null, {}));
    if (this.drivers.has('host') && !this.byName('host')) await this.saveNetwork(this.predefined('host', 'host', null, {}));
    if (!this.drivers.has('bridge')) return;
    const existing = this.byName('bridge');
    const bridgeName = this.options.bridgeName ?? 'tse0';
    const bip = this.options.bip ? parseBip(this.options.bip) : undefined;
    const wanted = {
      'com.docker.network.bridge.default_bridge': 'true',
      'com.docker.network.bridge.enable_icc': String(this.options.icc ?? true),
      'com.docker.network.bridge.enable_ip_masquerade': 'true',
      'com.docker.network.bridge.host_binding_ipv4': '0.0.0.0',
      [BRIDGE_NAME_OPTION]: bridgeName,
      'com.docker.network.driver.mtu': String(this.options.mtu ?? 1500),
    };
    if (existing) {
      const pool = existing.IPAM.Config[0];
      const subnetChanged = bip !== undefined && (pool?.Subnet !== bip.subnet || pool?.Gateway !== bip.gateway);
      const optionsChanged = JSON.stringify(existing.Options) !== JSON.stringify(wanted);
      if (!subnetChanged && !optionsChanged) return;
      // The daemon's options changed: the old bridge goes (it may still exist after a crash).
      if (this.drivers.has(existing.Driver)) await this.drivers.get(existing.Driver).down(this.driverNetwork(existing)).catch(() => undefined);
      if (subnetChanged && pool) await this.ipam().releasePool(pool.Subnet);
      if (subnetChanged && bip) {
        const newPool = await this.ipam().requestPool({ subnet: bip.subnet, gateway: bip.gateway });
        existing.IPAM.Config = [{ Subnet: newPool.subnet, Gateway: newPool.gateway }];
      }
      existing.Options = wanted;
      await this.saveNetwork(existing);
      return;
    }
    const pool = bip
      ? await this.ipam().requestPool({ subnet: bip.subnet, gateway: bip.gateway })
      : await this.ipam().requestPool({ avoid: await hostRoutes() });
    await this.saveNetwork(this.predefined('bridge', 'bridge', { Subnet: pool.subnet, Gateway: pool.gateway }, wanted));
  }

  private predefined(name: string, driver: string, pool: { Subnet: string; Gateway: string } | null, options: Record<string, string>): NetworkRecord {
    return {
      Id: newId(),
      Name: name,
      Created: new Date().toISOString(),
      Driver: driver,
      Internal: false,
      Attachable: false,
      IPAM: { Driver: 'default', Options: null, Config: pool ? [pool] : [] },
      Options: options,
      Labels: {},
      Builtin: true,
    };
  }

  // ------------------------------------------------------------------------------------------
  // NetworkService (what the containers plugin calls)

  async validate(request: SandboxRequest): Promise<void> {
    await this.lock.run(async () => {
      let wish: ContainerNetworks;
      try {
        wish = this.wishFromRequest(request);
      } catch (err) {
        // The docker CLI takes any 404 from create for a missing image and starts pulling it.
        if (err instanceof EngineError && err.kind === 'notfound') throw invalid(err.message, err);
        throw err;
      }
      await this.saveWish(wish);
    });
  }

  setUp(request: SandboxRequest): Promise<Sandbox> {
    return this.lock.run(async () => {
      const started = performance.now();
      const sandbox = await this.setUpLocked(request);
      this.log.debug({ id: request.containerId, ms: Math.round(performance.now() - started) }, 'sandbox set up');
      return sandbox;
    });
  }

  tearDown(containerId: string): Promise<void> {
    return this.lock.run(async () => {
      const started = performance.now();
      await this.tearDownLocked(containerId);
      this.log.debug({ id: containerId, ms: Math.round(performance.now() - started) }, 'sandbox torn down');
    });
  }

  forget(containerId: string): Promise<void> {
    return this.lock.run(async () => {
      await this.tearDownLocked(containerId);
      for (const record of this.networks.values()) {
        const subnet = record.IPAM.Config[0]?.Subnet;
        if (!subnet) continue;
        const held = this.ipam().addressOf(subnet, containerId);
        if (held) await this.ipam().releaseAddress(subnet, held);
      }
      this.wishes.delete(containerId);
      await rm(join(this.containersDir, `${containerId}.json`), { force: true });
    });
  }

  settings(containerId: string): NetworkSettings | undefined {
    const sandbox = this.sandboxes.get(containerId);
    const wish = this.wishes.get(containerId);
    if (!sandbox && !wish) return undefined;
    const settings: NetworkSettings = {
      Bridge: '',
      SandboxID: sandbox?.id ?? '',
      SandboxKey: sandbox && sandbox.kind !== 'host' ? sandbox.netnsPath : '',
      HairpinMode: false,
      LinkLocalIPv6Address: '',
      LinkLocalIPv6PrefixLen: 0,
      Ports: {},
      SecondaryIPAddresses: null,
      SecondaryIPv6Addresses: null,
      EndpointID: '',
      Gateway: '',
      GlobalIPv6Address: '',
      GlobalIPv6PrefixLen: 0,
      IPAddress: '',
      IPPrefixLen: 0,
      IPv6Gateway: '',
      MacAddress: '',
      Networks: {},
    };
    if (sandbox?.kind === 'container') return settings;
    for (const [networkId, w] of Object.entries(wish?.networks ?? {})) {
      const record = this.networks.get(networkId);
      if (!record) continue;
      const active = sandbox?.endpoints.get(networkId);
      const ep: EndpointSettings = {
        IPAMConfig: w.ipv4 ? { IPv4Address: w.ipv4 } : null,
        Links: w.links?.length ? w.links : null,
        Aliases: w.aliases.length ? w.aliases : null,
        MacAddress: active?.endpoint.macAddress ?? '',
        DriverOpts: null,
        NetworkID: record.Id,
        EndpointID: active?.endpoint.id ?? '',
        Gateway: active && !record.Internal ? (record.IPAM.Config[0]?.Gateway ?? '') : '',
        IPAddress: active?.endpoint.address ?? '',
        IPPrefixLen: active?.endpoint.prefixLength ?? 0,
        IPv6Gateway: '',
        GlobalIPv6Address: '',
        GlobalIPv6PrefixLen: 0,
        DNSNames: active && !record.Builtin ? [sandbox!.name, ...w.aliases, sandbox!.containerId.slice(0, 12)] : null,
      };
      settings.Networks[record.Name] = ep;
      if (record.Name === 'bridge' && active) {
        Object.assign(settings, { EndpointID: ep.EndpointID, Gateway: ep.Gateway, IPAddress: ep.IPAddress, IPPrefixLen: ep.IPPrefixLen, MacAddress: ep.MacAddress });
      }
    }
    if (sandbox) {
      for (const port of Object.keys(sandbox.request.exposedPorts)) settings.Ports[normalisePortKey(port)] = null;
      for (const active of sandbox.endpoints.values()) {
        for (const b of active.bindings) {
          const key = `${b.containerPort}/${b.protocol}`;
          (settings.Ports[key] ??= []).push({ HostIp: b.hostIp, HostPort: String(b.hostPort) });
        }
      }
    }
    return settings;
  }

  // ------------------------------------------------------------------------------------------
  // Sandboxes

  /** The networks a new container asks for, checked the way its start would check them. */
  private wishFromRequest(request: SandboxRequest): ContainerNetworks {
    const mode = request.networkMode;
    const host = request.hostConfig;
    const links = stringList(host.Links);
    const wish: ContainerNetworks = { id: request.containerId, networks: {} };
    if (mode.startsWith('container:')) {
      if (stringList(host.Dns).length || stringList(host.ExtraHosts).length) throw invalid('conflicting options: dns and the network mode');
      if (Object.keys(host.PortBindings ?? {}).length || host.PublishAllPorts === true) throw invalid('conflicting options: port publishing and the container type network mode');
      return wish;
    }
    const primary = this.lookupNetwork(mode === '' || mode === 'default' ? (this.byName('bridge') ? 'bridge' : 'none') : mode);
    const others = Object.keys(request.endpoints).filter((n) => n !== mode && n !== 'default' && n !== '');
    const names = [primary, ...others.map((n) => this.lookupNetwork(n))].filter((n, i, all) => all.findIndex((m) => m.Id === n.Id) === i);
    for (const record of names) {
      const config = request.endpoints[record.Name] ?? request.endpoints[record.Id] ?? (record.Id === primary.Id ? (request.endpoints[mode] ?? request.endpoints['default']) : undefined) ?? {};
      const sandboxKind = this.sandboxKindOf(record);
      if (sandboxKind !== 'endpoints' && names.length > 1) throw invalid(`container cannot be connected to multiple networks with one of the networks in private (${record.Name}) mode`);
      if (sandboxKind === 'host' && links.length) throw invalid("conflicting options: host type networking can't be used with links. This would result in undefined behavior");
      wish.networks[record.Id] = this.wishFor(record, config, record.Id === primary.Id ? links : []);
    }
    portRequests(request);
    for (const spec of stringList(host.ExtraHosts)) parseExtraHostChecked(spec);
    return wish;
  }

  private wishFor(record: NetworkRecord, config: EndpointSettings, links: string[]): EndpointWish {
    const aliases = Array.isArray(config.Aliases) ? config.Aliases.map(String).filter(Boolean) : [];
    const ipv4 = config.IPAMConfig?.IPv4Address || undefined;
    if (this.sandboxKindOf(record) !== 'endpoints') {
      if (ipv4 || aliases.length) throw invalid(`network-scoped alias and IP address are supported only for containers in user defined networks`);
      return { aliases: [] };
    }
    if (aliases.length && record.Builtin) throw invalid('network-scoped alias is supported only for containers in user defined networks');
    if (ipv4) {
      if (record.Builtin) throw invalid('user specified IP address is supported on user defined networks only');
      const address = parseIp(ipv4);
      const subnet = record.IPAM.Config[0]?.Subnet;
      if (address === undefined) throw invalid(`invalid IPv4 address: ${ipv4}`);
      if (!subnet || !contains(parseCidr(subnet), address)) throw invalid(`Invalid address ${ipv4}: It does not belong to any of this network's subnets`);
    }
    return { aliases, ...(ipv4 ? { ipv4 } : {}), ...(links.length ? { links } : {}) };
  }

  private sandboxKindOf(record: NetworkRecord): SandboxKind {
    const driver = this.drivers.has(record.Driver) ? this.drivers.get(record.Driver) : undefined;
    if (!driver) throw new EngineError('unavailable', `network ${record.Name} cannot be used: its driver "${record.Driver}" is not loaded`);
    return driver.sandbox ?? 'endpoints';
  }

  private async setUpLocked(request: SandboxRequest): Promise<Sandbox> {
    const id = request.containerId;
    if (this.sandboxes.has(id)) await this.tearDownLocked(id);
    // A restart joins with the same interface names its last run's endpoints had.
    await this.leaving.get(id);
    let wish = this.wishes.get(id);
    if (!wish) {
      wish = this.wishFromRequest(request);
      await this.saveWish(wish);
    }
    const files = { hosts: join(request.stateDir, 'hosts'), hostname: join(request.stateDir, 'hostname'), resolvConf: join(request.stateDir, 'resolv.conf') };
    const hostname = request.domainname ? `${request.hostname}.${request.domainname}` : request.hostname;

    if (request.networkMode.startsWith('container:')) {
      const otherId = request.networkMode.slice('container:'.length);
      const other = this.sandboxes.get(otherId);
      if (!other) throw conflict(`cannot join network of a non running container: ${otherId}`);
      const sandbox: LiveSandbox = { ...this.emptySandbox(request, 'container', other.netnsPath, false), files: other.files };
      this.sandboxes.set(id, sandbox);
      return { network: other.kind === 'host' ? { mode: 'host' } : { mode: 'netns', path: other.netnsPath }, files: other.files, env: [] };
    }

    const networkIds = Object.keys(wish.networks).filter((n) => this.networks.has(n));
    const first = this.networks.get(networkIds[0] ?? '');
    if (!first) throw notFound(`network ${request.networkMode || 'bridge'} not found`);
    const kind = this.sandboxKindOf(first);
    const extraHosts = stringList(request.hostConfig.ExtraHosts);
    const dns = { dns: stringList(request.hostConfig.Dns), search: stringList(request.hostConfig.DnsSearch), options: stringList(request.hostConfig.DnsOptions) };
    await writeFile(files.hostname, `${hostname}\n`);

    if (kind === 'host') {
      const sandbox = this.emptySandbox(request, 'host', '/proc/1/ns/net', false);
      sandbox.files = files;
      let hostHosts = '';
      try {
        hostHosts = await readFile('/etc/hosts', 'utf8');
      } catch {
        hostHosts = hostsContent([], [], [], []);
      }
      const extra = extraHosts.map((s) => parseExtraHost(s, undefined));
      await writeFile(files.hosts, hostHosts + extra.map((e) => `${e.address}\t${e.names.join(' ')}\n`).join(''));
      await writeFile(files.resolvConf, await resolvConfContent({ ...dns, keepLoopback: true }));
      this.sandboxes.set(id, sandbox);
      return { network: { mode: 'host' }, files, env: [] };
    }

    await mkdir(this.netnsDir, { recursive: true, mode: 0o700 });
    const netnsPath = join(this.netnsDir, id);
    removeNetworkNamespace(netnsPath);
    createNetworkNamespace(netnsPath);
    const sandbox = this.emptySandbox(request, kind, netnsPath, true);
    sandbox.files = files;
    this.sandboxes.set(id, sandbox);
    const env: string[] = [];
    try {
      if (kind === 'endpoints') {
        const ports = portRequests(request);
        let routed = false;
        for (const networkId of networkIds) {
          const record = this.networks.get(networkId)!;
          const defaultRoute = !routed && !record.Internal;
          if (defaultRoute) routed = true;
          await this.joinLocked(sandbox, record, wish.networks[networkId]!, defaultRoute ? ports : [], defaultRoute);
        }
        const bridge = this.byName('bridge');
        const links = bridge ? (wish.networks[bridge.Id]?.links ?? []) : [];
        if (bridge && links.length) env.push(...(await this.applyLinks(sandbox, bridge, links)));
      }
      await writeFile(files.resolvConf, await resolvConfContent({ ...dns, keepLoopback: false }));
      await writeFile(files.hosts, '');
      await this.refreshHosts(sandbox);
      await this.refreshPeers(sandbox);
    } catch (err) {
      await this.tearDownLocked(id).catch(() => undefined);
      throw err;
    }
    return { network: { mode: 'netns', path: netnsPath }, files, env };
  }

  private emptySandbox(request: SandboxRequest, kind: SandboxKind, netnsPath: string, ownsNetns: boolean): LiveSandbox {
    return {
      id: newId(),
      containerId: request.containerId,
      name: request.name,
      hostname: request.hostname,
      kind,
      netnsPath,
      ownsNetns,
      request,
      files: { hosts: '', hostname: '', resolvConf: '' },
      endpoints: new Map(),
      linkHosts: [],
      linkRules: [],
    };
  }

  private async joinLocked(sandbox: LiveSandbox, record: NetworkRecord, wish: EndpointWish, ports: PortRequest[], defaultRoute: boolean): Promise<void> {
    const pool = record.IPAM.Config[0];
    if (!pool) throw invalid(`network ${record.Name} has no subnet`);
    const ipam = this.ipam();
    const address = await ipam.requestAddress(pool.Subnet, sandbox.containerId, wish.ipv4, wish.ipv4 !== undefined);
    const used = new Set([...sandbox.endpoints.values()].map((e) => e.endpoint.interfaceName));
    let index = 0;
    while (used.has(`eth${index}`)) index++;
    const endpoint: DriverEndpoint = {
      id: newId(),
      containerId: sandbox.containerId,
      containerName: sandbox.name,
      address,
      prefixLength: parseCidr(pool.Subnet).prefix,
      macAddress: macForIp(address),
      interfaceName: `eth${index}`,
      defaultRoute,
      ports,
    };
    const bindings = await this.drivers.get(record.Driver).join(this.driverNetwork(record), endpoint, sandbox.netnsPath);
    sandbox.endpoints.set(record.Id, { networkId: record.Id, endpoint, bindings, aliases: wish.aliases });
    this.emit('connect', record, sandbox.containerId);
  }

  private async leaveLocked(sandbox: LiveSandbox, networkId: string): Promise<void> {
    const active = sandbox.endpoints.get(networkId);
    if (!active) return;
    sandbox.endpoints.delete(networkId);
    const record = this.networks.get(networkId);
    if (record && this.drivers.has(record.Driver)) await this.drivers.get(record.Driver).leave(this.driverNetwork(record), active.endpoint, sandbox.netnsPath);
    if (record) this.emit('disconnect', record, sandbox.containerId);
  }

  private async tearDownLocked(containerId: string): Promise<void> {
    const sandbox = this.sandboxes.get(containerId);
    if (!sandbox) return;
    for (const rule of sandbox.linkRules) {
      const record = this.networks.get(rule.networkId);
      const driver = record && this.drivers.has(record.Driver) ? this.drivers.get(record.Driver) : undefined;
      await driver?.link?.(this.driverNetwork(record!), rule.from, rule.to, rule.ports, false).catch(() => undefined);
    }
    // Deleting a veth pair waits out an RCU grace period in the kernel (15–30 ms here); a stopping
    // container need not wait for it. Only a restart of the same container, a network's removal
    // and shutdown wait (see leftAll); the address may be handed out again meanwhile, with the
    // same MAC (macForIp), so a peer's ARP cache stays right.
    const leaves = [...sandbox.endpoints.keys()].map((networkId) =>
      this.leaveLocked(sandbox, networkId).catch((err) => this.log.warn({ containerId, err: errorMessage(err) }, 'leaving a network failed')),
    );
    const left = Promise.all([this.leaving.get(containerId), ...leaves]).then(() => undefined);
    this.leaving.set(containerId, left);
    void left.then(() => {
      if (this.leaving.get(containerId) === left) this.leaving.delete(containerId);
    });
    if (sandbox.ownsNetns) removeNetworkNamespace(sandbox.netnsPath);
    this.sandboxes.delete(containerId);
    // Containers sharing this one's namespace lose it with it.
    for (const other of this.sandboxes.values()) if (other.kind === 'container' && other.netnsPath === sandbox.netnsPath && sandbox.ownsNetns) this.sandboxes.delete(other.containerId);
    await this.refreshPeers(sandbox).catch(() => undefined);
  }

  // ------------------------------------------------------------------------------------------
  // Names: /etc/hosts of every container, legacy links

  private async applyLinks(sandbox: LiveSandbox, bridge: NetworkRecord, links: string[]): Promise<string[]> {
    const env: string[] = [];
    const own = sandbox.endpoints.get(bridge.Id);
    for (const link of links) {
      const { target, alias } = parseLink(link);
      const info = await this.inspectContainer(target).catch(() => undefined);
      const peer = info ? this.sandboxes.get(info.Id) : undefined;
      const address = peer?.endpoints.get(bridge.Id)?.endpoint.address;
      if (!info || !peer || !address) throw invalid(`Cannot link to a non running container: ${target} AS /${sandbox.name}/${alias}`);
      const peerName = info.Name.replace(/^\//, '');
      sandbox.linkHosts.push({ address, names: [alias, info.Id.slice(0, 12), peerName].filter((n, i, all) => all.indexOf(n) === i) });
      const ports = Object.keys({ ...(info.Config.ExposedPorts ?? {}) })
        .map(normalisePortKey)
        .map((key) => ({ port: Number(key.split('/')[0]), protocol: (key.split('/')[1] === 'udp' ? 'udp' : 'tcp') as 'tcp' | 'udp' }))
        .sort((a, b) => a.port - b.port || a.protocol.localeCompare(b.protocol));
      env.push(...linkEnv(alias, `/${sandbox.name}/${alias}`, address, ports, info.Config.Env ?? []));
      const driver = this.drivers.get(bridge.Driver);
      if (own && ports.length && driver.link && bridge.Options['com.docker.network.bridge.enable_icc'] === 'false') {
        await driver.link(this.driverNetwork(bridge), own.endpoint.address, address, ports, true);
        sandbox.linkRules.push({ networkId: bridge.Id, from: own.endpoint.address, to: address, ports });
      }
    }
    return env;
  }

  private async refreshHosts(sandbox: LiveSandbox): Promise<void> {
    if (sandbox.kind !== 'endpoints' && sandbox.kind !== 'none') return;
    const firstGateway = [...sandbox.endpoints.values()].map((a) => this.networks.get(a.networkId)?.IPAM.Config[0]?.Gateway).find(Boolean);
    const extra = stringList(sandbox.request.hostConfig.ExtraHosts).map((s) => parseExtraHost(s, firstGateway));
    const hostname = sandbox.request.domainname ? `${sandbox.hostname}.${sandbox.request.domainname} ${sandbox.hostname}` : sandbox.hostname;
    const own: HostsEntry[] = [...sandbox.endpoints.values()].map((a) => ({ address: a.endpoint.address, names: [hostname] }));
    const peers: HostsEntry[] = [];
    for (const networkId of sandbox.endpoints.keys()) {
      const record = this.networks.get(networkId);
      if (!record || record.Builtin) continue;
      for (const other of this.sandboxes.values()) {
        if (other === sandbox) continue;
        const theirs = other.endpoints.get(networkId);
        if (!theirs) continue;
        peers.push({ address: theirs.endpoint.address, names: [other.name, ...theirs.aliases, other.containerId.slice(0, 12)].filter((n, i, all) => all.indexOf(n) === i) });
      }
    }
    await rewriteInPlace(sandbox.files.hosts, hostsContent(own, extra, sandbox.linkHosts, peers));
  }

  /** Rewrites the hosts file of every container that shares a user-defined network with `sandbox`. */
  private async refreshPeers(sandbox: LiveSandbox): Promise<void> {
    const networkIds = new Set([...sandbox.endpoints.keys(), ...Object.keys(this.wishes.get(sandbox.containerId)?.networks ?? {})]);
    for (const other of this.sandboxes.values()) {
      if (other === sandbox) continue;
      if ([...other.endpoints.keys()].some((n) => networkIds.has(n))) await this.refreshHosts(other).catch((err) => this.log.warn({ id: other.containerId, err: errorMessage(err) }, 'updating /etc/hosts failed'));
    }
  }

  private async inspectContainer(ref: string): Promise<ContainerInspect> {
    return this.engine.job('container.inspect', { id: ref }).run();
  }

  // ------------------------------------------------------------------------------------------
  // Network jobs

  create(body: NetworkCreateBody): Promise<{ Id: string; Warning: string }> {
    return this.lock.run(async () => {
      const name = typeof body?.Name === 'string' ? body.Name : '';
      if (!name) throw invalid('network name cannot be empty');
      if (!NAME_RE.test(name)) throw invalid(`invalid network name "${name}": only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed`);
      if (this.byName(name)) throw conflict(`network with name ${name} already exists`);
      const driverName = body.Driver || 'bridge';
      if (!this.drivers.has(driverName)) throw notFound(`could not find plugin ${driverName} in v1 plugin registry: plugin not found`);
      const driver = this.drivers.get(driverName);
      if (driver.sandbox) throw forbidden(`only one instance of "${driverName}" network is allowed`);
      if (body.EnableIPv6) throw invalid('IPv6 networks are not supported by this engine');
      const ipamDriver = body.IPAM?.Driver || 'default';
      if (ipamDriver !== 'default') throw notFound(`could not find plugin ${ipamDriver} in v1 plugin registry: plugin not found`);
      const configs = (body.IPAM?.Config ?? []).filter((c) => c && (c.Subnet || c.Gateway || c.IPRange));
      if (configs.length > 1) throw invalid('only one IPv4 subnet per network is supported');
      const config = configs[0] ?? {};
      if (!config.Subnet && (config.Gateway || config.IPRange)) throw invalid('a gateway or an IP range needs a subnet (--subnet)');
      const options = { ...(body.Options ?? {}) };
      driver.validateOptions?.(options);
      const bridgeName = options[BRIDGE_NAME_OPTION];
      if (bridgeName && [...this.networks.values()].some((n) => n.Options[BRIDGE_NAME_OPTION] === bridgeName)) throw conflict(`bridge name ${bridgeName} is already in use by another network`);
      if (config.Subnet) {
        const wanted = parseCidr(config.Subnet);
        for (const route of await hostRoutes()) {
          const ours = [...this.networks.values()].some((n) => n.IPAM.Config[0]?.Subnet === route);
          if (!ours && overlaps(parseCidr(route, true), wanted)) throw forbidden(`Pool overlaps with other one on this address space`);
        }
      }
      const pool = await this.ipam().requestPool({
        ...(config.Subnet ? { subnet: config.Subnet } : { avoid: await hostRoutes() }),
        ...(config.Gateway ? { gateway: config.Gateway } : {}),
        ...(config.IPRange ? { ipRange: config.IPRange } : {}),
      });
      const record: NetworkRecord = {
        Id: newId(),
        Name: name,
        Created: new Date().toISOString(),
        Driver: driverName,
        Internal: body.Internal === true,
        Attachable: body.Attachable === true,
        IPAM: {
          Driver: 'default',
          Options: body.IPAM?.Options ?? {},
          Config: [{ Subnet: pool.subnet, Gateway: pool.gateway, ...(pool.ipRange ? { IPRange: pool.ipRange } : {}) }],
        },
        Options: options,
        Labels: { ...(body.Labels ?? {}) },
        Builtin: false,
      };
      try {
        await driver.up(this.driverNetwork(record));
        await this.saveNetwork(record);
      } catch (err) {
        await driver.down(this.driverNetwork(record)).catch(() => undefined);
        await this.ipam().releasePool(pool.subnet).catch(() => undefined);
        await rm(join(this.networksDir, `${record.Id}.json`), { force: true });
        this.networks.delete(record.Id);
        throw err;
      }
      this.emit('create', record);
      this.log.info({ network: name, id: record.Id, subnet: pool.subnet }, 'network created');
      return { Id: record.Id, Warning: '' };
    });
  }

  list(filters: NetworkFilters = {}): NetworkResource[] {
    const known = new Set(['name', 'id', 'driver', 'label', 'type', 'dangling', 'scope']);
    for (const key of Object.keys(filters)) if (!known.has(key)) throw invalid(`invalid filter '${key}'`);
    return [...this.networks.values()]
      .filter((record) => matchesFilters(record, filters, this.activeCount(record.Id)))
      .sort((a, b) => a.Created.localeCompare(b.Created))
      .map((record) => this.resource(record));
  }

  inspect(ref: string): NetworkResource {
    return this.resource(this.lookupNetwork(ref));
  }

  remove(ref: string): Promise<void> {
    return this.lock.run(async () => {
      const record = this.lookupNetwork(ref);
      if (record.Builtin) throw forbidden(`${record.Name} is a pre-defined network and cannot be removed`);
      if (this.activeCount(record.Id) > 0) throw forbidden(`error while removing network: network ${record.Name} id ${record.Id} has active endpoints`);
      await this.removeLocked(record);
    });
  }

  prune(filters: NetworkFilters = {}): Promise<{ NetworksDeleted: string[] }> {
    return this.lock.run(async () => {
      const deleted: string[] = [];
      for (const record of [...this.networks.values()]) {
        if (record.Builtin || this.activeCount(record.Id) > 0) continue;
        if (!matchesFilters(record, { ...filters }, 0, true)) continue;
        await this.removeLocked(record);
        deleted.push(record.Name);
      }
      return { NetworksDeleted: deleted };
    });
  }

  connect(ref: string, containerRef: string, config: EndpointSettings | null | undefined): Promise<void> {
    return this.lock.run(async () => {
      const record = this.lookupNetwork(ref);
      const info = await this.inspectContainer(containerRef);
      const id = info.Id;
      const mode = String(info.HostConfig.NetworkMode ?? '');
      if (record.Driver === 'host' || record.Driver === 'null') throw forbidden(`container cannot be disconnected from host network or connected to ${record.Name} network`);
      if (mode === 'host' || mode === 'none' || mode.startsWith('container:')) throw forbidden('container sharing network namespace with another container or host cannot be connected to any other network');
      let wish = this.wishes.get(id);
      if (!wish) {
        wish = { id, networks: {} };
        const primary = this.lookupNetwork(mode === '' || mode === 'default' ? 'bridge' : mode);
        wish.networks[primary.Id] = { aliases: [] };
      }
      if (wish.networks[record.Id]) throw forbidden(`endpoint with name ${info.Name.replace(/^\//, '')} already exists in network ${record.Name}`);
      const endpointWish = this.wishFor(record, config ?? {}, []);
      const sandbox = this.sandboxes.get(id);
      if (sandbox && sandbox.kind === 'endpoints') {
        const routed = [...sandbox.endpoints.values()].some((a) => a.endpoint.defaultRoute);
        await this.joinLocked(sandbox, record, endpointWish, [], !routed && !record.Internal);
        await this.refreshHosts(sandbox);
        await this.refreshPeers(sandbox);
      }
      wish.networks[record.Id] = endpointWish;
      await this.saveWish(wish);
      this.log.info({ network: record.Name, container: id }, 'container connected');
    });
  }

  disconnect(ref: string, containerRef: string, force: boolean): Promise<void> {
    return this.lock.run(async () => {
      const record = this.lookupNetwork(ref);
      const info = await this.inspectContainer(containerRef).catch((err: unknown) => {
        if (force) return undefined;
        throw err;
      });
      const id = info?.Id ?? containerRef;
      const wish = this.wishes.get(id);
      if (record.Driver === 'host') throw forbidden('container cannot be disconnected from host network or connected to host network');
      if (!wish?.networks[record.Id]) throw forbidden(`container ${id} is not connected to network ${record.Name}`);
      const sandbox = this.sandboxes.get(id);
      if (sandbox) {
        await this.leaveLocked(sandbox, record.Id);
        await this.refreshHosts(sandbox);
      }
      delete wish.networks[record.Id];
      const subnet = record.IPAM.Config[0]?.Subnet;
      const held = subnet ? this.ipam().addressOf(subnet, id) : undefined;
      if (subnet && held) await this.ipam().releaseAddress(subnet, held);
      await this.saveWish(wish);
      if (sandbox) for (const other of this.sandboxes.values()) if (other.endpoints.has(record.Id)) await this.refreshHosts(other);
      this.log.info({ network: record.Name, container: id }, 'container disconnected');
    });
  }

  /** Waits until every endpoint of a torn-down sandbox is gone. */
  private async leftAll(): Promise<void> {
    while (this.leaving.size > 0) await Promise.all([...this.leaving.values()]);
  }

  private async removeLocked(record: NetworkRecord): Promise<void> {
    await this.leftAll();
    if (this.drivers.has(record.Driver)) await this.drivers.get(record.Driver).down(this.driverNetwork(record));
    const subnet = record.IPAM.Config[0]?.Subnet;
    if (subnet) await this.ipam().releasePool(subnet);
    await rm(join(this.networksDir, `${record.Id}.json`), { force: true });
    this.networks.delete(record.Id);
    // Stopped containers that wanted the network lose it, as with Docker (their start would fail otherwise).
    for (const wish of this.wishes.values()) {
      if (!wish.networks[record.Id]) continue;
      delete wish.networks[record.Id];
      await this.saveWish(wish);
    }
    this.emit('destroy', record);
    this.log.info({ network: record.Name, id: record.Id }, 'network removed');
  }

  // ------------------------------------------------------------------------------------------
  // Views and lookups

  private resource(record: NetworkRecord): NetworkResource {
    const containers: Record<string, NetworkContainer> = {};
    for (const sandbox of this.sandboxes.values()) {
      const active = sandbox.endpoints.get(record.Id);
      if (active) {
        containers[sandbox.containerId] = {
          Name: sandbox.name,
          EndpointID: active.endpoint.id,
          MacAddress: active.endpoint.macAddress,
          IPv4Address: `${active.endpoint.address}/${active.endpoint.prefixLength}`,
          IPv6Address: '',
        };
      } else if (sandbox.kind !== 'container' && sandbox.kind !== 'endpoints' && Object.keys(this.wishes.get(sandbox.containerId)?.networks ?? {}).includes(record.Id)) {
        containers[sandbox.containerId] = { Name: sandbox.name, EndpointID: sandbox.id, MacAddress: '', IPv4Address: '', IPv6Address: '' };
      }
    }
    return {
      Name: record.Name,
      Id: record.Id,
      Created: record.Created,
      Scope: 'local',
      Driver: record.Driver,
      EnableIPv6: false,
      IPAM: { Driver: record.IPAM.Driver, Options: record.IPAM.Options, Config: record.IPAM.Config.map((c) => ({ ...c })) },
      Internal: record.Internal,
      Attachable: record.Attachable,
      Ingress: false,
      ConfigFrom: { Network: '' },
      ConfigOnly: false,
      Containers: containers,
      Options: { ...record.Options },
      Labels: { ...record.Labels },
    };
  }

  private activeCount(networkId: string): number {
    let n = 0;
    for (const sandbox of this.sandboxes.values()) if (sandbox.endpoints.has(networkId)) n++;
    return n;
  }

  private byName(name: string): NetworkRecord | undefined {
    for (const record of this.networks.values()) if (record.Name === name) return record;
    return undefined;
  }

  /** By full ID, name, then unique ID prefix; Docker's "network N not found" otherwise. */
  lookupNetwork(ref: string): NetworkRecord {
    const exact = this.networks.get(ref) ?? this.byName(ref);
    if (exact) return exact;
    if (/^[a-f0-9]+$/.test(ref)) {
      const matches = [...this.networks.values()].filter((n) => n.Id.startsWith(ref));
      if (matches.length === 1) return matches[0]!;
      if (matches.length > 1) throw invalid(`network ${ref} is ambiguous (${matches.length} matches found based on ID prefix)`);
    }
    throw notFound(`network ${ref} not found`);
  }

  /** Docker's network events: create, destroy, connect and disconnect (with the container's ID). */
  private emit(action: 'create' | 'destroy' | 'connect' | 'disconnect', record: NetworkRecord, containerId?: string): void {
    const attributes: Record<string, string> = { name: record.Name, type: record.Driver };
    if (containerId) attributes.container = containerId;
    eventBusOf(this.engine).publish({ Type: 'network', Action: action, Actor: { ID: record.Id, Attributes: attributes } });
  }

  private driverNetwork(record: NetworkRecord): DriverNetwork {
    const pool = record.IPAM.Config[0];
    return { id: record.Id, name: record.Name, subnet: pool?.Subnet ?? '', gateway: pool?.Gateway ?? '', internal: record.Internal, options: record.Options };
  }

  private async saveNetwork(record: NetworkRecord): Promise<void> {
    await writeJsonAtomic(join(this.networksDir, `${record.Id}.json`), record);
    this.networks.set(record.Id, record);
  }

  private async saveWish(wish: ContainerNetworks): Promise<void> {
    await writeJsonAtomic(join(this.containersDir, `${wish.id}.json`), wish);
    this.wishes.set(wish.id, wish);
  }
}

// --------------------------------------------------------------------------------------------
// Helpers

function parseBip(bip: string): { subnet: string; gateway: string } {
  const cidr = parseCidr(bip, true);
  const gateway = bip.split('/')[0]!;
  const subnet = `${[cidr.base >>> 24, (cidr.base >>> 16) & 255, (cidr.base >>> 8) & 255, cidr.base & 255].join('.')}/${cidr.prefix}`;
  return { subnet, gateway: parseIp(gateway) === cidr.base ? '' : gateway };
}

/** IPv4 destinations routed on the host (docker0, LANs, VPNs), which a picked subnet must avoid. */
export async function hostRoutes(): Promise<string[]> {
  let table = '';
  try {
    table = await readFile('/proc/net/route', 'utf8');
  } catch {
    return [];
  }
  const routes: string[] = [];
  for (const line of table.split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    if (fields.length < 8) continue;
    const dest = Number.parseInt(fields[1]!, 16);
    const mask = Number.parseInt(fields[7]!, 16);
    if (mask === 0) continue;
    const toIp = (v: number) => [v & 255, (v >>> 8) & 255, (v >>> 16) & 255, (v >>> 24) & 255].join('.');
    const prefix = mask.toString(2).split('').filter((b) => b === '1').length;
    routes.push(`${toIp(dest)}/${prefix}`);
  }
  return routes;
}

function stringList(value: unknown): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string' && v !== '') : [];
}

function parseExtraHostChecked(spec: string): void {
  try {
    parseExtraHost(spec, '0.0.0.0');
  } catch (err) {
    throw invalid(errorMessage(err));
  }
}

function normalisePortKey(key: string): string {
  return key.includes('/') ? key : `${key}/tcp`;
}

/** PortBindings and -P into requests; Docker's messages for what it refuses. */
export function portRequests(request: Pick<SandboxRequest, 'hostConfig' | 'exposedPorts'>): PortRequest[] {
  const out: PortRequest[] = [];
  const bindings = (request.hostConfig.PortBindings ?? {}) as Record<string, Array<{ HostIp?: string; HostPort?: string }> | null>;
  const parseKey = (key: string): { port: number; protocol: 'tcp' | 'udp' } => {
    const [portText, proto = 'tcp'] = normalisePortKey(key).split('/');
    const port = Number(portText);
    if (!/^\d+$/.test(portText ?? '') || port < 1 || port > 65535) throw invalid(`invalid port specification: "${key}"`);
    if (proto !== 'tcp' && proto !== 'udp') throw invalid(`invalid proto: ${proto}`);
    return { port, protocol: proto };
  };
  for (const [key, list] of Object.entries(bindings)) {
    const { port, protocol } = parseKey(key);
    for (const b of list ?? [{}]) {
      const hostPortText = String(b?.HostPort ?? '');
      const hostPort = hostPortText === '' ? 0 : Number(hostPortText.split('-')[0]);
      if (!Number.isInteger(hostPort) || hostPort < 0 || hostPort > 65535) throw invalid(`invalid port specification: "${hostPortText}"`);
      const hostIp = String(b?.HostIp ?? '');
      if (hostIp && parseIp(hostIp) === undefined) throw invalid(`invalid IP address: ${hostIp}`);
      out.push({ containerPort: port, protocol, hostIp, hostPort });
    }
  }
  if (request.hostConfig.PublishAllPorts === true) {
    for (const key of Object.keys(request.exposedPorts)) {
      if (bindings[key] || bindings[normalisePortKey(key)]) continue;
      const { port, protocol } = parseKey(key);
      out.push({ containerPort: port, protocol, hostIp: '', hostPort: 0 });
    }
  }
  return out;
}

/** "name:alias", "/name:/container/alias" or "name" → target and alias. */
function parseLink(link: string): { target: string; alias: string } {
  const [rawTarget = '', rawAlias] = link.split(':');
  const target = rawTarget.replace(/^\//, '');
  const alias = (rawAlias ?? target).split('/').filter(Boolean).pop() ?? target;
  return { target, alias };
}

/** Docker 1.x link variables: ALIAS_NAME, ALIAS_PORT, ALIAS_PORT_80_TCP{,_ADDR,_PORT,_PROTO}, ALIAS_ENV_*. */
export function linkEnv(alias: string, fullName: string, address: string, ports: Array<{ port: number; protocol: string }>, targetEnv: string[]): string[] {
  const prefix = alias.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
  const env = [`${prefix}_NAME=${fullName}`];
  const first = ports[0];
  if (first) env.push(`${prefix}_PORT=${first.protocol}://${address}:${first.port}`);
  for (const { port, protocol } of ports) {
    const base = `${prefix}_PORT_${port}_${protocol.toUpperCase()}`;
    env.push(`${base}=${protocol}://${address}:${port}`, `${base}_ADDR=${address}`, `${base}_PORT=${port}`, `${base}_PROTO=${protocol}`);
  }
  const skip = new Set(['HOME', 'HOSTNAME', 'PATH']);
  for (const entry of targetEnv) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const key = entry.slice(0, eq);
    if (skip.has(key)) continue;
    env.push(`${prefix}_ENV_${key}=${entry.slice(eq + 1)}`);
  }
  return env;
}

function matchesFilters(record: NetworkRecord, filters: NetworkFilters, active: number, prune = false): boolean {
  for (const [key, values] of Object.entries(filters)) {
    if (!values.length) continue;
    const ok = values.some((value) => {
      switch (key) {
        case 'name':
          return record.Name.includes(value);
        case 'id':
          return record.Id.startsWith(value);
        case 'driver':
          return record.Driver === value;
        case 'scope':
          return value === 'local';
        case 'type':
          if (value !== 'custom' && value !== 'builtin') throw invalid(`invalid filter: 'type'='${value}'`);
          return value === 'builtin' ? record.Builtin : !record.Builtin;
        case 'dangling':
          return (value === 'true' || value === '1') === (active === 0 && !record.Builtin);
        case 'label': {
          const eq = value.indexOf('=');
          if (eq < 0) return value in record.Labels;
          return record.Labels[value.slice(0, eq)] === value.slice(eq + 1);
        }
        case 'until':
          return prune ? Date.parse(record.Created) < untilTime(value) : true;
        default:
          return true;
      }
    });
    if (!ok) return false;
  }
  return true;
}

function untilTime(value: string): number {
  if (/^\d+(\.\d+)?$/.test(value)) return Number(value) * 1000;
  const duration = /^(\d+)(s|m|h)$/.exec(value);
  if (duration) return Date.now() - Number(duration[1]) * { s: 1000, m: 60_000, h: 3_600_000 }[duration[2] as 's' | 'm' | 'h'];
  const parsed = Date.parse(value);
  if (Number.isNaN(parsed)) throw invalid(`invalid filter 'until': ${value}`);
  return parsed;
}
