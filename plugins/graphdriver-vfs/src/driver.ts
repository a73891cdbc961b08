import { execFile } from 'node:child_process';
import { mkdir, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { promisify } from 'node:util';
import { DirectWrites, applyLayer, changes, changesSize, exportChanges } from '@tsengine/archive';
import { backingFilesystem, spreadSubdirectories } from '@tsengine/linux';
import { type Change, type GraphDriver, conflict, invalid, notFound, systemError } from '@tsengine/core';

const run = promisify(execFile);

const ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;

export function checkId(id: string): string {
  if (!ID.test(id)) throw invalid(`invalid layer id "${id}"`);
  return id;
}

/**
 * graphdriver "vfs": every layer is a full directory copy of its parent, so it works on any
 * filesystem and needs no mounts; diffs come from comparing a layer with its parent's tree.
 */
export class VfsDriver implements GraphDriver {
  readonly name = 'vfs';
  readonly independentDiffs = false;
  private readonly dirs: string;
  private readonly refs = new Map<string, number>();
  /** One for all layers, as they share the disk. */
  private readonly directWrites = new DirectWrites();

  constructor(readonly home: string) {
    this.dirs = join(home, 'dir');
  }

  async init(): Promise<void> {
    await mkdir(this.dirs, { recursive: true, mode: 0o700 });
    // Layers are made and removed whole: each in a block group of its own, a new one does not land
    // among the inodes of one just removed.
    spreadSubdirectories(this.dirs);
  }

  async status(): Promise<Array<[string, string]>> {
    return [['Backing Filesystem', await backingFilesystem(this.home)]];
  }

  dir(id: string): string {
    return join(this.dirs, checkId(id));
  }

  async create(id: string, parent: string | null): Promise<void> {
    const dir = this.dir(id);
    if (await this.exists(id)) throw conflict(`layer ${id} already exists`);
    await mkdir(this.dirs, { recursive: true, mode: 0o700 });
    try {
      await mkdir(dir, { mode: 0o755 });
      if (parent !== null) {
        const from = await this.existingDir(parent);
        // cp -a keeps ownership, modes, times, xattrs, hard links and device nodes.
        await run('cp', ['-a', '--reflink=auto', `${from}/.`, `${dir}/`]);
      }
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      if ((err as { stderr?: string }).stderr) throw systemError(`vfs: copying layer ${parent} into ${id}: ${(err as { stderr: string }).stderr.trim()}`, err);
      throw err;
    }
  }

  createReadWrite(id: string, parent: string | null): Promise<void> {
    return this.create(id, parent);
  }

  async remove(id: string): Promise<void> {
    await rm(this.dir(id), { recursive: true, force: true });
    this.refs.delete(id);
  }

  async get(id: string): Promise<string> {
    const dir = await this.existingDir(id);
    this.refs.set(id, (this.refs.get(id) ?? 0) + 1);
    return dir;
  }

  async put(id: string): Promise<void> {
    const count = this.refs.get(id) ?? 0;
    if (count <= 1) this.refs.delete(id);
    else this.refs.set(id, count - 1);
  }

  /** How many get calls are not yet matched by put (vfs mounts nothing; kept for parity). */
  references(id: string): number {
    return this.refs.get(id) ?? 0;
  }

  async exists(id: string): Promise<boolean> {
    try {
      return (await stat(this.dir(id))).isDirectory();
    } catch {
      return false;
    }
  }

  async cleanup(): Promise<void> {
    this.refs.clear();
  }

  async diff(id: string, parent: string | null): Promise<Readable> {
    const dir = await this.existingDir(id);
    return exportChanges(dir, await this.changes(id, parent));
  }

  async changes(id: string, parent: string | null): Promise<Change[]> {
    const dir = await this.existingDir(id);
    return changes(dir, parent === null ? null : await this.existingDir(parent));
  }

  async applyDiff(id: string, _parent: string | null, diff: Readable): Promise<number> {
    return applyLayer(await this.existingDir(id), diff, { whiteouts: 'delete', directWrites: this.directWrites });
  }

  async diffSize(id: string, parent: string | null): Promise<number> {
    return changesSize(await this.existingDir(id), await this.changes(id, parent));
  }

  /** Layer ids on disk (for stores restoring state). */
  async list(): Promise<string[]> {
    try {
      return await readdir(this.dirs);
    } catch {
      return [];
    }
  }

  private async existingDir(id: string): Promise<string> {
    if (!(await this.exists(id))) throw notFound(`vfs: no such layer: ${id}`);
    return this.dir(id);
  }
}
