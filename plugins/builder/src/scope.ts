import { lchown, lstat, mkdir, readlink } from 'node:fs/promises';
import { join, posix, relative, sep } from 'node:path';
import { invalid } from '@tsengine/core';

const MAX_SYMLINK_HOPS = 255;

/**
 * Resolves `path` (as seen from inside a root filesystem) to a host path under `root`, following
 * symlinks the way they resolve inside that root (absolute targets start at the root, ".." stops
 * at it): docker's FollowSymlinkInScope. The last component is followed only with `followLast`.
 * The result never leaves `root`, whatever the links inside say.
 */
export async function resolveInScope(root: string, path: string, followLast = true): Promise<string> {
  const pending = posix.normalize(`/${path}`).split('/').filter((p) => p !== '' && p !== '.');
  const resolved: string[] = [];
  let hops = 0;
  while (pending.length > 0) {
    const name = pending.shift()!;
    if (name === '..') {
      resolved.pop();
      continue;
    }
    const host = join(root, ...resolved, name);
    if (pending.length === 0 && !followLast) {
      resolved.push(name);
      break;
    }
    let isLink = false;
    try {
      isLink = (await lstat(host)).isSymbolicLink();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' && (err as NodeJS.ErrnoException).code !== 'ENOTDIR') throw err;
    }
    if (!isLink) {
      resolved.push(name);
      continue;
    }
    if (++hops > MAX_SYMLINK_HOPS) throw invalid(`too many levels of symbolic links resolving ${path}`);
    const target = await readlink(host);
    if (target.startsWith('/')) resolved.length = 0;
    pending.unshift(...target.split('/').filter((p) => p !== '' && p !== '.'));
  }
  return join(root, ...resolved);
}

/**
 * Creates the directory `path` (inside `root`, symlinks resolved in scope) and its missing parents,
 * returning its host path. New directories get mode 0755 and the given owner.
 */
export async function mkdirInScope(root: string, path: string, owner?: { uid: number; gid: number }): Promise<string> {
  // Every existing link on the way is resolved first; what is left to create holds no links.
  const resolved = await resolveInScope(root, path);
  const parts = relative(root, resolved).split(sep).filter(Boolean);
  let current = root;
  for (const part of parts) {
    current = join(current, part);
    let st;
    try {
      st = await lstat(current);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      await mkdir(current, { mode: 0o755 });
      if (owner) await lchown(current, owner.uid, owner.gid);
      continue;
    }
    if (!st.isDirectory()) throw invalid(`cannot create directory ${path}: ${relative(root, current)} is not a directory`);
  }
  return resolved;
}
