import type { BigIntStats } from 'node:fs';
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Change, ChangeKind } from '@tsengine/core';
import { lgetxattr } from '@tsengine/linux';
import { isOverlayOpaque, isOverlayWhiteout } from './export.js';

const CAPABILITY_XATTR = 'security.capability';

function byPath(a: Change, b: Change): number {
  return a.path < b.path ? -1 : a.path > b.path ? 1 : 0;
}

async function lstatOrNull(path: string): Promise<BigIntStats | null> {
  try {
    return await lstat(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT' || (err as NodeJS.ErrnoException).code === 'ENOTDIR') return null;
    throw err;
  }
}

async function sortedChildren(dir: string): Promise<string[]> {
  return (await readdir(dir)).sort();
}

/**
 * Docker's comparison of two stats: type and mode, owner, device number, and for non-directories
 * mtime (to the nanosecond) and size. Inode and ctime differ in any copy, so they are not compared.
 */
function statDifferent(a: BigIntStats, b: BigIntStats): boolean {
  if (a.mode !== b.mode || a.uid !== b.uid || a.gid !== b.gid || a.rdev !== b.rdev) return true;
  if (a.isDirectory()) return false;
  return a.mtimeNs !== b.mtimeNs || a.size !== b.size;
}

function sameCapability(a: string, b: string): boolean {
  const x = lgetxattr(a, CAPABILITY_XATTR);
  const y = lgetxattr(b, CAPABILITY_XATTR);
  return x === null ? y === null : y !== null && x.equals(y);
}

/**
 * Changes of layerDir against parentDir (null: everything is added) by comparing the two trees.
 * A directory that holds changes is reported as modified too, so its metadata travels with them.
 */
export async function changes(layerDir: string, parentDir: string | null): Promise<Change[]> {
  const out: Change[] = [];
  const walk = async (rel: string, newDir: string, oldDir: string | null): Promise<void> => {
    const oldNames = new Set(oldDir ? await sortedChildren(oldDir) : []);
    for (const name of await sortedChildren(newDir)) {
      const path = `${rel}/${name}`;
      const newPath = join(newDir, name);
      const newSt = await lstat(newPath, { bigint: true });
      const oldPath = oldDir && oldNames.has(name) ? join(oldDir, name) : null;
      const oldSt = oldPath ? await lstatOrNull(oldPath) : null;
      oldNames.delete(name);
      const start = out.length;
      let recorded = false;
      if (!oldSt) {
        out.push({ path, kind: ChangeKind.Added });
        recorded = true;
      } else if (statDifferent(oldSt, newSt) || !sameCapability(oldPath!, newPath)) {
        out.push({ path, kind: ChangeKind.Modified });
        recorded = true;
      }
      if (newSt.isDirectory()) {
        await walk(path, newPath, oldSt?.isDirectory() ? oldPath : null);
        if (!recorded && out.length > start) out.splice(start, 0, { path, kind: ChangeKind.Modified });
      }
    }
    for (const name of oldNames) out.push({ path: `${rel}/${name}`, kind: ChangeKind.Deleted });
  };
  await walk('', layerDir, parentDir);
  return out.sort(byPath);
}

/**
 * Changes recorded in an overlay upper directory against its lower layers (top first), as
 * Docker reports them: whiteouts and opaque directories are deletions, paths present in a lower
 * layer are modifications (directories only when their size, mode or mtime differ), others are
 * additions; the parent of an addition or deletion is reported as modified.
 */
export async function overlayChanges(upperDir: string, lowerDirs: string[]): Promise<Change[]> {
  const out: Change[] = [];
  const changedDirs = new Set<string>();
  const walk = async (rel: string): Promise<void> => {
    const dir = rel ? join(upperDir, rel) : upperDir;
    for (const name of await sortedChildren(dir)) {
      const path = `${rel}/${name}`;
      const abs = join(dir, name);
      const st = await lstat(abs, { bigint: true });
      let kind: ChangeKind | null;
      if (isOverlayWhiteout(st) || (st.isDirectory() && isOverlayOpaque(abs))) kind = ChangeKind.Deleted;
      else kind = await kindAgainstLowers(path, st, lowerDirs);
      if (st.isDirectory()) changedDirs.add(path);
      if (kind !== null) {
        if (kind !== ChangeKind.Modified) {
          const parent = rel === '' ? '/' : rel;
          if (parent !== '/' && !changedDirs.has(parent)) {
            out.push({ path: parent, kind: ChangeKind.Modified });
            changedDirs.add(parent);
          }
        }
        out.push({ path, kind });
      }
      if (st.isDirectory()) await walk(path);
    }
  };
  await walk('');
  return out.sort(byPath);
}

async function kindAgainstLowers(path: string, st: BigIntStats, lowerDirs: string[]): Promise<ChangeKind | null> {
  for (const lower of lowerDirs) {
    const lowerSt = await lstatOrNull(join(lower, path));
    if (!lowerSt) continue;
    if (lowerSt.isDirectory() && st.isDirectory() && lowerSt.size === st.size && lowerSt.mode === st.mode && lowerSt.mtimeNs === st.mtimeNs) return null;
    return ChangeKind.Modified;
  }
  return ChangeKind.Added;
}
