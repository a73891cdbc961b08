import { constants, type BigIntStats } from 'node:fs';
import { type FileHandle, chmod, lchown, link, lstat, lutimes, mkdir, open, readdir, realpath, rm, symlink, utimes } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import type { Readable } from 'node:stream';
import { extract as tarExtract, type Header } from 'tar-stream';
import { invalid } from '@tsengine/core';
import { S_IF, SyscallError, makedev, mknod } from '@tsengine/linux';
import { decompressed } from './gzip.js';
import { feed } from './streams.js';
import { entryComponents, entryError, linkComponents, resolveDirInRoot } from './paths.js';
import { PAX_XATTR_PREFIX, writeXattr } from './xattrs.js';
import type { DirectWrites } from './direct-writes.js';
import { FileWriter } from './writes.js';

export const WHITEOUT_PREFIX = '.wh.';
export const WHITEOUT_META_PREFIX = '.wh..wh.';
export const WHITEOUT_OPAQUE = '.wh..wh..opq';
export const OVERLAY_OPAQUE_XATTR = 'trusted.overlay.opaque';

export interface ApplyOptions {
  /**
   * How OCI whiteouts become real: 'delete' removes the named paths from the target (which holds
   * a full copy of the parent, as with vfs); 'overlay' writes overlayfs' forms (0/0 character
   * devices, trusted.overlay.opaque=y) into an upper directory.
   */
  whiteouts: 'overlay' | 'delete';
  signal?: AbortSignal;
  /**
   * Large files go past the page cache while this finds the disk fast enough: for layers, which
   * are written once and read a little at a time, not for trees read back at once.
   */
  directWrites?: DirectWrites;
}

/**
 * Extracts a layer tar (plain or gzip, streamed) into targetDir and returns the bytes of file
 * content applied. Never writes outside targetDir: names climbing out are refused, absolute names
 * land inside (Docker strips the leading "/"), and no entry is written through a symlink that
 * points outside. On error the target may hold part of the layer; the caller removes it.
 */
export async function applyLayer(targetDir: string, input: Readable, options: ApplyOptions): Promise<number> {
  const unpacker = new Unpacker(await realpath(targetDir), options);
  await unpacker.start();
  const extract = tarExtract();
  const feeding = decompressed(input).then((tar) => feed(tar, extract));
  // feed() ends the extract itself; a stream that fails before its first bytes must end it too.
  feeding.catch((err: unknown) => extract.destroy(err instanceof Error ? err : new Error(String(err))));
  try {
    for await (const entry of extract) {
      options.signal?.throwIfAborted();
      try {
        await unpacker.apply(entry.header, entry as AsyncIterable<Buffer>);
      } finally {
        entry.resume();
      }
    }
    await feeding;
    await unpacker.finish();
  } catch (err) {
    input.destroy();
    extract.destroy();
    await unpacker.abandon();
    // Stream-level failures (truncated data, corrupt gzip) carry no errno and name no entry.
    if (err instanceof Error && !(err as NodeJS.ErrnoException).code && err.name !== 'EngineError') throw invalid(`invalid layer tar: ${err.message}`, err);
    throw err;
  }
  return unpacker.applied;
}

class Unpacker {
  applied = 0;
  private readonly unpacked = new Set<string>();
  private readonly unpackedAncestors = new Set<string>();
  private readonly dirTimes: Array<[string, Date]> = [];
  private readonly files: FileWriter;
  /**
   * Saves a round trip per entry on the common layer (new files in new directories): resolved parent
   * directories by their components, forgotten whenever anything is removed (only removal can turn a
   * resolved directory into something else: the target is this apply's alone) ...
   */
  private readonly parents = new Map<string, string>();
  /** ... directories that held nothing when this apply first saw or made them ... */
  private readonly fresh = new Set<string>();
  /** ... and what this apply created (relative to root): in a fresh directory, nothing else exists. */
  private readonly created = new Set<string>();

