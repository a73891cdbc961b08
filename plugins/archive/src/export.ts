import { createReadStream, type BigIntStats } from 'node:fs';
import { lstat, readdir, readlink } from 'node:fs/promises';
import { join, posix } from 'node:path';
import type { Readable } from 'node:stream';
import { pack as tarPack, type Header, type Pack } from 'tar-stream';
import { feed, toNodeReadable } from './streams.js';
import { type Change, ChangeKind } from '@tsengine/core';
import { major, minor } from '@tsengine/linux';
import { OVERLAY_OPAQUE_XATTR, WHITEOUT_OPAQUE, WHITEOUT_PREFIX } from './apply.js';
import { lgetxattr } from '@tsengine/linux';
import { PAX_XATTR_PREFIX, readXattrs } from './xattrs.js';

const EPOCH = new Date(0);
const EMPTY = Buffer.alloc(0);

type HeaderArgument = Partial<Header> & Pick<Header, 'name'>;

/**
 * Writes tar entries for paths of a layer: metadata from lstat (ownership, mode, mtime, xattrs
 * but overlay's), a hard link entry for the second name of an inode, OCI whiteouts.
 */
class LayerTarWriter {
  private readonly inodes = new Map<string, string>();

  constructor(readonly pack: Pack) {}

  /** Adds the file at `abs` as `rel` (no leading "/"); sockets are skipped like Docker does. */
  async addPath(rel: string, abs: string, st?: BigIntStats): Promise<void> {
    st ??= await lstat(abs, { bigint: true });
    const header: HeaderArgument = {
      name: rel,
      mode: Number(st.mode & 0o7777n),
      uid: Number(st.uid),
      gid: Number(st.gid),
      mtime: new Date(Number(st.mtimeMs)),
      size: 0,
    };
    const pax = paxXattrs(abs);
    if (pax) header.pax = pax;
    if (st.isFile()) {
      const key = `${st.dev}:${st.ino}`;
      const first = st.nlink > 1n ? this.inodes.get(key) : undefined;
      if (first !== undefined) {
        await this.entry({ ...header, type: 'link', linkname: first });
        return;
      }
      if (st.nlink > 1n) this.inodes.set(key, rel);
      await this.fileEntry({ ...header, type: 'file', size: Number(st.size) }, abs);
      return;
    }
    if (st.isDirectory()) return this.entry({ ...header, type: 'directory' });
    if (st.isSymbolicLink()) return this.entry({ ...header, type: 'symlink', linkname: await readlink(abs) });
    if (st.isCharacterDevice() || st.isBlockDevice()) {
      return this.entry({ ...header, type: st.isCharacterDevice() ? 'character-device' : 'block-device', devmajor: major(st.rdev), devminor: minor(st.rdev) });
    }
    if (st.isFIFO()) return this.entry({ ...header, type: 'fifo' });
  }

  /** `.wh.NAME` next to the deleted path. */
  async addWhiteout(rel: string): Promise<void> {
    await this.entry(markerHeader(posix.join(posix.dirname(rel), `${WHITEOUT_PREFIX}${posix.basename(rel)}`)));
  }

  /** `DIR/.wh..wh..opq`: the directory hides everything below it in lower layers. */
  async addOpaque(relDir: string): Promise<void> {
    await this.entry(markerHeader(posix.join(relDir, WHITEOUT_OPAQUE)));
  }

  private entry(header: HeaderArgument): Promise<void> {
    return new Promise((resolve, reject) => {
      this.pack.entry(header, EMPTY, (err) => (err ? reject(err) : resolve()));
    });
  }

  private async fileEntry(header: HeaderArgument, abs: string): Promise<void> {
    let sink: ReturnType<Pack['entry']> | undefined;
    const done = new Promise<void>((resolve, reject) => {
      sink = this.pack.entry(header, (err) => (err ? reject(err) : resolve()));
    });
    await feed(createReadStream(abs), sink!);
    await done;
  }
}

function markerHeader(name: string): HeaderArgument {
  return { name, type: 'file', size: 0, mode: 0, uid: 0, gid: 0, mtime: EPOCH };
}

/**
 * tar-stream writes PAX records as UTF-8 text, so only values that are valid UTF-8 survive; a
 * binary value (e.g. security.capability) is left out rather than corrupted.
 */
function paxXattrs(abs: string): Record<string, string> | undefined {
  let pax: Record<string, string> | undefined;
  for (const [name, value] of readXattrs(abs)) {
    const text = value.toString('utf8');
    if (!Buffer.from(text, 'utf8').equals(value)) continue;
    pax ??= {};
    pax[`${PAX_XATTR_PREFIX}${name}`] = text;
  }
  return pax;
}

function produce(work: (writer: LayerTarWriter) => Promise<void>): Readable {
  const pack = tarPack();
  const writer = new LayerTarWriter(pack);
  work(writer).then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err as Error),
  );
  return toNodeReadable(pack);
}

function byPath(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/**
 * A layer tar from a list of changes against the parent (Docker's naive diff): added and modified
 * paths are read from layerDir, deleted ones become whiteouts. Sorted by path, so the same content
 * gives the same bytes.
 */
export function exportChanges(layerDir: string, changes: Change[]): Readable {
  const sorted = [...changes].sort((a, b) => byPath(a.path, b.path));
  return produce(async (writer) => {
    for (const change of sorted) {
      const rel = change.path.replace(/^\/+/, '');
      if (rel === '') continue;
      if (change.kind === ChangeKind.Deleted) {
        await writer.addWhiteout(rel);
        continue;
      }
      let st: BigIntStats;
      try {
        st = await lstat(join(layerDir, rel), { bigint: true });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      await writer.addPath(rel, join(layerDir, rel), st);
    }
  });
}

/**
 * A layer tar straight from an overlay upper directory: 0/0 character devices become `.wh.NAME`,
 * directories marked trusted.overlay.opaque=y get `.wh..wh..opq`. Walked depth first in name order.
 */
export function exportOverlayUpper(upperDir: string): Readable {
  return produce(async (writer) => {
    const walk = async (relDir: string): Promise<void> => {
      const abs = relDir ? join(upperDir, relDir) : upperDir;
      const names = (await readdir(abs)).sort(byPath);
      for (const name of names) {
        const rel = relDir ? `${relDir}/${name}` : name;
        const path = join(upperDir, rel);
        const st = await lstat(path, { bigint: true });
        if (isOverlayWhiteout(st)) {
          await writer.addWhiteout(rel);
          continue;
        }
        await writer.addPath(rel, path, st);
        if (st.isDirectory()) {
          if (isOverlayOpaque(path)) await writer.addOpaque(rel);
          await walk(rel);
        }
      }
    };
    await walk('');
  });
}

export function isOverlayWhiteout(st: BigIntStats | { isCharacterDevice(): boolean; rdev: number | bigint }): boolean {
  return st.isCharacterDevice() && BigInt(st.rdev) === 0n;
}

export function isOverlayOpaque(dir: string): boolean {
  return lgetxattr(dir, OVERLAY_OPAQUE_XATTR)?.toString() === 'y';
}
