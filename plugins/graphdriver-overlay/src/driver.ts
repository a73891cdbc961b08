import { randomInt } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { DirectWrites, applyLayer, directorySize, exportOverlayUpper, overlayChanges } from '@tsengine/archive';
import { type Change, type GraphDriver, PluginSkip, conflict, errorMessage, invalid, notFound, systemError } from '@tsengine/core';
import { MNT, MS, SyscallError, backingFilesystem, mount, spreadSubdirectories, umount } from '@tsengine/linux';
import { isMountPoint, mountsUnder } from './mountinfo.js';

/** mount(2) copies at most one page of option data; Docker keeps lowerdir short for this reason. */
export const MOUNT_DATA_LIMIT = 4096 - 1;

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const SHORT_ID_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const SHORT_ID_LENGTH = 26;

export interface OverlayOptions {
  /** Mount container (read-write) layers with overlay's "volatile": no sync at unmount. */
  volatile: boolean;
}

/** Whether a mount with these options works here; unmounted again at once. */
function probeMount(target: string, data: string): boolean {
  try {
    mount('overlay', target, 'overlay', 0, data);
  } catch {
    return false;
  }
  umount(target, MNT.DETACH);
  return true;
}

function checkId(id: string): string {
  if (!ID.test(id)) throw invalid(`invalid layer id "${id}"`);
  return id;
}

interface MountState {
  count: number;
  path: string;
  /** False when get returned the diff dir itself (a layer without lowers). */
  mounted: boolean;
}

/**
 * graphdriver "overlay" with Docker's overlay2 layout: <home>/<id>/{diff,work,merged,link,lower}
 * and <home>/l/<short id> -> ../<id>/diff. lowerdir names the short links relative to <home>, so
 * the mount data stays under a page for deep images.
 */
export class OverlayDriver implements GraphDriver {
  readonly name = 'overlay';
  readonly independentDiffs = true;
  private readonly linkDir: string;
  /** Removed layers whose files are being deleted; the name is not a valid layer id. */
  private readonly trashDir: string;
  private readonly trashing = new Set<Promise<void>>();
  private readonly mounts = new Map<string, MountState>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private extraOptions = '';
  /** Container layers mount with overlay's "volatile" when the kernel has it (see get). */
  private volatileWritable = false;
  /** One for all layers, as they share the disk. */
  private readonly directWrites = new DirectWrites();

  constructor(
    readonly home: string,
    private readonly options: OverlayOptions = { volatile: true },
  ) {
    this.linkDir = join(home, 'l');
    this.trashDir = join(home, '.trash');
  }

  /** Creates the layout and proves overlay works here with a real mount; throws PluginSkip if not. */
  async init(): Promise<void> {
    try {
      await mkdir(this.linkDir, { recursive: true, mode: 0o700 });
      await mkdir(this.trashDir, { recursive: true, mode: 0o700 });
    } catch (err) {
      throw new PluginSkip(`overlay: cannot create ${this.linkDir}: ${errorMessage(err)}`);
    }
    // Layers are made and removed whole: each in a block group of its own, a new one does not land
    // among the inodes of one just removed.
    spreadSubdirectories(this.home);
    await this.probe();
    for (const left of await readdir(this.trashDir)) this.emptyTrash(join(this.trashDir, left));
  }

