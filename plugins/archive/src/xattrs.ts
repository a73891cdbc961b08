import { lgetxattr, llistxattr, lsetxattr } from '@tsengine/linux';

/** PAX record prefix for extended attributes (GNU tar, Go's archive/tar and Docker use it). */
export const PAX_XATTR_PREFIX = 'SCHILY.xattr.';

/** Overlay's own bookkeeping, never part of a layer's content. */
export function isOverlayXattr(name: string): boolean {
  return name.startsWith('trusted.overlay.');
}

/** The path's xattrs (symlinks not followed), sorted by name, without overlay's own. */
export function readXattrs(path: string): Array<[string, Buffer]> {
  const out: Array<[string, Buffer]> = [];
  for (const name of llistxattr(path).sort()) {
    if (isOverlayXattr(name)) continue;
    const value = lgetxattr(path, name);
    if (value !== null) out.push([name, value]);
  }
  return out;
}

export function writeXattr(path: string, name: string, value: Buffer | string): void {
  lsetxattr(path, name, value);
}
