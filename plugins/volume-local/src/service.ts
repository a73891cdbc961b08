import { existsSync } from 'node:fs';
import { mkdir, readFile, readdir, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type CapabilityProviders,
  type Logger,
  type MountPoint,
  type MountRequest,
  type MountSpec,
  type Volume,
  type VolumeDriver,
  type VolumeFilters,
  type VolumeService,
  EngineError,
  conflict,
  errorKind,
  errorMessage,
  invalid,
  notFound,
  writeJsonAtomic,
} from '@tsengine/core';
import { copyUp } from './copy-up.js';
import { ANONYMOUS_LABEL, generateVolumeName, validateVolumeName } from './names.js';
import { type ApiMount, type MountRecord, byDepth, parseApiMount, parseBind, parseTmpfs, parseVolumesFrom } from './specs.js';

/** What the service keeps per volume; the driver keeps the data and its options. */
interface VolumeMeta {
  Name: string;
  Driver: string;
  CreatedAt: string;
  Labels: Record<string, string> | null;
}

const METADATA_DIR = '_metadata';
const CONTAINERS_DIR = '_containers';
const LIST_FILTERS = new Set(['dangling', 'name', 'driver', 'label']);
const PRUNE_FILTERS = new Set(['label', 'label!', 'all']);

function rfc3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function truthy(value: string, filter: string): boolean {
  if (['true', '1'].includes(value.toLowerCase())) return true;
  if (['false', '0'].includes(value.toLowerCase())) return false;
  throw invalid(`invalid filter '${filter}=${value}'`);
}

/** "key" or "key=value" against a label map (Docker's label filter). */
function labelMatches(labels: Record<string, string> | null, spec: string): boolean {
  const eq = spec.indexOf('=');
  const key = eq < 0 ? spec : spec.slice(0, eq);
  if (!labels || !(key in labels)) return false;
  return eq < 0 || labels[key] === spec.slice(eq + 1);
}

/**
 * The "volumes" capability (Docker's volume service plus the container side of daemon/volumes.go):
 * names, labels and references of volumes over any VolumeDriver, and each container's mounts.
 * State: <root>/_metadata/<name>.json per volume, <root>/_containers/<id>.json per container.
 */
export class LocalVolumeService implements VolumeService {
  private readonly volumes = new Map<string, VolumeMeta>();
  /** Container ID → its mounts, in the order given. */
  private readonly containers = new Map<string, MountRecord[]>();
  /** Volume-level changes (create, remove, prepare, forget) run one at a time. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly root: string,
    private readonly drivers: () => CapabilityProviders<VolumeDriver>,
    private readonly log: Logger,
  ) {}

  /** Loads metadata and container mounts; adopts local volumes found without metadata. */
  async restore(local: VolumeDriver): Promise<void> {
    await mkdir(join(this.root, METADATA_DIR), { recursive: true, mode: 0o700 });
    await mkdir(join(this.root, CONTAINERS_DIR), { recursive: true, mode: 0o700 });
    const localNames = new Set(await local.list());
    for (const file of await readdir(join(this.root, METADATA_DIR))) {
      if (!file.endsWith('.json')) continue;
      try {
        const meta = JSON.parse(await readFile(join(this.root, METADATA_DIR, file), 'utf8')) as VolumeMeta;
        // A removal that stopped after the data went: finish it.
        if (meta.Driver === local.name && !localNames.has(meta.Name)) {
          await rm(join(this.root, METADATA_DIR, file), { force: true });
          continue;
        }
        this.volumes.set(meta.Name, meta);
      } catch (err) {
        this.log.warn({ file, err: errorMessage(err) }, 'skipping unreadable volume metadata');
      }
    }
    for (const name of localNames) {
      if (this.volumes.has(name)) continue;
      const created = await stat(local.path(name)).then((s) => s.mtime, () => new Date());
      const meta: VolumeMeta = { Name: name, Driver: local.name, CreatedAt: rfc3339(created), Labels: null };
      await this.saveMeta(meta);
      this.volumes.set(name, meta);
    }
    for (const file of await readdir(join(this.root, CONTAINERS_DIR))) {
      if (!file.endsWith('.json')) continue;
      try {
        this.containers.set(file.slice(0, -5), JSON.parse(await readFile(join(this.root, CONTAINERS_DIR, file), 'utf8')) as MountRecord[]);
      } catch (err) {
        this.log.warn({ file, err: errorMessage(err) }, 'skipping unreadable container mounts');
      }
    }
  }

