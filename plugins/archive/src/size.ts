import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { type Change, ChangeKind } from '@tsengine/core';

/** Bytes of the non-directory files under dir, each hard-linked inode counted once. */
export async function directorySize(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    for (const name of await readdir(path)) {
      const child = join(path, name);
      const st = await lstat(child, { bigint: true });
      if (st.isDirectory()) {
        await walk(child);
        continue;
      }
      const key = `${st.dev}:${st.ino}`;
      if (st.nlink > 1n) {
        if (seen.has(key)) continue;
        seen.add(key);
      }
      total += Number(st.size);
    }
  };
  await walk(dir);
  return total;
}

/** Bytes of the added and modified non-directory files a change list names (Docker's ChangesSize). */
export async function changesSize(layerDir: string, changes: Change[]): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  for (const change of changes) {
    if (change.kind === ChangeKind.Deleted) continue;
    let st;
    try {
      st = await lstat(join(layerDir, change.path), { bigint: true });
    } catch {
      continue;
    }
    if (st.isDirectory()) continue;
    const key = `${st.dev}:${st.ino}`;
    if (seen.has(key)) continue;
    seen.add(key);
    total += Number(st.size);
  }
  return total;
}
