import { lstat, mkdir, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { type Logger, type VolumeDriver, errorMessage, invalid, notFound, systemError, writeJsonAtomic } from '@tsengine/core';
import { MNT, MS, mount, parseMountOptions, umount } from '@tsengine/linux';
import { mountsUnder } from './mountinfo.js';

const VALID_OPTIONS = new Set(['type', 'device', 'o']);
const DATA_DIR = '_data';
const OPTIONS_FILE = 'opts.json';

interface LocalVolume {
  options: Record<string, string> | null;
  /** Containers the data is mounted for; the filesystem is mounted while this is not empty. */
  refs: Set<string>;
  mounted: boolean;
}

/** Docker's `type/device/o` checks, before anything is written. */
export function validateLocalOptions(options: Record<string, string>): void {
  for (const key of Object.keys(options)) if (!VALID_OPTIONS.has(key)) throw invalid(`invalid option: "${key}"`);
  const has = (key: string) => key in options;
  if (has('type') && !options.type) throw invalid('missing required option: "type"');
  if (has('device') && !options.device) throw invalid('missing required option: "device"');
  if (has('type') && !has('device')) throw invalid('missing required option: "device"');
  if ((has('device') || has('o')) && !has('type')) throw invalid('missing required option: "type"');
}

/**
 * Docker's "local" driver: each volume a folder <root>/<name>/_data. With `type` (and `device`, `o`)
 * options it mounts that filesystem on _data through mount(2) while a container uses the volume,
 * like `docker volume create -o type=tmpfs -o device=tmpfs -o o=size=64m`.
 */
export class LocalVolumeDriver implements VolumeDriver {
  readonly name = 'local';
  private readonly volumes = new Map<string, LocalVolume>();
  /** Mount and unmount of one volume run one after another. */
  private readonly queues = new Map<string, Promise<unknown>>();

  constructor(
    private readonly root: string,
    private readonly log: Logger,
  ) {}

  /** Reads the volumes on disk and unmounts what a daemon that died left mounted on them. */
  async restore(): Promise<void> {
    await mkdir(this.root, { recursive: true, mode: 0o701 });
    for (const point of await mountsUnder(this.root)) {
      try {
        umount(point, MNT.DETACH);
        this.log.info({ mountpoint: point }, 'unmounted a volume left mounted by an earlier daemon');
      } catch (err) {
        this.log.warn({ mountpoint: point, err: errorMessage(err) }, 'cannot unmount a stale volume mount');
      }
    }
    for (const name of await readdir(this.root)) {
      if (name.startsWith('_') || name.startsWith('.')) continue;
      const dir = join(this.root, name);
      if (!(await lstat(join(dir, DATA_DIR)).then((s) => s.isDirectory(), () => false))) continue;
      let options: Record<string, string> | null = null;
      try {
        options = JSON.parse(await readFile(join(dir, OPTIONS_FILE), 'utf8')) as Record<string, string>;
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ volume: name, err: errorMessage(err) }, 'ignoring unreadable volume options');
      }
      this.volumes.set(name, { options, refs: new Set(), mounted: false });
    }
  }

  async create(name: string, options: Record<string, string>): Promise<void> {
    if (this.volumes.has(name)) return;
    validateLocalOptions(options);
    const dir = join(this.root, name);
    await mkdir(join(dir, DATA_DIR), { recursive: true, mode: 0o755 });
    const withOptions = Object.keys(options).length > 0;
    try {
      if (withOptions) await writeJsonAtomic(join(dir, OPTIONS_FILE), options);
    } catch (err) {
      await rm(dir, { recursive: true, force: true });
      throw err;
    }
    this.volumes.set(name, { options: withOptions ? { ...options } : null, refs: new Set(), mounted: false });
  }

  async remove(name: string): Promise<void> {
    const volume = this.volumes.get(name);
    if (!volume) return;
    await this.serial(name, async () => {
      const dir = join(this.root, name);
      // Never delete through a mount: that would erase the mounted filesystem's (or bind source's) files.
      for (const point of await mountsUnder(dir)) umount(point, MNT.DETACH);
      volume.mounted = false;
      await rm(dir, { recursive: true, force: true });
      this.volumes.delete(name);
    });
  }

  async list(): Promise<string[]> {
    return [...this.volumes.keys()];
  }

  path(name: string): string {
    return join(this.root, name, DATA_DIR);
  }

  options(name: string): Record<string, string> | null {
    const options = this.get(name).options;
    return options ? { ...options } : null;
  }

  async mount(name: string, ref: string): Promise<string> {
    const volume = this.get(name);
    const target = this.path(name);
    return this.serial(name, async () => {
      if (volume.options && !volume.mounted) {
        await mkdir(target, { recursive: true, mode: 0o755 });
        this.mountFilesystem(volume.options, target);
        volume.mounted = true;
      }
      volume.refs.add(ref);
      return target;
    });
  }

  async unmount(name: string, ref: string): Promise<void> {
    const volume = this.volumes.get(name);
    if (!volume) return;
    await this.serial(name, async () => {
      volume.refs.delete(ref);
      if (volume.refs.size > 0 || !volume.mounted) return;
      const target = this.path(name);
      try {
        umount(target);
      } catch {
        umount(target, MNT.DETACH);
      }
      volume.mounted = false;
    });
  }

  async size(name: string): Promise<number> {
    if (this.get(name).options) return -1;
    return directorySize(this.path(name));
  }

  /** Unmounts every volume still mounted (daemon shutdown). */
  async shutdown(): Promise<void> {
    for (const [name, volume] of this.volumes) {
      await this.serial(name, async () => {
        volume.refs.clear();
        if (!volume.mounted) return;
        umount(this.path(name), MNT.DETACH);
        volume.mounted = false;
      }).catch((err) => this.log.warn({ volume: name, err: errorMessage(err) }, 'cannot unmount volume at shutdown'));
    }
  }

  private mountFilesystem(options: Record<string, string>, target: string): void {
    const { flags, data } = parseMountOptions((options.o ?? '').split(','));
    const device = options.device ?? '';
    const fstype = options.type === 'none' ? null : (options.type ?? null);
    try {
      if (flags & MS.BIND) {
        mount(device, target, null, flags & (MS.BIND | MS.REC));
        const extra = flags & ~(MS.BIND | MS.REC);
        if (extra) mount(null, target, null, MS.BIND | MS.REMOUNT | extra);
      } else {
        mount(device, target, fstype, flags, data || null);
      }
    } catch (err) {
      throw systemError(`error while mounting volume '${target}': failed to mount local volume: ${errorMessage(err)}`, err);
    }
  }

  private get(name: string): LocalVolume {
    const volume = this.volumes.get(name);
    if (!volume) throw notFound(`get ${name}: no such volume`);
    return volume;
  }

  private serial<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.queues.get(name) ?? Promise.resolve();
    const next = previous.catch(() => undefined).then(work);
    this.queues.set(name, next);
    const forget = () => {
      if (this.queues.get(name) === next) this.queues.delete(name);
    };
    next.then(forget, forget);
    return next;
  }
}

/** Bytes of the files below `dir`, each hard-linked file counted once (Docker's directory.Size). */
export async function directorySize(dir: string): Promise<number> {
  const seen = new Set<string>();
  let total = 0;
  const walk = async (path: string): Promise<void> => {
    let entries;
    try {
      entries = await readdir(path, { withFileTypes: true });
    } catch {
      return;
    }
    for (const entry of entries) {
      const child = join(path, entry.name);
      if (entry.isDirectory()) {
        await walk(child);
        continue;
      }
      const stat = await lstat(child).catch(() => undefined);
      if (!stat) continue;
      const key = `${stat.dev}:${stat.ino}`;
      if (stat.nlink > 1) {
        if (seen.has(key)) continue;
        seen.add(key);
      }
      total += stat.size;
    }
  };
  await walk(dir);
  return total;
}