  // ------------------------------------------------------------------------------------------
  // Volume jobs

  async create(body: { Name?: string; Driver?: string; DriverOpts?: Record<string, string> | null; Labels?: Record<string, string> | null }): Promise<Volume> {
    return this.exclusive(async () => {
      const anonymous = !body.Name;
      const name = body.Name || generateVolumeName();
      const labels = { ...(body.Labels ?? {}), ...(anonymous ? { [ANONYMOUS_LABEL]: '' } : {}) };
      const meta = await this.createVolume(name, body.Driver || 'local', body.DriverOpts ?? {}, labels);
      return this.view(meta);
    });
  }

  async list(filters: VolumeFilters = {}): Promise<{ Volumes: Volume[]; Warnings: string[] | null }> {
    for (const key of Object.keys(filters)) if (!LIST_FILTERS.has(key)) throw invalid(`invalid filter '${key}'`);
    const refs = this.references();
    const volumes = [...this.volumes.values()].filter((meta) => {
      for (const value of filters.dangling ?? []) if (truthy(value, 'dangling') === (refs.get(meta.Name)?.size ?? 0) > 0) return false;
      if (filters.name?.length && !filters.name.some((n) => meta.Name.includes(n))) return false;
      if (filters.driver?.length && !filters.driver.includes(meta.Driver)) return false;
      if (filters.label?.length && !filters.label.every((l) => labelMatches(meta.Labels, l))) return false;
      return true;
    });
    return { Volumes: volumes.sort((a, b) => a.Name.localeCompare(b.Name)).map((meta) => this.view(meta)), Warnings: null };
  }

  inspect(name: string): Volume {
    return this.view(this.meta(name));
  }

  async remove(name: string, force = false): Promise<void> {
    return this.exclusive(async () => {
      if (!this.volumes.has(name)) {
        if (force) return;
        throw notFound(`get ${name}: no such volume`);
      }
      const users = this.references().get(name);
      if (users?.size) throw conflict(`remove ${name}: volume is in use - [${[...users].join(', ')}]`);
      await this.removeVolume(name);
    });
  }

  async prune(filters: VolumeFilters = {}): Promise<{ VolumesDeleted: string[]; SpaceReclaimed: number }> {
    for (const key of Object.keys(filters)) if (!PRUNE_FILTERS.has(key)) throw invalid(`invalid filter '${key}'`);
    const all = (filters.all ?? []).some((v) => truthy(v, 'all'));
    return this.exclusive(async () => {
      const refs = this.references();
      const report = { VolumesDeleted: [] as string[], SpaceReclaimed: 0 };
      for (const meta of [...this.volumes.values()]) {
        if (meta.Driver !== 'local' || refs.get(meta.Name)?.size) continue;
        if (!all && !(meta.Labels && ANONYMOUS_LABEL in meta.Labels)) continue;
        if (filters.label && !filters.label.every((l) => labelMatches(meta.Labels, l))) continue;
        if (filters['label!'] && filters['label!'].some((l) => labelMatches(meta.Labels, l))) continue;
        const driver = this.driver(meta.Driver);
        // Docker leaves volumes with mount options alone: their data lives elsewhere.
        if (driver.options(meta.Name)) continue;
        const size = await driver.size(meta.Name).catch(() => 0);
        try {
          await this.removeVolume(meta.Name);
        } catch (err) {
          this.log.warn({ volume: meta.Name, err: errorMessage(err) }, 'prune could not remove a volume');
          continue;
        }
        report.VolumesDeleted.push(meta.Name);
        report.SpaceReclaimed += Math.max(size, 0);
      }
      return report;
    });
  }

