import { check, libc } from './libc.js';

/** mount(2) flags (linux/mount.h). */
export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  REMOUNT: 0x20,
  NOATIME: 0x400,
  BIND: 0x1000,
  MOVE: 0x2000,
  REC: 0x4000,
  PRIVATE: 0x40000,
  SLAVE: 0x80000,
  SHARED: 0x100000,
  RELATIME: 0x200000,
  STRICTATIME: 0x1000000,
} as const;

/** mount(8)-style flag words: [flags set, flags cleared]. */
const FLAG_WORDS: Record<string, [set: number, clear: number]> = {
  ro: [MS.RDONLY, 0],
  rw: [0, MS.RDONLY],
  nosuid: [MS.NOSUID, 0],
  suid: [0, MS.NOSUID],
  nodev: [MS.NODEV, 0],
  dev: [0, MS.NODEV],
  noexec: [MS.NOEXEC, 0],
  exec: [0, MS.NOEXEC],
  noatime: [MS.NOATIME, 0],
  relatime: [MS.RELATIME, 0],
  strictatime: [MS.STRICTATIME, 0],
  bind: [MS.BIND, 0],
  rbind: [MS.BIND | MS.REC, 0],
  defaults: [0, 0],
};

/**
 * Splits mount option words into mount(2) flags (starting from `flags`) and filesystem data, as
 * Docker's mount.ParseOptions: ["size=64m", "ro", "uid=1000"] → RDONLY and "size=64m,uid=1000".
 */
export function parseMountOptions(words: Iterable<string>, flags = 0): { flags: number; data: string } {
  const data: string[] = [];
  for (const word of words) {
    if (word === '') continue;
    const known = FLAG_WORDS[word];
    if (known) flags = (flags | known[0]) & ~known[1];
    else data.push(word);
  }
  return { flags, data: data.join(',') };
}

/** umount2(2) flags. */
export const MNT = { FORCE: 1, DETACH: 2, EXPIRE: 4 } as const;

const mountFn = libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)') as (
  source: string | null,
  target: string,
  fstype: string | null,
  flags: number,
  data: string | null,
) => number;
const umount2Fn = libc.func('int umount2(const char *target, int flags)') as (target: string, flags: number) => number;

export function mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null = null): void {
  check(mountFn(source, target, fstype, flags, data), 'mount', `${fstype ?? 'bind'} ${source ?? ''} on ${target}${data ? ` (${data.length > 200 ? `${data.slice(0, 200)}…` : data})` : ''}`);
}

export function umount(target: string, flags = 0): void {
  check(umount2Fn(target, flags), 'umount2', target);
}
