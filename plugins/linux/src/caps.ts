import { check, libc } from './libc.js';
import { PR, prctl } from './process.js';

/** Linux capability numbers (linux/capability.h), without the CAP_ prefix. */
export const CAPABILITIES: Readonly<Record<string, number>> = {
  CHOWN: 0,
  DAC_OVERRIDE: 1,
  DAC_READ_SEARCH: 2,
  FOWNER: 3,
  FSETID: 4,
  KILL: 5,
  SETGID: 6,
  SETUID: 7,
  SETPCAP: 8,
  LINUX_IMMUTABLE: 9,
  NET_BIND_SERVICE: 10,
  NET_BROADCAST: 11,
  NET_ADMIN: 12,
  NET_RAW: 13,
  IPC_LOCK: 14,
  IPC_OWNER: 15,
  SYS_MODULE: 16,
  SYS_RAWIO: 17,
  SYS_CHROOT: 18,
  SYS_PTRACE: 19,
  SYS_PACCT: 20,
  SYS_ADMIN: 21,
  SYS_BOOT: 22,
  SYS_NICE: 23,
  SYS_RESOURCE: 24,
  SYS_TIME: 25,
  SYS_TTY_CONFIG: 26,
  MKNOD: 27,
  LEASE: 28,
  AUDIT_WRITE: 29,
  AUDIT_CONTROL: 30,
  SETFCAP: 31,
  MAC_OVERRIDE: 32,
  MAC_ADMIN: 33,
  SYSLOG: 34,
  WAKE_ALARM: 35,
  BLOCK_SUSPEND: 36,
  AUDIT_READ: 37,
  PERFMON: 38,
  BPF: 39,
  CHECKPOINT_RESTORE: 40,
};

/** The highest capability this kernel knows (/proc/sys/kernel/cap_last_cap). */
export function lastCapability(readFile: (path: string) => string): number {
  try {
    return Number(readFile('/proc/sys/kernel/cap_last_cap').trim());
  } catch {
    return CAPABILITIES.CHECKPOINT_RESTORE!;
  }
}

const capsetFn = libc.func('int capset(void *header, void *data)') as (header: Buffer, data: Buffer) => number;
const LINUX_CAPABILITY_VERSION_3 = 0x20080522;

/** Sets the calling thread's effective, permitted and inheritable sets (bit masks over capability numbers). */
export function capset(effective: bigint, permitted: bigint, inheritable: bigint): void {
  const header = Buffer.alloc(8);
  header.writeUInt32LE(LINUX_CAPABILITY_VERSION_3, 0);
  header.writeInt32LE(0, 4);
  const data = Buffer.alloc(24);
  const words = [effective, permitted, inheritable];
  for (let half = 0; half < 2; half++) {
    for (let set = 0; set < 3; set++) {
      data.writeUInt32LE(Number((words[set]! >> BigInt(32 * half)) & 0xffffffffn), half * 12 + set * 4);
    }
  }
  check(capsetFn(header, data), 'capset');
}

/** Removes every capability not in `keep` from the bounding set (needs CAP_SETPCAP). */
export function dropBoundingSet(keep: bigint, last: number): void {
  for (let cap = 0; cap <= last; cap++) {
    if ((keep >> BigInt(cap)) & 1n) continue;
    prctl(PR.CAPBSET_DROP, cap);
  }
}
