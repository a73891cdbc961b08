import { readFileSync, unlinkSync } from 'node:fs';
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { syncDir } from '@tsengine/core';

export class PidFileError extends Error {
  constructor(
    readonly file: string,
    readonly pid: number,
  ) {
    super(`a tsengine daemon is already running with pid ${pid} (pid file ${file}); stop it first, or remove the file if no daemon runs`);
    this.name = 'PidFileError';
  }
}

/**
 * Takes a pid file: written to a temp file, fsynced, then hard-linked into place, which fails if
 * the file exists, so two daemons starting at once cannot both win. A file naming a live tsengine
 * daemon refuses the start; one naming a dead process (or a reused pid) is stale and replaced.
 */
export async function acquirePidFile(path: string, pid = process.pid): Promise<void> {
  await mkdir(dirname(path), { recursive: true });
  for (let attempt = 0; attempt < 5; attempt++) {
    const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
    const file = await open(tmp, 'w', 0o644);
    try {
      await file.writeFile(`${pid}\n`);
      await file.sync();
    } finally {
      await file.close();
    }
    try {
      await link(tmp, path);
      await unlink(tmp);
      await syncDir(dirname(path));
      return;
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readPid(path);
    if (holder !== undefined && holder !== pid && isLiveDaemon(holder)) throw new PidFileError(path, holder);
    await unlink(path).catch(() => undefined);
  }
  throw new Error(`cannot take pid file ${path}: it keeps being recreated by another process`);
}

/** Removes the pid file if it still names this process. */
export function releasePidFile(path: string, pid = process.pid): void {
  try {
    if (Number(readFileSync(path, 'utf8').trim()) === pid) unlinkSync(path);
  } catch {
    // already gone
  }
}

async function readPid(path: string): Promise<number | undefined> {
  try {
    const pid = Number((await readFile(path, 'utf8')).trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** Alive, and (where /proc tells) a daemon rather than an unrelated process that got the pid later. */
export function isLiveDaemon(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    return argv.includes('daemon');
  } catch {
    return true;
  }
}
