import type { HostConfig } from '../contracts/containers.js';
import { defineCapability } from './capability.js';
import type { NetworkSpec } from './execdriver.js';

/** Docker's EndpointSettings as sent in NetworkingConfig.EndpointsConfig and shown by inspect. */
export interface EndpointSettings {
  IPAMConfig?: { IPv4Address?: string; IPv6Address?: string } | null;
  Links?: string[] | null;
  Aliases?: string[] | null;
  MacAddress?: string;
  NetworkID?: string;
  EndpointID?: string;
  Gateway?: string;
  IPAddress?: string;
  IPPrefixLen?: number;
  IPv6Gateway?: string;
  GlobalIPv6Address?: string;
  GlobalIPv6PrefixLen?: number;
  DNSNames?: string[] | null;
  [extra: string]: unknown;
}

/** The NetworkSettings object of container inspect (Docker's shape). */
export interface NetworkSettings {
  Bridge: string;
  SandboxID: string;
  SandboxKey: string;
  /** "80/tcp" → bindings (null when exposed but not published). */
  Ports: Record<string, Array<{ HostIp: string; HostPort: string }> | null>;
  Networks: Record<string, EndpointSettings>;
  /** Legacy top-level fields of the default bridge endpoint ("" otherwise). */
  IPAddress: string;
  IPPrefixLen: number;
  Gateway: string;
  MacAddress: string;
  [extra: string]: unknown;
}

/** What the containers plugin hands to networking for one container. */
export interface SandboxRequest {
  containerId: string;
  /** Without the leading slash. */
  name: string;
  hostname: string;
  domainname?: string;
  /**
   * HostConfig.NetworkMode as the user gave it ("", "default", "bridge", "host", "none", a network
   * name or ID), except "container:<ref>", which arrives as "container:<full ID>" of a running container.
   */
  networkMode: string;
  /** NetworkingConfig.EndpointsConfig of the create body (may be empty). */
  endpoints: Record<string, EndpointSettings>;
  /** Read for Dns, DnsSearch, DnsOptions, ExtraHosts, PortBindings, PublishAllPorts, Links. */
  hostConfig: HostConfig;
  /** Config.ExposedPorts merged with the image's ("80/tcp" → {}). */
  exposedPorts: Record<string, unknown>;
  /** A folder that belongs to the container and lives as long as it does (hosts, resolv.conf …). */
  stateDir: string;
}

/** What the container's start needs from networking. */
export interface Sandbox {
  /** Handed unchanged to the exec driver. */
  network: NetworkSpec;
  /** Host files bind-mounted over the container's /etc/hosts, /etc/hostname and /etc/resolv.conf. */
  files: { hosts: string; hostname: string; resolvConf: string };
  /** Extra environment for the main process (legacy link variables). */
  env: string[];
}

/**
 * Networking as the containers plugin sees it (libnetwork's controller): one provider, "networks".
 * Everything else (networks, drivers, IPAM, DNS, published ports) is the provider's business.
 * Unknown networks are notfound errors with Docker's wording ("network foo not found").
 */
export interface NetworkService {
  /** At create: refuses what the start would refuse (unknown network, bad --ip, bad port spec). */
  validate(request: SandboxRequest): Promise<void>;
  /** Before each start: namespace, endpoints, published ports and the three files. */
  setUp(request: SandboxRequest): Promise<Sandbox>;
  /** After the container's exit: endpoints, ports and namespace go; what inspect shows is cleared. */
  tearDown(containerId: string): Promise<void>;
  /** When the container is removed; nothing of it may remain. */
  forget(containerId: string): Promise<void>;
  /** What inspect shows; undefined when the service knows nothing of the container. */
  settings(containerId: string): NetworkSettings | undefined;
}

export const NetworkServiceCapability = defineCapability<NetworkService>('networks', { mode: 'one', preference: ['local'] });