  /** Every volume with its size and how many containers use it (system df). */
  async diskUsage(): Promise<Volume[]> {
    const refs = this.references();
    const out: Volume[] = [];
    for (const meta of this.volumes.values()) {
      const size = await this.driverOrUndefined(meta.Driver)?.size(meta.Name).catch(() => -1);
      out.push({ ...this.view(meta), UsageData: { Size: size ?? -1, RefCount: refs.get(meta.Name)?.size ?? 0 } });
    }
    return out;
  }

  // ------------------------------------------------------------------------------------------
  // VolumeService (the containers plugin's side)

  async prepare(request: MountRequest): Promise<MountPoint[]> {
    return this.exclusive(async () => {
      const records = this.resolveMounts(request);
      const created: string[] = [];
      try {
        for (const record of records) {
          if (record.Type === 'bind' && !existsSync(record.Source)) {
            // Docker creates a missing -v source (never a --mount one: that was refused above).
            await mkdir(record.Source, { recursive: true, mode: 0o755 });
          }
          if (record.Type !== 'volume') continue;
          if (!record.Name) {
            record.Name = generateVolumeName();
            await this.createVolume(record.Name, record.Driver ?? 'local', record.VolumeOptions ?? {}, { ...(record.VolumeLabels ?? {}), [ANONYMOUS_LABEL]: '' });
            created.push(record.Name);
          } else if (!this.volumes.has(record.Name)) {
            await this.createVolume(record.Name, record.Driver ?? 'local', record.VolumeOptions ?? {}, record.VolumeLabels ?? {});
          } else {
            record.Driver = this.volumes.get(record.Name)!.Driver;
          }
          delete record.VolumeOptions;
          delete record.VolumeLabels;
        }
        await this.saveContainer(request.containerId, records);
      } catch (err) {
        for (const name of created) await this.removeVolume(name).catch(() => undefined);
        throw err;
      }
      this.containers.set(request.containerId, records);
      return this.mountPoints(request.containerId);
    });
  }

  async mounts(containerId: string, rootfs: string): Promise<MountSpec[]> {
    const records = [...(this.containers.get(containerId) ?? [])].sort(byDepth);
    const specs: MountSpec[] = [];
    const mounted: MountRecord[] = [];
    let copied = false;
    try {
      for (const record of records) {
        if (record.Type === 'bind') {
          specs.push({
            type: 'bind',
            source: record.Source,
            destination: record.Destination,
            readonly: !record.RW,
            propagation: record.Propagation as NonNullable<MountSpec['propagation']>,
            ...(record.NonRecursive ? { recursive: false } : {}),
          });
        } else if (record.Type === 'tmpfs') {
          specs.push({ type: 'tmpfs', source: 'tmpfs', destination: record.Destination, readonly: !record.RW, options: record.TmpfsOptions ?? [] });
        } else {
          const path = await this.driver(record.Driver ?? 'local').mount(record.Name!, containerId);
          mounted.push(record);
          if (record.CopyData && !record.Copied) {
            await copyUp(rootfs, record.Destination, path);
            record.Copied = true;
            copied = true;
          }
          specs.push({ type: 'bind', source: path, destination: record.Destination, readonly: !record.RW, propagation: 'rprivate' });
        }
      }
      if (copied) await this.saveContainer(containerId, this.containers.get(containerId)!);
    } catch (err) {
      for (const record of mounted) await this.driver(record.Driver ?? 'local').unmount(record.Name!, containerId).catch(() => undefined);
      throw err;
    }
    return specs;
  }

