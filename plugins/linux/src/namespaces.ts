import { check, libc } from './libc.js';

/** clone(2)/unshare(2) namespace flags (linux/sched.h). */
export const CLONE = {
  NEWNS: 0x00020000,
  NEWCGROUP: 0x02000000,
  NEWUTS: 0x04000000,
  NEWIPC: 0x08000000,
  NEWUSER: 0x10000000,
  NEWPID: 0x20000000,
  NEWNET: 0x40000000,
  FS: 0x00000200,
  FILES: 0x00000400,
} as const;

const unshareFn = libc.func('int unshare(int flags)') as (flags: number) => number;
const setnsFn = libc.func('int setns(int fd, int nstype)') as (fd: number, nstype: number) => number;
const sethostnameFn = libc.func('int sethostname(const char *name, size_t len)') as (name: string, len: number) => number;
const syscallStrStr = libc.func('long syscall(long number, const char *a, const char *b)') as (n: number, a: string, b: string) => number;

const SYS_PIVOT_ROOT_X86_64 = 155;
const SYS_PIVOT_ROOT_AARCH64 = 41;

/** Moves only the calling thread (Node's main thread) into new namespaces. */
export function unshare(flags: number): void {
  check(unshareFn(flags), 'unshare', `0x${flags.toString(16)}`);
}

export function setns(fd: number, nstype: number): void {
  check(setnsFn(fd, nstype), 'setns', `fd ${fd}`);
}

export function sethostname(name: string): void {
  check(sethostnameFn(name, Buffer.byteLength(name)), 'sethostname', name);
}

/** glibc has no pivot_root wrapper. */
export function pivotRoot(newRoot: string, putOld: string): void {
  const nr = process.arch === 'arm64' ? SYS_PIVOT_ROOT_AARCH64 : SYS_PIVOT_ROOT_X86_64;
  check(syscallStrStr(nr, newRoot, putOld), 'pivot_root', `${newRoot} ${putOld}`);
}