  constructor(
    private readonly root: string,
    private readonly options: ApplyOptions,
  ) {
    this.files = new FileWriter(options.directWrites);
  }

  async start(): Promise<void> {
    if ((await readdir(this.root)).length === 0) this.fresh.add(this.root);
  }

  async apply(header: Header, body: AsyncIterable<Buffer>): Promise<void> {
    this.files.check();
    const name = header.name;
    const parts = entryComponents(name);
    if (parts.length === 0) {
      if (header.type !== 'directory') throw entryError(name, 'only a directory may name the layer root');
      await this.setMetadata(this.root, header, name);
      return;
    }
    const base = parts[parts.length - 1]!;
    const parent = await this.parentDir(parts, name);
    if (base.startsWith(WHITEOUT_PREFIX)) {
      await this.whiteout(parent, base, header, name);
      return;
    }
    const path = join(parent, base);
    const existing = await this.existing(path);
    if (existing && !(existing.isDirectory() && header.type === 'directory')) {
      if (header.type === 'link' && (await this.linkTarget(header, name)) === path) return;
      await this.remove(path);
    }
    switch (header.type) {
      case 'directory':
        if (!existing?.isDirectory()) {
          await mkdir(path, { mode: 0o700 });
          this.fresh.add(path);
        }
        break;
      case 'file':
      case 'contiguous-file': {
        const file = await open(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
        this.applied += header.size ?? 0;
        this.record(path);
        if (hasXattrs(header)) {
          // Rare; xattrs go by path after chown (which drops security.capability), so this file is done in line.
          await writeAll(file, body);
          break;
        }
        // The descriptor pins the inode: finishing it later cannot be redirected by entries that follow.
        await this.files.write(file, body, header.size ?? 0, {
          uid: header.uid ?? 0,
          gid: header.gid ?? 0,
          mode: (header.mode ?? 0o644) & 0o7777,
          mtime: header.mtime ?? new Date(0),
          fail: (why, cause) => entryError(name, why, cause),
        });
        return;
      }
      case 'link': {
        const target = await this.linkTarget(header, name);
        const st = await lstatOrNull(target);
        if (!st) throw entryError(name, `hard link target "${header.linkname}" does not exist`);
        if (st.isDirectory()) throw entryError(name, `hard link target "${header.linkname}" is a directory`);
        await link(target, path);
        this.record(path);
        return; // shares the target's inode, whose metadata is already set
      }
      case 'symlink':
        await symlink(header.linkname ?? '', path);
        break;
      case 'character-device':
      case 'block-device':
        await this.mknod(path, header.type === 'character-device' ? S_IF.CHR : S_IF.BLK, makedev(header.devmajor ?? 0, header.devminor ?? 0), name);
        break;
      case 'fifo':
        await this.mknod(path, S_IF.FIFO, 0n, name);
        break;
      default:
        throw entryError(name, `unsupported tar entry type "${header.type}"`);
    }
    await this.setMetadata(path, header, name);
    this.record(path);
  }

  async finish(): Promise<void> {
    await this.files.drain();
    // Directory times last: creating their children changed them.
    for (const [path, mtime] of this.dirTimes.reverse()) await utimes(path, mtime, mtime);
  }

  /** After a failure: waits for file writes still in flight so nothing touches the target after return. */
  async abandon(): Promise<void> {
    await this.files.settle();
  }

  private async linkTarget(header: Header, name: string): Promise<string> {
    const parts = linkComponents(name, header.linkname ?? '');
    const dir = await resolveDirInRoot(this.root, parts.slice(0, -1), name, false);
    return join(dir, parts[parts.length - 1]!);
  }

  private async mknod(path: string, type: number, dev: bigint, name: string): Promise<void> {
    try {
      mknod(path, type | 0o600, dev);
    } catch (err) {
      throw entryError(name, `cannot create device node: ${(err as Error).message}`, err);
    }
  }

  private async whiteout(parent: string, base: string, header: Header, name: string): Promise<void> {
    if (base === WHITEOUT_OPAQUE) {
      if (this.options.whiteouts === 'overlay') writeXattr(parent, OVERLAY_OPAQUE_XATTR, 'y');
      else await this.purgeLowerContent(parent);
      return;
    }
    if (base.startsWith(WHITEOUT_META_PREFIX)) return; // aufs bookkeeping (.wh..wh.plnk, …)
    const hidden = base.slice(WHITEOUT_PREFIX.length);
    if (hidden === '' || hidden === '.' || hidden === '..') throw entryError(name, 'whiteout names no file');
    const path = join(parent, hidden);
    await this.remove(path);
    if (this.options.whiteouts === 'overlay') {
      await this.mknod(path, S_IF.CHR, 0n, name);
      this.created.add(relative(this.root, path));
      await lchown(path, header.uid ?? 0, header.gid ?? 0);
    }
  }

  /** An opaque directory keeps only what this tar put there (Docker's rule for naive diffs). */
  private async purgeLowerContent(dir: string): Promise<void> {
    for (const child of await readdir(dir)) {
      const path = join(dir, child);
      const rel = relative(this.root, path);
      if (this.unpacked.has(rel) || this.unpackedAncestors.has(rel)) {
        const st = await lstat(path);
        if (st.isDirectory()) await this.purgeLowerContent(path);
      } else {
        await this.remove(path);
      }
    }
  }

  private async parentDir(parts: string[], name: string): Promise<string> {
    const key = parts.slice(0, -1).join('/');
    const known = this.parents.get(key);
    if (known !== undefined) return known;
    const dir = await resolveDirInRoot(this.root, parts.slice(0, -1), name, true, (made) => {
      this.fresh.add(made);
      this.created.add(relative(this.root, made));
    });
    this.parents.set(key, dir);
    return dir;
  }

  private async existing(path: string): Promise<BigIntStats | null> {
    if (this.fresh.has(dirname(path)) && !this.created.has(relative(this.root, path))) return null;
    return lstatOrNull(path);
  }

  private async remove(path: string): Promise<void> {
    this.parents.clear();
    await rm(path, { recursive: true, force: true });
  }

  private record(path: string): void {
    const rel = relative(this.root, path);
    this.unpacked.add(rel);
    this.created.add(rel);
    const parts = rel.split(sep);
    for (let i = 1; i < parts.length; i++) this.unpackedAncestors.add(parts.slice(0, i).join(sep));
  }

  private async setMetadata(path: string, header: Header, name: string): Promise<void> {
    const mtime = header.mtime ?? new Date(0);
    try {
      await lchown(path, header.uid ?? 0, header.gid ?? 0);
      // After chown, which clears setuid/setgid.
      if (header.type !== 'symlink') await chmod(path, (header.mode ?? 0o644) & 0o7777);
      for (const [key, value] of Object.entries((header.pax ?? {}) as Record<string, string>)) {
        if (key.startsWith(PAX_XATTR_PREFIX)) writeXattr(path, key.slice(PAX_XATTR_PREFIX.length), Buffer.from(value, 'utf8'));
      }
      if (header.type === 'directory') this.dirTimes.push([path, mtime]);
      else if (header.type === 'symlink') await lutimes(path, mtime, mtime);
      else await utimes(path, mtime, mtime);
    } catch (err) {
      if (err instanceof SyscallError || (err as NodeJS.ErrnoException).code) throw entryError(name, `cannot set metadata: ${(err as Error).message}`, err);
      throw err;
    }
  }
}

async function writeAll(file: FileHandle, body: AsyncIterable<Buffer>): Promise<void> {
  try {
    for await (const chunk of body) await file.write(chunk);
  } finally {
    await file.close();
  }
}

function hasXattrs(header: Header): boolean {
  return Object.keys((header.pax ?? {}) as Record<string, string>).some((key) => key.startsWith(PAX_XATTR_PREFIX));
}

async function lstatOrNull(path: string): Promise<BigIntStats | null> {
  try {
    return await lstat(path, { bigint: true });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw err;
  }
}