  async release(containerId: string): Promise<void> {
    for (const record of this.containers.get(containerId) ?? []) {
      if (record.Type !== 'volume') continue;
      const driver = this.driverOrUndefined(record.Driver ?? 'local');
      await driver?.unmount(record.Name!, containerId).catch((err) => this.log.warn({ id: containerId, volume: record.Name, err: errorMessage(err) }, 'unmounting a volume failed'));
    }
  }

  async forget(containerId: string, removeAnonymous: boolean): Promise<void> {
    return this.exclusive(async () => {
      const records = this.containers.get(containerId);
      if (!records) return;
      await rm(join(this.root, CONTAINERS_DIR, `${containerId}.json`), { force: true });
      this.containers.delete(containerId);
      if (!removeAnonymous) return;
      const refs = this.references();
      for (const record of records) {
        // As Docker: volumes this container named stay; anonymous ones go unless another container uses them.
        if (record.Type !== 'volume' || !record.Anonymous || !record.Name || refs.get(record.Name)?.size) continue;
        if (!this.volumes.has(record.Name)) continue;
        await this.removeVolume(record.Name).catch((err) => this.log.warn({ volume: record.Name, err: errorMessage(err) }, 'removing an anonymous volume failed'));
      }
    });
  }

  mountPoints(containerId: string): MountPoint[] {
    return (this.containers.get(containerId) ?? [])
      .filter((r) => !r.Hidden)
      .map((r) => {
        const point: MountPoint = { Type: r.Type, Source: r.Source, Destination: r.Destination, Mode: r.Mode, RW: r.RW, Propagation: r.Propagation };
        if (r.Type === 'volume') {
          point.Name = r.Name!;
          point.Driver = r.Driver ?? 'local';
          point.Source = this.driverOrUndefined(point.Driver)?.path(r.Name!) ?? '';
        }
        return point;
      });
  }

  // ------------------------------------------------------------------------------------------

  /** Every mount of a create request, checked and in Docker's order of precedence; no side effects. */
  private resolveMounts(request: MountRequest): MountRecord[] {
    const host = request.hostConfig;
    const volumeDriver = typeof host.VolumeDriver === 'string' ? host.VolumeDriver : '';
    const byDestination = new Map<string, MountRecord>();
    // volumes-from first: the container's own mounts replace those at the same destination.
    for (const spec of request.volumesFrom) {
      const { id, mode } = parseVolumesFrom(spec);
      const source = this.containers.get(id);
      if (!source) continue;
      for (const record of source) {
        if (record.Hidden) continue;
        const copy: MountRecord = { ...record, Copied: true };
        if (mode) copy.RW = mode === 'rw';
        if (mode) copy.Mode = mode;
        byDestination.set(copy.Destination, copy);
      }
    }
    const own = new Set<string>();
    const add = (record: MountRecord) => {
      if (own.has(record.Destination)) throw invalid(`Duplicate mount point: ${record.Destination}`);
      own.add(record.Destination);
      byDestination.set(record.Destination, record);
    };
    for (const raw of arrayOf<string>(host.Binds)) {
      if (typeof raw !== 'string') throw invalid('invalid volume specification: binds must be strings');
      add(parseBind(raw, volumeDriver));
    }
    for (const m of arrayOf<ApiMount>(host.Mounts)) add(parseApiMount(m ?? {}, volumeDriver, existsSync));
    const tmpfs = host.Tmpfs && typeof host.Tmpfs === 'object' ? (host.Tmpfs as Record<string, string>) : {};
    for (const [path, options] of Object.entries(tmpfs)) add(parseTmpfs(path, String(options ?? '')));
    for (const record of byDestination.values()) {
      if (record.Type === 'volume' && record.Name && (record.Driver ?? 'local') === 'local') {
        try {
          validateVolumeName(record.Name);
        } catch (err) {
          throw invalid(`create ${record.Name}: ${errorMessage(err)}`);
        }
      }
    }
    for (const path of Object.keys(request.imageVolumes ?? {})) {
      const destination = path.length > 1 ? path.replace(/\/+$/, '') : path;
      if (byDestination.has(destination) || !destination.startsWith('/') || destination === '/') continue;
      byDestination.set(destination, {
        Type: 'volume',
        Source: '',
        Destination: destination,
        Anonymous: true,
        Driver: volumeDriver || 'local',
        RW: true,
        Mode: '',
        Propagation: '',
        CopyData: true,
      });
    }
    return [...byDestination.values()];
  }

