import { closeSync, existsSync, openSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import {
  type DriverEndpoint,
  type DriverNetwork,
  type Logger,
  type NetworkDriver,
  type PortBinding,
  conflict,
  errorMessage,
  invalid,
  systemError,
} from '@tsengine/core';
import { NetlinkError, RouteNetlink } from '@tsengine/linux';
import { BRIDGE_PREFIX, Firewall } from './firewall.js';
import { type PortProxy, proxyTcp, proxyUdp } from './proxy.js';

/** Docker's option names, which `docker network create -o` passes through. */
export const BRIDGE_OPTIONS = {
  name: 'com.docker.network.bridge.name',
  icc: 'com.docker.network.bridge.enable_icc',
  masquerade: 'com.docker.network.bridge.enable_ip_masquerade',
  hostBinding: 'com.docker.network.bridge.host_binding_ipv4',
  mtu: 'com.docker.network.driver.mtu',
  defaultBridge: 'com.docker.network.bridge.default_bridge',
} as const;

const KNOWN_OPTIONS = new Set<string>(Object.values(BRIDGE_OPTIONS));
const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

export function bridgeNameOf(network: DriverNetwork): string {
  return network.options[BRIDGE_OPTIONS.name] || `${BRIDGE_PREFIX}-${network.id.slice(0, 11)}`;
}

function mtuOf(network: DriverNetwork): number {
  const raw = network.options[BRIDGE_OPTIONS.mtu];
  return raw ? Number(raw) : 1500;
}

function prefixOf(subnet: string): number {
  return Number(subnet.split('/')[1] ?? '32');
}

/** A link that is already gone is what deleting it wanted. */
function missingLink(err: unknown): boolean {
  return err instanceof NetlinkError && err.code === 'ENODEV';
}

/**
 * Runs `use` with a NETLINK_ROUTE socket of the daemon's namespace. A socket per operation: they
 * cost microseconds, and concurrent joins and leaves then never share one.
 */
async function withNetlink<T>(use: (nl: RouteNetlink) => T | Promise<T>): Promise<T> {
  const nl = RouteNetlink.open();
  try {
    return await use(nl);
  } finally {
    nl.close();
  }
}

/**
 * networkdriver "bridge": a Linux bridge per network holding the gateway address, a veth pair per
 * endpoint (the container's side renamed eth0…, with address, MAC, MTU and default route), NAT and
 * isolation in iptables chains of our own, and published ports through a userland proxy in the
 * daemon (so 127.0.0.1 works without route_localnet). Links, addresses and routes are set over
 * rtnetlink rather than by running `ip`, which would fork the daemon several times per container.
 */
export class BridgeDriver implements NetworkDriver {
  readonly name = 'bridge';
  private readonly proxies = new Map<string, PortProxy[]>();
  /** Host ends of the veth pairs this daemon made. */
  private readonly live = new Set<string>();

  constructor(
    private readonly log: Logger,
    private readonly firewall = new Firewall(),
  ) {}

  validateOptions(options: Record<string, string>): void {
    for (const [key, value] of Object.entries(options)) {
      if (!KNOWN_OPTIONS.has(key) && !key.startsWith('com.docker.network.')) throw invalid(`unknown option for the bridge driver: ${key}`);
      if (key === BRIDGE_OPTIONS.name && !IFNAME.test(value)) throw invalid(`invalid bridge name: ${JSON.stringify(value)} (at most 15 of A-Z a-z 0-9 _ . -)`);
      // Taking over a device we did not make (docker0, a LAN bridge) would delete it with the network.
      if (key === BRIDGE_OPTIONS.name && existsSync(`/sys/class/net/${value}`)) throw conflict(`bridge name ${value} is already in use on the host`);
      if (key === BRIDGE_OPTIONS.mtu && !(Number.isInteger(Number(value)) && Number(value) >= 68 && Number(value) <= 65535)) throw invalid(`invalid MTU: ${value}`);
      if ((key === BRIDGE_OPTIONS.icc || key === BRIDGE_OPTIONS.masquerade) && !['true', 'false'].includes(value)) throw invalid(`invalid value for ${key}: ${value} (true or false)`);
    }
  }

  async up(network: DriverNetwork): Promise<void> {
    const bridge = bridgeNameOf(network);
    await withNetlink((nl) => nl.addBridge(bridge)).catch((err: unknown) => {
      if (!(err instanceof NetlinkError && err.code === 'EEXIST')) throw systemError(`creating bridge ${bridge}: ${errorMessage(err)}`, err);
    });
    try {
      await withNetlink(async (nl) => {
        nl.setLink(bridge, { mtu: mtuOf(network) });
        const index = nl.linkIndex(bridge);
        nl.addAddress(index, network.gateway, prefixOf(network.subnet), { replace: true });
        nl.setLink(bridge, { up: true });
        // Ports left by a daemon that died without cleaning up: nothing of ours is joined yet.
        for (const port of nl.linksWithMaster(index)) if (!this.live.has(port)) await nl.deleteLinkAsync(port).catch(() => undefined);
      });
      if (!network.internal) await writeFile('/proc/sys/net/ipv4/ip_forward', '1');
      await this.firewall.setUp({
        bridge,
        subnet: network.subnet,
        internal: network.internal,
        icc: network.options[BRIDGE_OPTIONS.icc] !== 'false',
        masquerade: network.options[BRIDGE_OPTIONS.masquerade] !== 'false',
      });
    } catch (err) {
      await this.down(network).catch(() => undefined);
      throw systemError(`setting up bridge ${bridge} for network ${network.name}: ${errorMessage(err)}`, err);
    }
    this.log.debug({ network: network.name, bridge }, 'bridge up');
  }

  async down(network: DriverNetwork): Promise<void> {
    const bridge = bridgeNameOf(network);
    await this.firewall.tearDown(bridge);
    await withNetlink((nl) => nl.deleteLinkAsync(bridge)).catch((err: unknown) => {
      if (!missingLink(err)) throw err;
    });
    this.log.debug({ network: network.name, bridge }, 'bridge down');
  }

  async join(network: DriverNetwork, endpoint: DriverEndpoint, netnsPath: string): Promise<PortBinding[]> {
    const bridge = bridgeNameOf(network);
    const hostSide = this.hostVeth(endpoint);
    const mtu = mtuOf(network);
    const name = endpoint.interfaceName;
    this.live.add(hostSide);
    try {
      await withNetlink((host) => {
        const netns = openSync(netnsPath, 'r');
        try {
          // The container's end is born inside its namespace, with its final name and MAC; the
          // host end is enslaved and up in the same request.
          host.addVeth({
            name: hostSide,
            mtu,
            master: host.linkIndex(bridge),
            up: true,
            peer: { name, mtu, macAddress: endpoint.macAddress, netnsFd: netns },
          });
        } finally {
          closeSync(netns);
        }
      });
      const inside = RouteNetlink.openInNamespace(netnsPath);
      try {
        const index = inside.linkIndex(name);
        inside.addAddress(index, endpoint.address, endpoint.prefixLength);
        inside.setLink(name, { up: true });
        if (endpoint.defaultRoute && !network.internal) inside.replaceDefaultRoute(index, network.gateway);
      } finally {
        inside.close();
      }
    } catch (err) {
      await this.leave(network, endpoint, netnsPath).catch(() => undefined);
      throw systemError(`joining ${endpoint.containerName} to network ${network.name}: ${errorMessage(err)}`, err);
    }
    try {
      return await this.publish(network, endpoint);
    } catch (err) {
      await this.leave(network, endpoint, netnsPath).catch(() => undefined);
      throw err;
    }
  }

  async leave(_network: DriverNetwork, endpoint: DriverEndpoint, _netnsPath: string): Promise<void> {
    const proxies = this.proxies.get(endpoint.id) ?? [];
    this.proxies.delete(endpoint.id);
    await Promise.all(proxies.map((p) => p.close()));
    // Deleting one end of a veth pair deletes the other, inside the namespace too; when the host
    // end is gone already, so is the pair.
    await withNetlink((nl) => nl.deleteLinkAsync(this.hostVeth(endpoint))).catch(() => undefined);
    this.live.delete(this.hostVeth(endpoint));
  }

  async link(network: DriverNetwork, from: string, to: string, ports: Array<{ port: number; protocol: 'tcp' | 'udp' }>, add: boolean): Promise<void> {
    await this.firewall.link(bridgeNameOf(network), from, to, ports, add);
  }

  /** Closes every proxy (daemon shutdown). */
  async closeAll(): Promise<void> {
    const all = [...this.proxies.values()].flat();
    this.proxies.clear();
    await Promise.all(all.map((p) => p.close()));
  }

  private hostVeth(endpoint: DriverEndpoint): string {
    return `tsv${endpoint.id.slice(0, 10)}`;
  }

  private async publish(network: DriverNetwork, endpoint: DriverEndpoint): Promise<PortBinding[]> {
    const opened: PortProxy[] = [];
    this.proxies.set(endpoint.id, opened);
    const bindings: PortBinding[] = [];
    const defaultIp = network.options[BRIDGE_OPTIONS.hostBinding] || '0.0.0.0';
    for (const request of endpoint.ports) {
      const hostIp = request.hostIp || defaultIp;
      try {
        const open = request.protocol === 'udp' ? proxyUdp : proxyTcp;
        const proxy = await open(hostIp, request.hostPort, endpoint.address, request.containerPort);
        opened.push(proxy);
        bindings.push({ ...request, hostIp, hostPort: proxy.hostPort });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const reason = code === 'EADDRINUSE' ? 'port is already allocated' : code === 'EADDRNOTAVAIL' ? 'cannot assign requested address' : errorMessage(err);
        throw systemError(
          `driver failed programming external connectivity on endpoint ${endpoint.containerName} (${endpoint.id}): Bind for ${hostIp}:${request.hostPort} failed: ${reason}`,
          err,
        );
      }
    }
    return bindings;
  }
}
