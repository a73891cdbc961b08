import { lstatSync, readlinkSync } from 'node:fs';
import { statfs } from 'node:fs/promises';

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
