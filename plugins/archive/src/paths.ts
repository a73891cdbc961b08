import { lstat, mkdir, readlink } from 'node:fs/promises';
import { isAbsolute, join, posix, relative, sep } from 'node:path';
import { invalid } from '@tsengine/core';

/** An error about one tar entry; the message always names the entry. */
export function entryError(entry: string, why: string, cause?: unknown) {
  return invalid(`layer entry "${entry}": ${why}`, cause);
}

/**
 * A tar entry name as path components inside the layer. Absolute names and ".." that climbs above
 * the root are refused: layer tars written by docker, tar or us never hold them, so one that does
 * is hostile or broken.
 */
export function entryComponents(name: string): string[] {
  if (name.startsWith('/')) throw entryError(name, 'absolute path in a layer tar');
  const normalized = posix.normalize(`./${name}`.replace(/\/+$/, ''));
  if (normalized === '..' || normalized.startsWith('../')) throw entryError(name, 'path escapes the layer root');
  if (normalized === '.' || normalized === '') return [];
  return normalized.split('/');
}

/** For hard link targets: an absolute or climbing link name is outside the layer. */
export function linkComponents(entry: string, linkname: string): string[] {
  const normalized = posix.normalize(`./${linkname}`);
  if (normalized === '..' || normalized.startsWith('../')) throw entryError(entry, `hard link target "${linkname}" is outside the layer`);
  const parts = normalized === '.' ? [] : normalized.replace(/\/+$/, '').split('/');
  if (parts.length === 0) throw entryError(entry, `hard link target "${linkname}" is the layer root`);
  return parts;
}

export function isInside(root: string, path: string): boolean {
  const rel = relative(root, path);
  return rel === '' || (!rel.startsWith(`..${sep}`) && rel !== '..' && !isAbsolute(rel));
}

const MAX_SYMLINK_HOPS = 40;

/**
 * Resolves the directory that will hold an entry, walking each component with lstat. A symlinked
 * component is followed only when, read as on the host, it still points inside the root (so
 * `lib -> usr/lib` works); a link pointing out (absolute or climbing) is refused. Missing
 * directories are created (0755) when `create` is set. The result is a real directory in root.
 */
export async function resolveDirInRoot(root: string, components: string[], entry: string, create: boolean, onCreate?: (dir: string) => void): Promise<string> {
  let current = root;
  const pending = [...components];
  let hops = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    const next = join(current, name);
    let st;
    try {
      st = await lstat(next);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || !create) throw entryError(entry, `cannot resolve parent "${relative(root, next)}"`, err);
      await mkdir(next, { mode: 0o755 });
      onCreate?.(next);
      current = next;
      continue;
    }
    if (st.isSymbolicLink()) {
      if (++hops > MAX_SYMLINK_HOPS) throw entryError(entry, 'too many levels of symbolic links');
      const target = await readlink(next);
      const resolved = isAbsolute(target) ? posix.normalize(target) : join(current, target);
      if (!isInside(root, resolved)) {
        throw entryError(entry, `parent "${relative(root, next)}" is a symlink to "${target}", outside the layer; refusing to write through it`);
      }
      const rel = relative(root, resolved);
      pending.unshift(...(rel === '' ? [] : rel.split(sep)));
      current = root;
      continue;
    }
    if (!st.isDirectory()) throw entryError(entry, `parent "${relative(root, next)}" is not a directory`);
    current = next;
  }
  return current;
}
