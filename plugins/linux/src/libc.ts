import { constants } from 'node:os';
import koffi from 'koffi';

/** The one libc handle every binding in this package shares. */
export const libc = koffi.load('libc.so.6');

/** fcntl(2) for the commands whose argument is an int. */
export const fcntl = libc.func('int fcntl(int fd, int cmd, int arg)') as (fd: number, cmd: number, arg: number) => number;

const errnoNames = new Map<number, string>(Object.entries(constants.errno).map(([name, value]) => [value, name]));

/** A failed libc call, with errno's name (EPERM, …) as `code` like Node's own errors. */
export class SyscallError extends Error {
  readonly errno: number;
  readonly code: string;
  readonly syscall: string;

  constructor(syscall: string, errno: number, detail?: string) {
    const code = errnoNames.get(errno) ?? `errno ${errno}`;
    super(`${syscall}${detail ? ` ${detail}` : ''}: ${code} (${describeErrno(errno)})`);
    this.name = 'SyscallError';
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}

function describeErrno(errno: number): string {
  const text = strerror(errno);
  return typeof text === 'string' ? text : 'unknown error';
}

const strerror = libc.func('const char *strerror(int errnum)') as (errnum: number) => string;

/** Throws SyscallError when a libc call returned -1; koffi keeps errno from the call itself. */
export function check(result: number | bigint, syscall: string, detail?: string): number {
  if (result === -1 || result === -1n) throw new SyscallError(syscall, koffi.errno(), detail);
  return Number(result);
}
