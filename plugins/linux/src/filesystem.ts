import { closeSync, constants, lstatSync, openSync, readlinkSync } from 'node:fs';
import { statfs } from 'node:fs/promises';
import { SyscallError, check, fcntl, libc } from './libc.js';

const ioctlFn = libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as (fd: number, request: number, arg: Uint8Array) => number;
const FS_IOC_GETFLAGS = 0x80086601;
const FS_IOC_SETFLAGS = 0x40086602;
const FS_TOPDIR_FL = 0x00020000;
/** What a file system without inode flags or without this one answers, or one that does not let us. */
const FLAG_REFUSED = new Set(['ENOTTY', 'EOPNOTSUPP', 'EINVAL', 'EPERM', 'EACCES']);

/** statfs(2) magic numbers of common backing filesystems, named as Docker names them. */
const FS_NAMES = new Map<number, string>([
  [0xef53, 'extfs'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x01021994, 'tmpfs'],
  [0x794c7630, 'overlayfs'],
  [0x2fc12fc1, 'zfs'],
  [0x858458f6, 'ramfs'],
  [0x6969, 'nfs'],
]);

/** The filesystem a path lives on, for `docker info`'s "Backing Filesystem" and driver probes. */
export async function backingFilesystem(path: string): Promise<string> {
  const { type } = await statfs(path);
  return FS_NAMES.get(Number(type)) ?? `<unknown 0x${Number(type).toString(16)}>`;
}

/**
 * The host path of `containerPath` inside `rootfs`, resolving symlinks as if rootfs were "/", so
 * that a link in the image (absolute or climbing with "..") can never lead outside the rootfs.
 * Missing components are kept as plain names (callers create them as directories). Synchronous:
 * the container's init runs it between syscalls, and it touches a handful of inodes.
 */
export function resolveInRoot(rootfs: string, containerPath: string): string {
  const root = rootfs.replace(/\/+$/, '');
  const pending = containerPath.split('/').filter(Boolean);
  const resolved: string[] = [];
  let links = 0;
  while (pending.length) {
    const part = pending.shift()!;
    if (part === '.') continue;
    if (part === '..') {
      resolved.pop();
      continue;
    }
    const candidate = `${root}/${[...resolved, part].join('/')}`;
    let isLink = false;
    try {
      isLink = lstatSync(candidate).isSymbolicLink();
    } catch {
      // missing: kept as a plain name
    }
    if (!isLink) {
      resolved.push(part);
      continue;
    }
    if (++links > 40) throw new Error(`too many levels of symbolic links in ${containerPath}`);
    const target = readlinkSync(candidate);
    if (target.startsWith('/')) resolved.length = 0;
    pending.unshift(...target.split('/').filter(Boolean));
  }
  return `${root}/${resolved.join('/')}`.replace(/\/+$/, '') || '/';
}

/**
 * Asks the file system to spread the subdirectories made in `dir` over its block groups, as it does
 * those of its root (ext4's "top of directory hierarchy" flag, chattr +T). Otherwise ext4 puts a new
 * directory, and the files in it, near its parent; without a journal, each new inode there then skips
 * every inode of the group freed in the last seconds, which made creating a pull's files right after
 * a removal cost more than writing their data. Returns false where the file system refuses the flag.
 */
export function spreadSubdirectories(dir: string): boolean {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    const flags = new Int32Array(2);
    const arg = new Uint8Array(flags.buffer);
    check(ioctlFn(fd, FS_IOC_GETFLAGS, arg), 'ioctl', `FS_IOC_GETFLAGS ${dir}`);
    if (flags[0]! & FS_TOPDIR_FL) return true;
    flags[0] = flags[0]! | FS_TOPDIR_FL;
    check(ioctlFn(fd, FS_IOC_SETFLAGS, arg), 'ioctl', `FS_IOC_SETFLAGS ${dir}`);
    return true;
  } catch (err) {
    if (err instanceof SyscallError && FLAG_REFUSED.has(err.code)) return false;
    throw err;
  } finally {
    closeSync(fd);
  }
}

const F_GETFL = 3;
const F_SETFL = 4;

/**
 * Turns O_DIRECT on or off for an open file. Returns false when the file system does not do direct
 * I/O (tmpfs before Linux 6.6, some FUSE file systems), which answers EINVAL.
 */
export function setDirectIo(fd: number, on: boolean): boolean {
  const current = check(fcntl(fd, F_GETFL, 0), 'fcntl', `F_GETFL ${fd}`);
  const wanted = on ? current | constants.O_DIRECT : current & ~constants.O_DIRECT;
  if (wanted === current) return true;
  try {
    check(fcntl(fd, F_SETFL, wanted), 'fcntl', `F_SETFL ${fd}`);
    return true;
  } catch (err) {
    if (err instanceof SyscallError && err.code === 'EINVAL') return false;
    throw err;
  }
}
