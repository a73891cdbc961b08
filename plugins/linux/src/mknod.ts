import { check, libc } from './libc.js';

const mknodFn = libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)') as (path: string, mode: number, dev: bigint) => number;

/** File type bits for mknod's mode (sys/stat.h). */
export const S_IF = {
  FIFO: 0o010000,
  CHR: 0o020000,
  BLK: 0o060000,
  REG: 0o100000,
} as const;

/** glibc's makedev(): the 64-bit dev_t encoding of a major/minor pair. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major);
  const mi = BigInt(minor);
  return ((ma & 0xfffff000n) << 32n) | ((ma & 0xfffn) << 8n) | ((mi & 0xffffff00n) << 12n) | (mi & 0xffn);
}

export function major(dev: number | bigint): number {
  const d = BigInt(dev);
  return Number(((d >> 32n) & 0xfffff000n) | ((d >> 8n) & 0xfffn));
}

export function minor(dev: number | bigint): number {
  const d = BigInt(dev);
  return Number(((d >> 12n) & 0xffffff00n) | (d & 0xffn));
}

/** Creates a device node or fifo; `mode` holds the type (S_IF.*) and the permission bits (umask applies). */
export function mknod(path: string, mode: number, dev: bigint = 0n): void {
  check(mknodFn(path, mode, dev), 'mknod', path);
}
