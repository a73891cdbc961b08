import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeJsonAtomic } from '@tsengine/core';

interface Source {
  domain: string;
  path: string;
}

interface Compressed {
  digest: string;
  size: number;
}

interface State {
  /** blob digest → repositories that hold it, newest first */
  blobs: Record<string, Source[]>;
  /** diff ID → the gzip blob made or pulled for it */
  compressed: Record<string, Compressed>;
}

const MAX_SOURCES_PER_BLOB = 5;

/**
 * What the registry side knows about local layers (docker's v2 metadata): which repositories a blob
 * was seen in, so that a push to another repository of the same registry can mount it, and which gzip
 * blob stands for a diff ID, so that a push can ask the registry for it before compressing anything.
 */
export class BlobSources {
  private loaded: Promise<State> | undefined;

  constructor(private readonly dir: string) {}

  private get file(): string {
    return join(this.dir, 'blob-sources.json');
  }

  private load(): Promise<State> {
    this.loaded ??= readFile(this.file, 'utf8').then(
      (text) => {
        const parsed = JSON.parse(text) as Partial<State>;
        return { blobs: parsed.blobs ?? {}, compressed: parsed.compressed ?? {} };
      },
      () => ({ blobs: {}, compressed: {} }),
    );
    return this.loaded;
  }

  async sources(digest: string, domain: string, except: string): Promise<string[]> {
    const state = await this.load();
    return (state.blobs[digest] ?? []).filter((s) => s.domain === domain && s.path !== except).map((s) => s.path);
  }

  async add(digest: string, domain: string, path: string): Promise<void> {
    const state = await this.load();
    const list = (state.blobs[digest] ?? []).filter((s) => !(s.domain === domain && s.path === path));
    list.unshift({ domain, path });
    state.blobs[digest] = list.slice(0, MAX_SOURCES_PER_BLOB);
    await writeJsonAtomic(this.file, state);
  }

  async compressed(diffId: string): Promise<Compressed | undefined> {
    return (await this.load()).compressed[diffId];
  }

  async setCompressed(diffId: string, digest: string, size: number): Promise<void> {
    const state = await this.load();
    state.compressed[diffId] = { digest, size };
    await writeJsonAtomic(this.file, state);
  }
}
