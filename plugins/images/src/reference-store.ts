import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '@tsengine/core';
import { type Reference, parseStored, referenceString } from './reference.js';

interface RepositoriesFile {
  Repositories: Record<string, Record<string, string>>;
}

/** repositories.json: full reference (docker.io/library/busybox:latest, name@digest) → image ID. */
export class ReferenceStore {
  private refs = new Map<string, string>();
  private readonly path: string;

  constructor(root: string) {
    this.path = join(root, 'repositories.json');
  }

  async restore(imageExists: (id: string) => boolean): Promise<void> {
    let file: RepositoriesFile;
    try {
      file = JSON.parse(await readFile(this.path, 'utf8')) as RepositoriesFile;
    } catch {
      return;
    }
    let dropped = false;
    for (const repo of Object.values(file.Repositories ?? {})) {
      for (const [ref, id] of Object.entries(repo)) {
        if (imageExists(id)) this.refs.set(ref, id);
        else dropped = true;
      }
    }
    if (dropped) await this.save();
  }

  get(ref: Reference): string | undefined {
    return this.refs.get(referenceString(ref));
  }

  async add(ref: Reference, id: string): Promise<void> {
    this.refs.set(referenceString(ref), id);
    await this.save();
  }

  async delete(ref: Reference): Promise<boolean> {
    const existed = this.refs.delete(referenceString(ref));
    if (existed) await this.save();
    return existed;
  }

  /** References of one image, sorted as Docker lists them. */
  referencesOf(id: string): Reference[] {
    return [...this.refs.entries()]
      .filter(([, target]) => target === id)
      .map(([ref]) => ref)
      .sort()
      .map(parseStored);
  }

  private async save(): Promise<void> {
    const file: RepositoriesFile = { Repositories: {} };
    for (const [full, id] of this.refs) {
      const name = parseStored(full).name;
      (file.Repositories[name] ??= {})[full] = id;
    }
    await writeJsonAtomic(this.path, file);
  }
}
