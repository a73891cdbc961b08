import { readFileSync, unlinkSync } from 'node:fs';
import { link, mkdir, open, readFile, unlink } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { syncDir } from '@tsengine/core';

/** What kind of tsengine process holds a data root: a daemon, or a CLI running an embedded engine. */
export type PidFileHolder = 'daemon' | 'embedded engine';

export class PidFileError extends Error {
  constructor(
    readonly file: string,
    readonly pid: number,
    readonly holder: PidFileHolder,
  ) {
    super(`a tsengine ${holder} is already running with pid ${pid} on this data root (pid file ${file})`);
    this.name = 'PidFileError';
  }
}

/**
 * Takes a pid file: written to a temp file, fsynced, then hard-linked into place, which fails if
 * the file exists, so two engines starting at once cannot both win. Daemons and embedded engines
 * share the file, so each refuses the other; a file naming a dead process (or a pid reused by
 * something that is not tsengine) is stale and replaced.
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
    const kind = holder !== undefined && holder !== pid ? liveHolder(holder) : undefined;
    if (kind) throw new PidFileError(path, holder!, kind);
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

/**
 * The kind of tsengine process `pid` is, or undefined when it is dead or (where /proc tells) an
 * unrelated process that got the pid later.
 */
export function liveHolder(pid: number): PidFileHolder | undefined {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return undefined;
  }
  let argv: string[];
  try {
    argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  } catch {
    return 'daemon';
  }
  if (argv.includes('--embedded')) return 'embedded engine';
  if (argv.includes('daemon')) return 'daemon';
  // A client command that fell back to an embedded engine: the tsengine program (installed, bundled or cli/dist/src/main.js).
  return argv.some((arg) => /tsengine|\/main\.js$/.test(arg)) ? 'embedded engine' : undefined;
}
