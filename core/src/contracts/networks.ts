import type { EndpointSettings } from '../capabilities/networks.js';

/**
 * Network jobs. Bodies and outputs use the Docker Engine API's JSON shapes (network create body,
 * NetworkResource, connect/disconnect bodies, prune report) so front ends pass them through unchanged.
 */

export interface IpamConfig {
  Subnet?: string;
  IPRange?: string;
  Gateway?: string;
  AuxiliaryAddresses?: Record<string, string>;
}

/** POST /networks/create body. */
export interface NetworkCreateBody {
  Name: string;
  Driver?: string;
  Internal?: boolean;
  Attachable?: boolean;
  EnableIPv6?: boolean;
  IPAM?: { Driver?: string; Options?: Record<string, string> | null; Config?: IpamConfig[] | null } | null;
  Options?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
  CheckDuplicate?: boolean;
  [extra: string]: unknown;
}

/** One container in a network's inspect view. */
export interface NetworkContainer {
  Name: string;
  EndpointID: string;
  MacAddress: string;
  IPv4Address: string;
  IPv6Address: string;
}

/** GET /networks/{id} (Docker's NetworkResource). */
export interface NetworkResource {
  Name: string;
  Id: string;
  Created: string;
  Scope: 'local';
  Driver: string;
  EnableIPv6: boolean;
  IPAM: { Driver: string; Options: Record<string, string> | null; Config: IpamConfig[] };
  Internal: boolean;
  Attachable: boolean;
  Ingress: boolean;
  ConfigFrom: { Network: string };
  ConfigOnly: boolean;
  Containers: Record<string, NetworkContainer>;
  Options: Record<string, string>;
  Labels: Record<string, string>;
}

/** Filters of GET /networks and POST /networks/prune: name, id, driver, label, type (custom|builtin), dangling. */
export type NetworkFilters = Record<string, string[]>;

declare module '../kernel/job-map.js' {
  interface JobMap {
    /** Duplicate names are conflicts ("network with name N already exists"); unknown drivers notfound. */
    'network.create': { in: { body: NetworkCreateBody }; out: { Id: string; Warning: string } };
    'network.list': { in: { filters?: NetworkFilters }; out: NetworkResource[] };
    /** By name, full ID or unique ID prefix; notfound "network N not found". */
    'network.inspect': { in: { id: string }; out: NetworkResource };
    /** Refused (forbidden) for predefined networks and networks with active endpoints. */
    'network.remove': { in: { id: string }; out: void };
    /** Connects a running container live; a stopped one gets the network at its next start. */
    'network.connect': { in: { id: string; container: string; endpointConfig?: EndpointSettings | null }; out: void };
    'network.disconnect': { in: { id: string; container: string; force?: boolean }; out: void };
    /** Removes custom networks without endpoints; output: Docker's prune report. */
    'network.prune': { in: { filters?: NetworkFilters }; out: { NetworksDeleted: string[] } };
  }
}
