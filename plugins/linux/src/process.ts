import koffi from 'koffi';
import { SyscallError, check, fcntl, libc } from './libc.js';

/** open(2)/fcntl(2) constants used by process set-up. */
export const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;
const F_GETFD = 1;
const F_SETFD = 2;
const FD_CLOEXEC = 1;

const pipe2Fn = libc.func('int pipe2(int *fds, int flags)') as (fds: Int32Array, flags: number) => number;
const execveFn = libc.func('int execve(const char *path, const char **argv, const char **envp)') as (path: string, argv: (string | null)[], envp: (string | null)[]) => number;
const setsidFn = libc.func('int setsid()') as () => number;
const prctlFn = libc.func('int prctl(int option, unsigned long a2, unsigned long a3, unsigned long a4, unsigned long a5)') as (o: number, a: number, b: number, c: number, d: number) => number;
const setdomainnameFn = libc.func('int setdomainname(const char *name, size_t len)') as (name: string, len: number) => number;
const syscall3 = libc.func('long syscall(long n, long a, long b, long c)') as (n: number, a: number, b: number, c: number) => number;
const syscallSetgroups = libc.func('syscall', 'long', ['long', 'long', 'uint32_t *']);

const arm64 = process.arch === 'arm64';
const SYS = arm64
  ? { setgroups: 159, setresuid: 147, setresgid: 149, pidfd_open: 434, pidfd_getfd: 438 }
  : { setgroups: 116, setresuid: 117, setresgid: 119, pidfd_open: 434, pidfd_getfd: 438 };

/** A pipe whose both ends are close-on-exec: [read, write]. */
export function pipe(flags = O_CLOEXEC): [number, number] {
  const fds = new Int32Array(2);
  check(pipe2Fn(fds, flags), 'pipe2');
  return [fds[0]!, fds[1]!];
}

export function setCloseOnExec(fd: number, on: boolean): void {
  const current = check(fcntl(fd, F_GETFD, 0), 'fcntl', `F_GETFD ${fd}`);
  check(fcntl(fd, F_SETFD, on ? current | FD_CLOEXEC : current & ~FD_CLOEXEC), 'fcntl', `F_SETFD ${fd}`);
}

/** Replaces the process image; returns only by throwing. argv/envp get their NULL terminators here. */
export function execve(path: string, argv: string[], envp: string[]): never {
  execveFn(path, [...argv, null], [...envp, null]);
  throw new SyscallError('execve', koffi.errno(), path);
}

export function setsid(): number {
  return check(setsidFn(), 'setsid');
}

export const PR = {
  SET_PDEATHSIG: 1,
  SET_KEEPCAPS: 8,
  CAPBSET_READ: 23,
  CAPBSET_DROP: 24,
  SET_NO_NEW_PRIVS: 38,
  CAP_AMBIENT: 47,
} as const;

export function prctl(option: number, a2 = 0, a3 = 0, a4 = 0, a5 = 0): number {
  return check(prctlFn(option, a2, a3, a4, a5), 'prctl', String(option));
}

export function setdomainname(name: string): void {
  check(setdomainnameFn(name, Buffer.byteLength(name)), 'setdomainname', name);
}

/** The raw syscalls change only the calling thread's credentials (glibc's wrappers signal every thread); execve keeps the caller's. */
export function setgroups(gids: number[]): void {
  check(syscallSetgroups(SYS.setgroups, gids.length, Uint32Array.from(gids)) as number, 'setgroups', gids.join(','));
}

export function setresgid(gid: number): void {
  check(syscall3(SYS.setresgid, gid, gid, gid), 'setresgid', String(gid));
}

export function setresuid(uid: number): void {
  check(syscall3(SYS.setresuid, uid, uid, uid), 'setresuid', String(uid));
}

/** A pidfd for a process (kernel ≥ 5.3). */
export function pidfdOpen(pid: number): number {
  return check(syscall3(SYS.pidfd_open, pid, 0, 0), 'pidfd_open', String(pid));
}

/** Duplicates another process's fd into this one, close-on-exec (kernel ≥ 5.6). */
export function pidfdGetfd(pidfd: number, targetFd: number): number {
  return check(syscall3(SYS.pidfd_getfd, pidfd, targetFd, 0), 'pidfd_getfd', String(targetFd));
}

const dup2Fn = libc.func('int dup2(int oldfd, int newfd)') as (oldfd: number, newfd: number) => number;

/** Makes `newFd` a copy of `oldFd` (not close-on-exec). */
export function dup2(oldFd: number, newFd: number): void {
  check(dup2Fn(oldFd, newFd), 'dup2', `${oldFd} -> ${newFd}`);
}