  private async probe(): Promise<void> {
    const fs = await backingFilesystem(this.home).catch(() => 'unknown');
    let dir: string;
    try {
      dir = await mkdtemp(join(this.home, 'probe-'));
    } catch (err) {
      throw new PluginSkip(`overlay is not supported on ${fs} (${this.home}): ${errorMessage(err)}`);
    }
    try {
      for (const d of ['lower1', 'lower2', 'upper', 'work', 'merged']) await mkdir(join(dir, d));
      await writeFile(join(dir, 'lower1', 'f'), 'probe');
      const data = `lowerdir=${dir}/lower2:${dir}/lower1,upperdir=${dir}/upper,workdir=${dir}/work`;
      let lastError: unknown;
      for (const extra of [',index=off', '']) {
        try {
          mount('overlay', join(dir, 'merged'), 'overlay', 0, data + extra);
        } catch (err) {
          lastError = err;
          continue;
        }
        try {
          await writeFile(join(dir, 'merged', 'f'), 'copied up');
          if ((await readFile(join(dir, 'upper', 'f'), 'utf8')) !== 'copied up') throw new Error('a write through the mount did not reach the upper dir');
        } finally {
          umount(join(dir, 'merged'), MNT.DETACH);
        }
        this.extraOptions = extra;
        if (this.options.volatile) this.volatileWritable = probeMount(join(dir, 'merged'), data + extra + ',volatile');
        return;
      }
      throw new PluginSkip(`overlay is not supported on ${fs} (${this.home}): ${errorMessage(lastError)}`);
    } catch (err) {
      if (err instanceof PluginSkip) throw err;
      throw new PluginSkip(`overlay is not supported on ${fs} (${this.home}): ${errorMessage(err)}`);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }

  async status(): Promise<Array<[string, string]>> {
    return [
      ['Backing Filesystem', await backingFilesystem(this.home)],
      ['Supports d_type', 'true'],
      ['Native Overlay Diff', 'true'],
      ['userxattr', 'false'],
    ];
  }

  private dir(id: string): string {
    return join(this.home, checkId(id));
  }

  diffDir(id: string): string {
    return join(this.dir(id), 'diff');
  }

  create(id: string, parent: string | null): Promise<void> {
    return this.makeLayer(id, parent, false);
  }

  createReadWrite(id: string, parent: string | null): Promise<void> {
    return this.makeLayer(id, parent, true);
  }

  private async makeLayer(id: string, parent: string | null, readWrite: boolean): Promise<void> {
    const dir = this.dir(id);
    if (await this.exists(id)) throw conflict(`layer ${id} already exists`);
    const lower = parent === null ? null : await this.lowerForChild(parent);
    await mkdir(this.linkDir, { recursive: true, mode: 0o700 });
    try {
      await mkdir(dir, { mode: 0o700 });
      await mkdir(join(dir, 'diff'), { mode: 0o755 });
      const short = await this.newShortLink(id);
      await writeFile(join(dir, 'link'), short);
      if (lower !== null) await writeFile(join(dir, 'lower'), lower);
      if (readWrite) {
        await mkdir(join(dir, 'work'), { mode: 0o700 });
        await mkdir(join(dir, 'merged'), { mode: 0o700 });
      }
    } catch (err) {
      await this.removeFiles(id);
      throw err;
    }
  }

  /** A child's lower file: the parent's short link, then the parent's own lowers. */
  private async lowerForChild(parent: string): Promise<string> {
    const short = await this.shortId(parent);
    const parentLower = await this.lowers(parent);
    return [`l/${short}`, ...parentLower].join(':');
  }

  private async newShortLink(id: string): Promise<string> {
    for (;;) {
      let short = '';
      for (let i = 0; i < SHORT_ID_LENGTH; i++) short += SHORT_ID_ALPHABET[randomInt(SHORT_ID_ALPHABET.length)];
      try {
        await symlink(`../${id}/diff`, join(this.linkDir, short));
        return short;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      }
    }
  }

  private async shortId(id: string): Promise<string> {
    try {
      return (await readFile(join(this.dir(id), 'link'), 'utf8')).trim();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw notFound(`overlay: no such layer: ${id}`);
      throw err;
    }
  }

  /** The layer's lower chain as "l/<short>" entries, nearest parent first. */
  private async lowers(id: string): Promise<string[]> {
    try {
      const text = (await readFile(join(this.dir(id), 'lower'), 'utf8')).trim();
      return text ? text.split(':') : [];
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw err;
    }
  }

  async remove(id: string): Promise<void> {
    await this.locked(id, async () => {
      const state = this.mounts.get(id);
      if (state?.mounted) this.unmount(state.path);
      this.mounts.delete(id);
      await this.removeFiles(id);
    });
  }

  private async removeFiles(id: string): Promise<void> {
    const dir = this.dir(id);
    try {
      const short = (await readFile(join(dir, 'link'), 'utf8')).trim();
      if (short) await rm(join(this.linkDir, short), { force: true });
    } catch {
      // no link yet
    }
    const merged = join(dir, 'merged');
    if (await isMountPoint(merged)) this.unmount(merged);
    // Deleting a layer's files took about 10 ms of every container removal. Renamed into the trash,
    // the layer is gone at once; its files go in the background, or at the next start after a crash.
    const doomed = join(this.trashDir, `${id}-${randomInt(2 ** 40).toString(36)}`);
    try {
      await rename(dir, doomed);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw err;
    }
    this.emptyTrash(doomed);
  }

  private emptyTrash(path: string): void {
    const deleting: Promise<void> = rm(path, { recursive: true, force: true })
      .catch(() => undefined)
      .finally(() => this.trashing.delete(deleting));
    this.trashing.add(deleting);
  }

  async get(id: string): Promise<string> {
    return this.locked(id, async () => {
      const state = this.mounts.get(id);
      if (state) {
        state.count++;
        return state.path;
      }
      const dir = this.dir(id);
      if (!(await this.exists(id))) throw notFound(`overlay: no such layer: ${id}`);
      const lowers = await this.lowers(id);
      if (lowers.length === 0) {
        // Nothing to merge: the layer's own directory is its filesystem (Docker does the same).
        const path = join(dir, 'diff');
        this.mounts.set(id, { count: 1, path, mounted: false });
        return path;
      }
      const merged = join(dir, 'merged');
      await mkdir(merged, { recursive: true, mode: 0o700 });
      const readWrite = await isDirectory(join(dir, 'work'));
      // A volatile mount skips the sync of the whole upper filesystem at unmount, which cost each
      // container stop 30 ms and more (it flushed everything dirty on the data root). The kernel
      // leaves a marker that refuses the next mount, as it cannot tell a crash from a clean
      // unmount; a container's unsynced writes are lost in a crash either way, so it is removed.
      const volatile = readWrite && this.volatileWritable;
      if (volatile) await rm(join(dir, 'work', 'work', 'incompat', 'volatile'), { recursive: true, force: true });
      const data = readWrite
        ? `lowerdir=${lowers.join(':')},upperdir=${id}/diff,workdir=${id}/work${this.extraOptions}${volatile ? ',volatile' : ''}`
        : `lowerdir=l/${await this.shortId(id)}:${lowers.join(':')}${this.extraOptions}`;
      if (data.length > MOUNT_DATA_LIMIT) {
        throw systemError(`overlay: mount options for layer ${id} are ${data.length} bytes, over the ${MOUNT_DATA_LIMIT}-byte limit (${lowers.length} lower layers)`);
      }
      this.mountFromHome(merged, data, readWrite ? 0 : MS.RDONLY);
      this.mounts.set(id, { count: 1, path: merged, mounted: true });
      return merged;
    });
  }

  /**
   * mount(2) resolves the relative lowerdir names against the cwd, so chdir to <home> around the
   * call. Both calls are synchronous: no other JavaScript runs while the cwd is changed.
   */
  private mountFromHome(target: string, data: string, flags: number): void {
    const cwd = process.cwd();
    process.chdir(this.home);
    try {
      mount('overlay', target, 'overlay', flags, data);
    } finally {
      process.chdir(cwd);
    }
  }

  async put(id: string): Promise<void> {
    await this.locked(id, async () => {
      const state = this.mounts.get(id);
      if (!state) return;
      if (--state.count > 0) return;
      this.mounts.delete(id);
      if (state.mounted) this.unmount(state.path);
    });
  }

  private unmount(path: string): void {
    try {
      umount(path);
    } catch (err) {
      if (err instanceof SyscallError && err.code === 'EBUSY') umount(path, MNT.DETACH);
      else if (!(err instanceof SyscallError && (err.code === 'EINVAL' || err.code === 'ENOENT'))) throw err;
    }
  }

  /** Mounted layers and their reference counts (for diagnostics and tests). */
  mounted(): Map<string, number> {
    return new Map([...this.mounts].filter(([, s]) => s.mounted).map(([id, s]) => [id, s.count]));
  }

  async exists(id: string): Promise<boolean> {
    return isDirectory(join(this.dir(id), 'diff'));
  }

  async cleanup(): Promise<void> {
    await Promise.all([...this.trashing]);
    for (const state of this.mounts.values()) if (state.mounted) this.unmount(state.path);
    this.mounts.clear();
    // Anything still mounted under home (an earlier run that died) goes too.
    for (const path of await mountsUnder(this.home)) this.unmount(path);
  }

  async diff(id: string, _parent: string | null): Promise<Readable> {
    if (!(await this.exists(id))) throw notFound(`overlay: no such layer: ${id}`);
    return exportOverlayUpper(this.diffDir(id));
  }

  async changes(id: string, _parent: string | null): Promise<Change[]> {
    if (!(await this.exists(id))) throw notFound(`overlay: no such layer: ${id}`);
    const lowerDirs = (await this.lowers(id)).map((entry) => join(this.home, entry));
    return overlayChanges(this.diffDir(id), lowerDirs);
  }

  async applyDiff(id: string, _parent: string | null, diff: Readable): Promise<number> {
    if (!(await this.exists(id))) throw notFound(`overlay: no such layer: ${id}`);
    return applyLayer(this.diffDir(id), diff, { whiteouts: 'overlay', directWrites: this.directWrites });
  }

  async diffSize(id: string, _parent: string | null): Promise<number> {
    if (!(await this.exists(id))) throw notFound(`overlay: no such layer: ${id}`);
    return directorySize(this.diffDir(id));
  }

  /** Runs fn after any earlier get/put/remove of the same layer finished. */
  private async locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(id) ?? Promise.resolve();
    const run = previous.then(fn, fn);
    const tail = run.catch(() => undefined);
    this.locks.set(id, tail);
    try {
      return await run;
    } finally {
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }
}

async function isDirectory(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isDirectory();
  } catch {
    return false;
  }
}