  private async createVolume(name: string, driverName: string, options: Record<string, string>, labels: Record<string, string>): Promise<VolumeMeta> {
    const existing = this.volumes.get(name);
    if (existing) {
      if (existing.Driver !== driverName) throw conflict(`create ${name}: volume name must be unique`);
      return existing;
    }
    const driver = this.driver(driverName);
    try {
      validateVolumeName(name);
      await driver.create(name, options);
    } catch (err) {
      throw new EngineError(errorKind(err), `create ${name}: ${errorMessage(err)}`, { cause: err });
    }
    const meta: VolumeMeta = { Name: name, Driver: driverName, CreatedAt: rfc3339(new Date()), Labels: Object.keys(labels).length ? labels : null };
    try {
      await this.saveMeta(meta);
    } catch (err) {
      await driver.remove(name).catch(() => undefined);
      throw err;
    }
    this.volumes.set(name, meta);
    this.log.info({ volume: name, driver: driverName }, 'volume created');
    return meta;
  }

  /** Data first, then metadata: a crash in between leaves metadata that restore drops. */
  private async removeVolume(name: string): Promise<void> {
    const meta = this.meta(name);
    await this.driver(meta.Driver).remove(name);
    await rm(join(this.root, METADATA_DIR, `${name}.json`), { force: true });
    this.volumes.delete(name);
    this.log.info({ volume: name }, 'volume removed');
  }

  private meta(name: string): VolumeMeta {
    const meta = this.volumes.get(name);
    if (!meta) throw notFound(`get ${name}: no such volume`);
    return meta;
  }

  private view(meta: VolumeMeta): Volume {
    const driver = this.driverOrUndefined(meta.Driver);
    return {
      CreatedAt: meta.CreatedAt,
      Driver: meta.Driver,
      Labels: meta.Labels ? { ...meta.Labels } : null,
      Mountpoint: driver?.path(meta.Name) ?? '',
      Name: meta.Name,
      Options: driver?.options(meta.Name) ?? null,
      Scope: 'local',
    };
  }

  /** Volume name → IDs of the containers whose mounts use it. */
  private references(): Map<string, Set<string>> {
    const refs = new Map<string, Set<string>>();
    for (const [id, records] of this.containers) {
      for (const r of records) if (r.Type === 'volume' && r.Name) (refs.get(r.Name) ?? refs.set(r.Name, new Set()).get(r.Name)!).add(id);
    }
    return refs;
  }

  private driver(name: string): VolumeDriver {
    const providers = this.drivers();
    if (!providers.has(name)) throw notFound(`error looking up volume plugin ${name}: plugin "${name}" not found`);
    return providers.get(name);
  }

  private driverOrUndefined(name: string): VolumeDriver | undefined {
    const providers = this.drivers();
    return providers.has(name) ? providers.get(name) : undefined;
  }

  private saveMeta(meta: VolumeMeta): Promise<void> {
    return writeJsonAtomic(join(this.root, METADATA_DIR, `${meta.Name}.json`), meta);
  }

  private saveContainer(id: string, records: MountRecord[]): Promise<void> {
    return writeJsonAtomic(join(this.root, CONTAINERS_DIR, `${id}.json`), records);
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.catch(() => undefined).then(work);
    this.queue = next;
    return next;
  }
}

function arrayOf<T>(value: unknown): T[] {
  return Array.isArray(value) ? (value as T[]) : [];
}
