import { defineCapability } from './capability.js';

/** One network as its driver sees it (the controller owns the record and its persistence). */
export interface DriverNetwork {
  id: string;
  name: string;
  /** "10.1.0.0/24"; empty for drivers without addressing (host, null). */
  subnet: string;
  /** The gateway address inside the subnet ("10.1.0.1"), given to the host side of the network. */
  gateway: string;
  internal: boolean;
  /** Driver options as given at create (com.docker.network.bridge.name, …) plus the controller's own. */
  options: Record<string, string>;
}

/** "80/tcp" bound to a host address and port; hostPort 0 asks for a free port. */
export interface PortRequest {
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostIp: string;
  hostPort: number;
}

export interface PortBinding extends PortRequest {
  /** The port actually bound (differs from the request when it asked for 0). */
  hostPort: number;
}

/** One container's attachment to a network. */
export interface DriverEndpoint {
  id: string;
  containerId: string;
  /** Display name of the container, for error messages ("port is already allocated"). */
  containerName: string;
  /** "10.1.0.2" and its prefix length within the network's subnet. */
  address: string;
  prefixLength: number;
  macAddress: string;
  /** Interface name inside the namespace (eth0, eth1 …). */
  interfaceName: string;
  /** Only the first endpoint of a sandbox routes by default, and not on internal networks. */
  defaultRoute: boolean;
  ports: PortRequest[];
}

/**
 * A network driver (libnetwork's driver API, reduced to what a single host needs): it makes a
 * network's devices and firewall rules exist, and plugs endpoints into a network namespace.
 * Providers are kept by name ("bridge", "host", "null"); the controller picks one per network.
 */
export interface NetworkDriver {
  readonly name: string;
  /**
   * Drivers whose containers get no endpoint of their own: "host" shares the daemon's namespace,
   * "none" gives an empty one. Absent for drivers that make endpoints.
   */
  readonly sandbox?: 'host' | 'none';
  /** Checks the create options; throws invalid/forbidden errors in Docker's words. */
  validateOptions?(options: Record<string, string>): void;
  /** Makes the network's devices and rules exist; idempotent (runs at create and at each daemon start). */
  up(network: DriverNetwork): Promise<void>;
  /** Removes everything `up` made; idempotent (network rm and daemon shutdown). */
  down(network: DriverNetwork): Promise<void>;
  /**
   * Creates the endpoint's interface inside the namespace at `netnsPath` (address, MTU, routes) and
   * publishes its ports. Returns the bindings as made. On failure nothing of the endpoint remains.
   */
  join(network: DriverNetwork, endpoint: DriverEndpoint, netnsPath: string): Promise<PortBinding[]>;
  /** Undoes join; idempotent. */
  leave(network: DriverNetwork, endpoint: DriverEndpoint, netnsPath: string): Promise<void>;
  /** Legacy links with icc off: lets `from` reach `to` on the given ports (add) or stops it (remove). */
  link?(network: DriverNetwork, from: string, to: string, ports: Array<{ port: number; protocol: 'tcp' | 'udp' }>, add: boolean): Promise<void>;
}

export const NetworkDriverCapability = defineCapability<NetworkDriver>('networkdriver', { mode: 'many', preference: ['bridge'] });
