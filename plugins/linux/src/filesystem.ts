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
