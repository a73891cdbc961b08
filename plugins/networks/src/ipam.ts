import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { EngineError, type Logger, conflict, defineCapability, errorMessage, invalid, unavailable, writeJsonAtomic } from '@tsengine/core';
import { type Cidr, broadcastOf, contains, formatCidr, formatIp, overlaps, parseCidr, parseIp } from './cidr.js';

export interface PoolRequest {
  /** Wanted subnet ("10.1.0.0/24"); absent = pick one from the default pools. */
  subnet?: string;
  /** Wanted gateway inside the subnet; absent = the first address. */
  gateway?: string;
  /** Sub-range from which container addresses are given ("10.1.0.128/25"). */
  ipRange?: string;
  /** Subnets in use elsewhere (host routes): a picked subnet must not overlap them. */
  avoid?: string[];
}

export interface Pool {
  subnet: string;
  gateway: string;
  ipRange?: string;
}

/**
 * Address management (libnetwork's IPAM driver), replaceable on its own: capability "ipam",
 * provider "default". Subnets are pools; addresses are given to owners (container IDs) and stay
 * theirs until released, across daemon restarts.
 */
export interface Ipam {
  requestPool(request: PoolRequest): Promise<Pool>;
  releasePool(subnet: string): Promise<void>;
  /** An address of the pool for `owner`: `preferred` when free (required when `strict`), else the lowest free one. */
  requestAddress(subnet: string, owner: string, preferred?: string, strict?: boolean): Promise<string>;
  releaseAddress(subnet: string, address: string): Promise<void>;
  /** The address `owner` holds in the pool, if any. */
  addressOf(subnet: string, owner: string): string | undefined;
}

export const IpamCapability = defineCapability<Ipam>('ipam', { mode: 'one', preference: ['default'] });

export interface AddressPool {
  base: string;
  size: number;
}

/** Docker's default pools: 172.17–31.0.0/16, then 192.168.0.0/16 cut in /20s. */
export const DEFAULT_ADDRESS_POOLS: AddressPool[] = [
  ...Array.from({ length: 15 }, (_, i) => ({ base: `172.${17 + i}.0.0/16`, size: 16 })),
  { base: '192.168.0.0/16', size: 20 },
];

interface PoolState extends Pool {
  /** address → owner */
  addresses: Record<string, string>;
}

interface IpamFile {
  pools: Record<string, PoolState>;
}

export class DefaultIpam implements Ipam {
  private state: IpamFile = { pools: {} };
  private readonly file: string;

  constructor(
    dir: string,
    private readonly defaultPools: AddressPool[],
    private readonly log: Logger,
  ) {
    this.file = join(dir, 'ipam.json');
  }

  async load(): Promise<void> {
    try {
      this.state = JSON.parse(await readFile(this.file, 'utf8')) as IpamFile;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err: errorMessage(err) }, 'ipam state unreadable; starting empty');
      this.state = { pools: {} };
    }
  }

  async requestPool(request: PoolRequest): Promise<Pool> {
    const taken = Object.keys(this.state.pools).map((s) => parseCidr(s));
    let subnet: Cidr;
    if (request.subnet) {
      subnet = parseCidr(request.subnet);
      if (taken.some((t) => overlaps(t, subnet))) throw new EngineError('forbidden', 'Pool overlaps with other one on this address space');
    } else {
      const avoid = [...taken, ...(request.avoid ?? []).map((s) => parseCidr(s, true))];
      const found = this.pickSubnet(avoid);
      if (!found) throw unavailable('could not find an available, non-overlapping IPv4 address pool among the defaults to assign to the network');
      subnet = found;
    }
    if (subnet.prefix > 30) throw invalid(`subnet ${formatCidr(subnet)} is too small`);
    let gateway = subnet.base + 1;
    if (request.gateway) {
      const g = parseIp(request.gateway);
      if (g === undefined) throw invalid(`invalid gateway address ${request.gateway}`);
      if (!contains(subnet, g) || g === subnet.base || g === broadcastOf(subnet)) throw invalid(`no matching subnet for gateway ${request.gateway}`);
      gateway = g;
    }
    let ipRange: string | undefined;
    if (request.ipRange) {
      const range = parseCidr(request.ipRange);
      if (!contains(subnet, range.base) || range.prefix < subnet.prefix) throw invalid(`no matching subnet for range ${request.ipRange}`);
      ipRange = formatCidr(range);
    }
    const pool: PoolState = { subnet: formatCidr(subnet), gateway: formatIp(gateway), ...(ipRange ? { ipRange } : {}), addresses: { [formatIp(gateway)]: 'gateway' } };
    this.state.pools[pool.subnet] = pool;
    await this.save();
    return { subnet: pool.subnet, gateway: pool.gateway, ...(ipRange ? { ipRange } : {}) };
  }

  async releasePool(subnet: string): Promise<void> {
    if (!this.state.pools[subnet]) return;
    delete this.state.pools[subnet];
    await this.save();
  }

  async requestAddress(subnet: string, owner: string, preferred?: string, strict = false): Promise<string> {
    const pool = this.pool(subnet);
    const cidr = parseCidr(pool.subnet);
    const held = this.addressOf(subnet, owner);
    if (held && (!preferred || preferred === held)) return held;
    if (preferred) {
      const wanted = parseIp(preferred);
      const usable = wanted !== undefined && contains(cidr, wanted) && wanted !== cidr.base && wanted !== broadcastOf(cidr);
      if (usable && !pool.addresses[preferred]) {
        if (held) delete pool.addresses[held];
        pool.addresses[preferred] = owner;
        await this.save();
        return preferred;
      }
      if (strict) {
        if (!usable) throw invalid(`Invalid address ${preferred}: It does not belong to any of this network's subnets`);
        throw conflict(`Address already in use: ${preferred}`);
      }
    }
    if (held) return held;
    const range = pool.ipRange ? parseCidr(pool.ipRange) : cidr;
    const last = broadcastOf(range);
    for (let a = range.base; a <= last; a++) {
      if (a === cidr.base || a === broadcastOf(cidr)) continue;
      const text = formatIp(a);
      if (pool.addresses[text]) continue;
      pool.addresses[text] = owner;
      await this.save();
      return text;
    }
    throw unavailable(`no available IPv4 addresses on network ${pool.subnet}`);
  }

  async releaseAddress(subnet: string, address: string): Promise<void> {
    const pool = this.state.pools[subnet];
    if (!pool || !pool.addresses[address] || pool.addresses[address] === 'gateway') return;
    delete pool.addresses[address];
    await this.save();
  }

  addressOf(subnet: string, owner: string): string | undefined {
    const pool = this.state.pools[subnet];
    if (!pool) return undefined;
    return Object.entries(pool.addresses).find(([, o]) => o === owner)?.[0];
  }

  private pool(subnet: string): PoolState {
    const pool = this.state.pools[subnet];
    if (!pool) throw invalid(`no address pool ${subnet}`);
    return pool;
  }

  private pickSubnet(avoid: Cidr[]): Cidr | undefined {
    for (const { base, size } of this.defaultPools) {
      const outer = parseCidr(base);
      const step = 2 ** (32 - size);
      for (let b = outer.base; b <= broadcastOf(outer); b += step) {
        const candidate = { base: b >>> 0, prefix: size };
        if (!avoid.some((a) => overlaps(a, candidate))) return candidate;
      }
    }
    return undefined;
  }

  private async save(): Promise<void> {
    await writeJsonAtomic(this.file, this.state);
  }
}
