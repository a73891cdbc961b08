import { createHash } from 'node:crypto';
import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type ContainerConfig, type Logger, errorMessage, writeJsonAtomic } from '@tsengine/core';

/** What makes two build steps the same: docker's rule (same parent image, same instruction and config, same copied content). */
export interface CacheKeyParts {
  parent: string | null;
  /** The history line (created_by), which carries the instruction, its build args and content digests. */
  createdBy: string;
  config: ContainerConfig;
}

export function cacheKey(parts: CacheKeyParts): string {
  const canonical = JSON.stringify({ parent: parts.parent ?? '', createdBy: parts.createdBy, config: sortKeys(parts.config) });
  return createHash('sha256').update(canonical).digest('hex');
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value as Record<string, unknown>)
        .filter(([, v]) => v !== undefined)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, v]) => [k, sortKeys(v)]),
    );
  }
  return value;
}

/**
 * The layer cache: step key → image ID, in <dataRoot>/builder/cache.json (written atomically).
 * Entries whose image is gone are dropped when looked up; writes are serialised.
 */
export class BuildCache {
  private entries = new Map<string, string>();
  private writing: Promise<void> = Promise.resolve();
  private readonly file: string;

  constructor(
    private readonly dir: string,
    private readonly log: Logger,
  ) {
    this.file = join(dir, 'cache.json');
  }

  async restore(): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    try {
      const parsed = JSON.parse(await readFile(this.file, 'utf8')) as { entries?: Record<string, string> };
      this.entries = new Map(Object.entries(parsed.entries ?? {}).filter(([k, v]) => /^[a-f0-9]{64}$/.test(k) && /^sha256:[a-f0-9]{64}$/.test(v)));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err: errorMessage(err) }, 'build cache index unreadable; starting empty');
    }
  }

  /** The cached image for a key, if it still exists (`exists` asks the image store). */
  async lookup(key: string, exists: (id: string) => Promise<boolean>): Promise<string | undefined> {
    const id = this.entries.get(key);
    if (!id) return undefined;
    if (await exists(id)) return id;
    this.entries.delete(key);
    await this.save();
    return undefined;
  }

  async store(key: string, id: string): Promise<void> {
    this.entries.set(key, id);
    await this.save();
  }

  get size(): number {
    return this.entries.size;
  }

  private save(): Promise<void> {
    const next = this.writing.catch(() => undefined).then(() => writeJsonAtomic(this.file, { entries: Object.fromEntries(this.entries) }));
    this.writing = next;
    return next;
  }
}
