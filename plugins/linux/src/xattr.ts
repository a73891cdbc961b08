import { SyscallError, check, libc } from './libc.js';
import koffi from 'koffi';

// Declared with intptr_t because koffi knows no ssize_t; buffers are passed as void *.
const lsetxattrFn = libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)') as (
  path: string,
  name: string,
  value: Buffer,
  size: number,
  flags: number,
) => number;
const lgetxattrFn = libc.func('intptr_t lgetxattr(const char *path, const char *name, void *value, size_t size)') as (
  path: string,
  name: string,
  value: Buffer | null,
  size: number,
) => number | bigint;
const llistxattrFn = libc.func('intptr_t llistxattr(const char *path, void *list, size_t size)') as (path: string, list: Buffer | null, size: number) => number | bigint;
const lremovexattrFn = libc.func('int lremovexattr(const char *path, const char *name)') as (path: string, name: string) => number;

const ENODATA = 61;
const ERANGE = 34;
const ENOTSUP = 95;

/** Sets an extended attribute on the path itself (symlinks are not followed). */
export function lsetxattr(path: string, name: string, value: Buffer | string): void {
  const buf = typeof value === 'string' ? Buffer.from(value) : value;
  check(lsetxattrFn(path, name, buf, buf.length, 0), 'lsetxattr', `${name} on ${path}`);
}

/** The attribute's value, or null when the path has no such attribute (or its filesystem no xattrs). */
export function lgetxattr(path: string, name: string): Buffer | null {
  for (;;) {
    const size = Number(lgetxattrFn(path, name, null, 0));
    if (size === -1) {
      const errno = koffi.errno();
      if (errno === ENODATA || errno === ENOTSUP) return null;
      throw new SyscallError('lgetxattr', errno, `${name} on ${path}`);
    }
    const buf = Buffer.alloc(size);
    const got = Number(lgetxattrFn(path, name, buf, size));
    if (got === -1) {
      const errno = koffi.errno();
      if (errno === ERANGE) continue; // grew between the two calls
      if (errno === ENODATA) return null;
      throw new SyscallError('lgetxattr', errno, `${name} on ${path}`);
    }
    return buf.subarray(0, got);
  }
}

/** Attribute names on the path itself; empty when the filesystem has no xattr support. */
export function llistxattr(path: string): string[] {
  for (;;) {
    const size = Number(llistxattrFn(path, null, 0));
    if (size === -1) {
      const errno = koffi.errno();
      if (errno === ENOTSUP) return [];
      throw new SyscallError('llistxattr', errno, path);
    }
    if (size === 0) return [];
    const buf = Buffer.alloc(size);
    const got = Number(llistxattrFn(path, buf, size));
    if (got === -1) {
      if (koffi.errno() === ERANGE) continue;
      throw new SyscallError('llistxattr', koffi.errno(), path);
    }
    return buf
      .subarray(0, got)
      .toString('utf8')
      .split('\0')
      .filter((n) => n.length > 0);
  }
}

export function lremovexattr(path: string, name: string): void {
  check(lremovexattrFn(path, name), 'lremovexattr', `${name} on ${path}`);
}
