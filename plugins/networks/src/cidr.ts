import { invalid } from '@tsengine/core';

/** IPv4 addresses as unsigned 32-bit numbers. */
export function parseIp(text: string): number | undefined {
  const parts = text.split('.');
  if (parts.length !== 4) return undefined;
  let value = 0;
  for (const part of parts) {
    if (!/^\d{1,3}$/.test(part)) return undefined;
    const n = Number(part);
    if (n > 255) return undefined;
    value = value * 256 + n;
  }
  return value;
}

export function formatIp(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

export interface Cidr {
  /** The network address (host bits cleared). */
  base: number;
  prefix: number;
}

export function maskOf(prefix: number): number {
  return prefix === 0 ? 0 : (0xffffffff << (32 - prefix)) >>> 0;
}

/** "10.1.0.0/24" → Cidr; host bits must be clear unless `loose` ("10.1.0.1/24" as --bip gives). */
export function parseCidr(text: string, loose = false): Cidr {
  const [ip, prefixText, ...rest] = text.split('/');
  const address = parseIp(ip ?? '');
  const prefix = Number(prefixText);
  if (address === undefined || rest.length || !/^\d{1,2}$/.test(prefixText ?? '') || prefix > 32) throw invalid(`invalid CIDR address: ${text}`);
  const base = (address & maskOf(prefix)) >>> 0;
  if (!loose && base !== address) throw invalid(`invalid subnet ${text}: it has host bits set (use ${formatCidr({ base, prefix })})`);
  return { base, prefix };
}

export function formatCidr(cidr: Cidr): string {
  return `${formatIp(cidr.base)}/${cidr.prefix}`;
}

export function contains(cidr: Cidr, address: number): boolean {
  return ((address & maskOf(cidr.prefix)) >>> 0) === cidr.base;
}

export function overlaps(a: Cidr, b: Cidr): boolean {
  const prefix = Math.min(a.prefix, b.prefix);
  return ((a.base & maskOf(prefix)) >>> 0) === ((b.base & maskOf(prefix)) >>> 0);
}

export function broadcastOf(cidr: Cidr): number {
  return (cidr.base | (~maskOf(cidr.prefix) >>> 0)) >>> 0;
}

/** Docker's MAC for an IPv4 endpoint: 02:42 followed by the address bytes. */
export function macForIp(address: string): string {
  const value = parseIp(address) ?? 0;
  const bytes = [0x02, 0x42, value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255];
  return bytes.map((b) => b.toString(16).padStart(2, '0')).join(':');
}
