import { createWriteStream, type Stats } from 'node:fs';
import { chmod, lchown, link, lstat, lutimes, mkdir, readFile, readdir, readlink, rm, symlink, utimes } from 'node:fs/promises';
import { join, posix } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { extract as tarExtract, pack as tarPack, type Header } from 'tar-stream';
import {
  type Change,
  ChangeKind,
  type ContainerChangeItem,
  type ContainerCommitRequest,
  type ContainerConfig,
  type ContainerPathStat,
  EngineError,
  type GraphDriver,
  type ImageService,
  type PluginContext,
  type VolumeService,
  VolumeServiceCapability,
  errorMessage,
  invalid,
  notFound,
} from '@tsengine/core';
import { decompressed, entryComponents, exportChanges } from '@tsengine/archive';
import { applyChanges, parseNormalized } from '@tsengine/images';
import type { ContainerManager, ContainerRecord } from './manager.js';

/**
 * docker diff, export, commit and cp (the archive endpoints) over the graph driver. Every path a
 * client names is resolved inside the container's root as if chrooted there: absolute symlink
 * targets start at the container's root and ".." stops at it.
 */
export function registerFilesystemJobs(ctx: PluginContext, manager: ContainerManager, graph: GraphDriver, images: ImageService): void {
  const files = new ContainerFiles(manager, graph, images, ctx.use(VolumeServiceCapability));
  ctx.handle('container.changes', async (job) => files.changes(job.input.id));
  // Docker's events for these: export, archive-path (cp out), extract-to-dir (cp in), commit.
  ctx.handle('container.export', async (job) => {
    await files.export(job.input.id, job.stdout, job.signal);
    manager.emit(manager.get(job.input.id), 'export');
  });
  ctx.handle('container.archive.stat', async (job) => files.stat(job.input.id, job.input.path));
  ctx.handle('container.archive.get', async (job) => {
    const stat = await files.archive(job.input.id, job.input.path, job.stdout);
    manager.emit(manager.get(job.input.id), 'archive-path');
    return stat;
  });
  ctx.handle('container.archive.put', async (job) => {
    await files.extract(job.input.id, job.input.path, job.stdin, { noOverwriteDirNonDir: job.input.noOverwriteDirNonDir ?? false, copyUIDGID: job.input.copyUIDGID ?? false });
    manager.emit(manager.get(job.input.id), 'extract-to-dir');
  });
  ctx.handle('container.commit', async (job) => {
    const record = manager.get(job.input.container);
    // Checked first, as Docker does, so that a bad name leaves no untagged image behind.
    if (job.input.repo) checkCommitReference(job.input.repo, job.input.tag);
    const running = manager.all().some((c) => c.record.Id === record.Id && c.running);
    // Only a container this commit froze is thawed again; one the user paused stays paused.
    const paused = job.input.pause !== false && running && (await ctx.engine.job('container.pause', { id: record.Id }).run().then(() => true, () => false));
    try {
      const id = await files.commit(record, job.input);
      if (job.input.repo) await ctx.engine.job('image.tag', { source: id, repo: job.input.repo, tag: job.input.tag ?? '' }).run();
      const imageRef = job.input.repo ? `${job.input.repo}${job.input.tag ? `:${job.input.tag}` : ''}` : '';
      manager.emit(record, 'commit', { comment: job.input.comment ?? '', imageID: id, imageRef });
      return { Id: id };
    } finally {
      if (paused) await ctx.engine.job('container.unpause', { id: record.Id }).run().catch(() => undefined);
    }
  });
}

function checkCommitReference(repo: string, tag: string | undefined): void {
  const ref = parseNormalized(repo);
  if (ref.digest) throw invalid('refusing to create a tag with a digest reference');
  if (tag && ref.tag) throw invalid('invalid reference format');
  if (tag && !/^[\w][\w.-]{0,127}$/.test(tag)) throw invalid(`invalid tag format: ${tag}`);
}

/** Go's os.FileMode bits, as the docker CLI decodes X-Docker-Container-Path-Stat. */
const GO_MODE = {
  dir: 2 ** 31,
  symlink: 2 ** 27,
  device: 2 ** 26,
  namedPipe: 2 ** 25,
  socket: 2 ** 24,
  setuid: 2 ** 23,
  setgid: 2 ** 22,
  charDevice: 2 ** 21,
  sticky: 2 ** 20,
} as const;

export function goFileMode(st: Stats): number {
  let mode = st.mode & 0o777;
  if (st.mode & 0o4000) mode += GO_MODE.setuid;
  if (st.mode & 0o2000) mode += GO_MODE.setgid;
  if (st.mode & 0o1000) mode += GO_MODE.sticky;
  if (st.isDirectory()) mode += GO_MODE.dir;
  else if (st.isSymbolicLink()) mode += GO_MODE.symlink;
  else if (st.isFIFO()) mode += GO_MODE.namedPipe;
  else if (st.isSocket()) mode += GO_MODE.socket;
  else if (st.isCharacterDevice()) mode += GO_MODE.device + GO_MODE.charDevice;
  else if (st.isBlockDevice()) mode += GO_MODE.device;
  return mode;
}

/** Paths the runtime creates in every container (Docker keeps them in its "-init" layer), hidden from diff. */
const RUNTIME_PATHS = ['/dev', '/proc', '/sys', '/etc/hosts', '/etc/hostname', '/etc/resolv.conf', '/etc/mtab', '/.dockerenv'];

function isRuntimePath(path: string): boolean {
  return RUNTIME_PATHS.some((p) => path === p || path.startsWith(`${p}/`));
}

/** Drops runtime paths, and directories whose only change is that the runtime created something in them. */
export function visibleChanges(changes: Change[]): ContainerChangeItem[] {
  const kept = changes.filter((c) => !isRuntimePath(c.path));
  const hidden = changes.filter((c) => isRuntimePath(c.path));
  return kept
    .filter((c) => {
      if (c.kind !== ChangeKind.Modified) return true;
      const prefix = c.path === '/' ? '/' : `${c.path}/`;
      const causedByRuntime = hidden.some((h) => h.path.startsWith(prefix));
      return !causedByRuntime || kept.some((k) => k !== c && k.path.startsWith(prefix));
    })
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))
    .map((c) => ({ Path: c.path, Kind: c.kind as 0 | 1 | 2 }));
}

const MAX_LINK_HOPS = 255;

function components(path: string): string[] {
  return path.split('/').filter((p) => p !== '' && p !== '.');
}

/** One volume or bind mount as cp sees it: container path components → host directory. */
interface ViewMount {
  destination: string[];
  source: string;
  rw: boolean;
}

/**
 * The container's files as the container sees them: its root filesystem with its volumes and binds
 * over it (Docker mounts them into the rootfs for cp; here paths under a mount map to its source).
 */
export class ContainerView {
  private readonly mounts: ViewMount[];

  constructor(
    readonly root: string,
    mounts: Array<{ destination: string; source: string; rw: boolean }> = [],
  ) {
    this.mounts = mounts.map((m) => ({ destination: components(m.destination), source: m.source, rw: m.rw })).sort((a, b) => b.destination.length - a.destination.length);
  }

  /** The mount holding a container path, if any. */
  mountOf(parts: string[]): ViewMount | undefined {
    return this.mounts.find((m) => m.destination.length <= parts.length && m.destination.every((p, i) => parts[i] === p));
  }

  host(parts: string[]): string {
    const mount = this.mountOf(parts);
    return mount ? join(mount.source, ...parts.slice(mount.destination.length)) : join(this.root, ...parts);
  }

  /**
   * Docker's FollowSymlinkInScope: the components of `path` (absolute in the container) with every
   * symlink evaluated inside the container (absolute targets start at its root, ".." stops there);
   * the last element is followed only when `followLast`. Missing elements are kept as named.
   */
  async resolve(path: string, followLast: boolean): Promise<string[]> {
    const pending = components(path);
    const resolved: string[] = [];
    let hops = 0;
    while (pending.length > 0) {
      const name = pending.shift()!;
      if (name === '..') {
        resolved.pop();
        continue;
      }
      if (pending.length === 0 && !followLast) {
        resolved.push(name);
        break;
      }
      const host = this.host([...resolved, name]);
      let st: Stats;
      try {
        st = await lstat(host);
      } catch {
        resolved.push(name);
        continue;
      }
      if (!st.isSymbolicLink()) {
        resolved.push(name);
        continue;
      }
      if (++hops > MAX_LINK_HOPS) throw invalid(`too many levels of symbolic links resolving ${path}`);
      const target = await readlink(host);
      if (target.startsWith('/')) resolved.length = 0;
      pending.unshift(...components(target));
    }
    return resolved;
  }
}

function absolutePath(parts: string[]): string {
  return `/${parts.join('/')}`;
}

function isMissing(err: unknown): boolean {
  const code = (err as NodeJS.ErrnoException).code;
  return code === 'ENOENT' || code === 'ENOTDIR';
}

/** Docker's cp wording for a missing path; the docker CLI prints it after "Error response from daemon: ". */
function fileNotFound(path: string, ref: string, cause?: unknown): EngineError {
  return notFound(`Could not find the file ${path} in container ${ref}`, cause);
}

interface ExtractOptions {
  noOverwriteDirNonDir: boolean;
  copyUIDGID: boolean;
}

class ContainerFiles {
  constructor(
    private readonly manager: ContainerManager,
    private readonly graph: GraphDriver,
    private readonly images: ImageService,
    private readonly volumes: VolumeService | undefined,
  ) {}

  /** The graph driver id of the container's image top layer (the parent of its writable layer). */
  private parentLayer(record: ContainerRecord): string | null {
    return record.ImageChainId ? record.ImageChainId.replace(/^sha256:/, '') : null;
  }

  async changes(ref: string): Promise<ContainerChangeItem[]> {
    const record = this.manager.get(ref);
    return visibleChanges(await this.graph.changes(record.Id, this.parentLayer(record)));
  }

  /**
   * Mounts the container's root for the duration of `work` (get/put are reference counted) and
   * lays its volumes and binds over it. tmpfs mounts have no host source and are not seen.
   */
  private async withView<T>(record: ContainerRecord, work: (view: ContainerView) => Promise<T>): Promise<T> {
    const root = await this.graph.get(record.Id);
    try {
      const mounts = (this.volumes?.mountPoints(record.Id) ?? []).filter((m) => m.Type !== 'tmpfs' && m.Source !== '').map((m) => ({ destination: m.Destination, source: m.Source, rw: m.RW }));
      return await work(new ContainerView(root, mounts));
    } finally {
      await this.graph.put(record.Id).catch(() => undefined);
    }
  }

  /** The root filesystem only, as Docker exports it (volumes are not part of it). */
  async export(ref: string, out: NodeJS.WritableStream, signal: AbortSignal): Promise<void> {
    const record = this.manager.get(ref);
    await this.withView(record, async ({ root }) => {
      const entries = await walk(root, '/', signal);
      await pipeline(exportChanges(root, entries.map((path) => ({ path, kind: ChangeKind.Added }))), out);
    });
  }

  /** Docker's ResolvePath: the parent resolved in scope, the last element as named (followed with a trailing "/" or "/."). */
  private async statIn(view: ContainerView, ref: string, path: string): Promise<{ stat: ContainerPathStat; parts: string[] }> {
    if (path === '') throw invalid('path cannot be empty');
    const absolute = posix.join('/', path);
    const followLast = path.endsWith('/') || path.endsWith('/.') || absolute === '/';
    const parts = await view.resolve(absolute, followLast);
    let st: Stats;
    try {
      st = await lstat(view.host(parts));
    } catch (err) {
      if (isMissing(err)) throw fileNotFound(path, ref, err);
      throw err;
    }
    let linkTarget = '';
    if (st.isSymbolicLink()) linkTarget = absolutePath(await view.resolve(absolute, true));
    const name = absolute === '/' ? '/' : posix.basename(absolute);
    return { parts, stat: { name, size: st.size, mode: goFileMode(st), mtime: st.mtime.toISOString(), linkTarget } };
  }

  async stat(ref: string, path: string): Promise<ContainerPathStat> {
    const record = this.manager.get(ref);
    return this.withView(record, async (view) => (await this.statIn(view, ref, path)).stat);
  }

  /** A tar of `path`: a file as one entry, a directory with everything below it, named after its last element. */
  async archive(ref: string, path: string, out: NodeJS.WritableStream): Promise<ContainerPathStat> {
    const record = this.manager.get(ref);
    return this.withView(record, async (view) => {
      const { stat, parts } = await this.statIn(view, ref, path);
      const host = view.host(parts);
      const base = parts.length === 0 ? '.' : parts[parts.length - 1]!;
      // A volume's root has its own name on the host (…/_data); entries are named as in the container.
      const hostBase = parts.length === 0 ? '.' : posix.basename(host);
      const dir = parts.length === 0 ? host : posix.dirname(host);
      const st = await lstat(host);
      const below = st.isDirectory() ? await walk(host, `/${hostBase}`) : [];
      const tar = exportChanges(dir, [`/${hostBase}`, ...below].map((p) => ({ path: p, kind: ChangeKind.Added })));
      if (hostBase === base) await pipeline(tar, out);
      else await pipeline(renameTopEntry(tar, hostBase, base), out);
      return stat;
    });
  }

  async extract(ref: string, path: string, input: Readable, options: ExtractOptions): Promise<void> {
    const record = this.manager.get(ref);
    if (path === '') throw invalid('path cannot be empty');
    await this.withView(record, async (view) => {
      const dest = await view.resolve(posix.join('/', path), true);
      let st: Stats;
      try {
        st = await lstat(view.host(dest));
      } catch (err) {
        if (isMissing(err)) throw fileNotFound(path, ref, err);
        throw err;
      }
      if (!st.isDirectory()) throw invalid('extraction point is not a directory');
      const mount = view.mountOf(dest);
      if (mount && !mount.rw) throw new EngineError('forbidden', 'mounted volume is marked read-only');
      if (!mount && record.HostConfig.ReadonlyRootfs === true) throw new EngineError('forbidden', 'container rootfs is marked read-only');
      const owner = options.copyUIDGID ? await containerUser(view, record.Config.User ?? '') : undefined;
      await new TarIntoView(view, dest, options.noOverwriteDirNonDir, owner).run(input);
    });
  }

  async commit(record: ContainerRecord, request: ContainerCommitRequest): Promise<string> {
    const requested = request.config && typeof request.config === 'object' ? request.config : record.Config;
    const config = mergeCommitConfig(applyChanges(requested, request.changes ?? []), record.Config);
    const layer = await this.graph.diff(record.Id, this.parentLayer(record));
    const now = new Date().toISOString();
    const createdBy = [...(record.Config.Entrypoint ?? []), ...(record.Config.Cmd ?? [])].join(' ');
    return this.images.createImage({
      parent: record.Image,
      layer,
      config,
      history: { created: now, created_by: createdBy, ...(request.author ? { author: request.author } : {}), ...(request.comment ? { comment: request.comment } : {}) },
      meta: {
        created: now,
        container: record.Id,
        container_config: record.Config,
        ...(request.author ? { author: request.author } : {}),
        ...(request.comment ? { comment: request.comment } : {}),
      },
    });
  }
}

/**
 * Docker's commit merge: fields the new config leaves empty come from the container's config;
 * Env is merged by variable name, Labels, ExposedPorts and Volumes by key.
 */
export function mergeCommitConfig(user: ContainerConfig, container: ContainerConfig): ContainerConfig {
  const merged: ContainerConfig = { ...user };
  if (!merged.User) merged.User = container.User ?? '';
  if (!merged.Env || merged.Env.length === 0) merged.Env = container.Env ?? null;
  else {
    const names = new Set(merged.Env.map((e) => e.split('=')[0]));
    merged.Env = [...merged.Env, ...(container.Env ?? []).filter((e) => !names.has(e.split('=')[0]))];
  }
  if (container.Labels) merged.Labels = { ...container.Labels, ...(merged.Labels ?? {}) };
  if (container.ExposedPorts) merged.ExposedPorts = { ...container.ExposedPorts, ...(merged.ExposedPorts ?? {}) };
  if (container.Volumes) merged.Volumes = { ...container.Volumes, ...(merged.Volumes ?? {}) };
  if ((!merged.Cmd || merged.Cmd.length === 0) && (!merged.Entrypoint || merged.Entrypoint.length === 0)) {
    merged.Cmd = container.Cmd ?? null;
    merged.Entrypoint = container.Entrypoint ?? null;
  }
  if (!merged.WorkingDir) merged.WorkingDir = container.WorkingDir ?? '';
  if (!merged.StopSignal && container.StopSignal) merged.StopSignal = container.StopSignal;
  return merged;
}

/** Re-packs a tar with its top element renamed (`from/…` → `to/…`), hard link targets included. */
function renameTopEntry(tar: Readable, from: string, to: string): Readable {
  const extract = tarExtract();
  const pack = tarPack();
  const rename = (name: string) => (name === from || name.startsWith(`${from}/`) ? to + name.slice(from.length) : name);
  const feeding = pipeline(tar, extract as unknown as NodeJS.WritableStream);
  void (async () => {
    for await (const entry of extract) {
      const header = { ...entry.header, name: rename(entry.header.name), ...(entry.header.type === 'link' ? { linkname: rename(entry.header.linkname ?? '') } : {}) };
      const sink = pack.entry(header);
      await pipeline(entry as unknown as Readable, sink as unknown as NodeJS.WritableStream);
    }
    await feeding;
    pack.finalize();
  })().catch((err: unknown) => pack.destroy(err as Error));
  return Readable.from(pack as AsyncIterable<Buffer>);
}

/** Every path below `hostDir` (not `hostDir` itself), as container-style paths under `prefix`, depth first. */
async function walk(hostDir: string, prefix: string, signal?: AbortSignal): Promise<string[]> {
  const out: string[] = [];
  const visit = async (dir: string, at: string): Promise<void> => {
    signal?.throwIfAborted();
    for (const name of (await readdir(dir)).sort()) {
      const path = posix.join(at, name);
      out.push(path);
      const st = await lstat(join(dir, name));
      if (st.isDirectory()) await visit(join(dir, name), path);
    }
  };
  await visit(hostDir, prefix);
  return out;
}

/** uid and gid of a container user spec ("name", "uid", "uid:gid", "name:group") from the container's own files. */
async function containerUser(view: ContainerView, spec: string): Promise<{ uid: number; gid: number }> {
  if (spec === '') return { uid: 0, gid: 0 };
  const [user = '', group] = spec.split(':');
  const table = async (file: string) =>
    (await readFile(view.host(await view.resolve(file, true)), 'utf8').catch(() => ''))
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => l.split(':'));
  const passwd = await table('/etc/passwd');
  const entry = passwd.find((f) => f[0] === user || (/^\d+$/.test(user) && f[2] === user));
  let uid: number;
  let gid: number;
  if (entry) {
    uid = Number(entry[2]);
    gid = Number(entry[3]);
  } else if (/^\d+$/.test(user)) {
    uid = Number(user);
    gid = uid;
  } else throw invalid(`unable to find user ${user}: no matching entries in passwd file`);
  if (group !== undefined && group !== '') {
    if (/^\d+$/.test(group)) gid = Number(group);
    else {
      const found = (await table('/etc/group')).find((f) => f[0] === group);
      if (!found) throw invalid(`unable to find group ${group}: no matching entries in group file`);
      gid = Number(found[2]);
    }
  }
  return { uid, gid };
}

/**
 * Extracts a tar (as `docker cp` sends it) into `dest`, a directory of the container. Entry names
 * may not climb above `dest`; every parent is resolved inside the container's view, so a symlink in
 * the container cannot send a write to the host.
 */
class TarIntoView {
  private readonly dirTimes: Array<[string, Date]> = [];

  constructor(
    private readonly view: ContainerView,
    private readonly dest: string[],
    private readonly noOverwriteDirNonDir: boolean,
    private readonly owner: { uid: number; gid: number } | undefined,
  ) {}

  async run(input: Readable): Promise<void> {
    const extract = tarExtract();
    const feeding = decompressed(input).then((tar) => pipeline(tar, extract as unknown as NodeJS.WritableStream));
    feeding.catch(() => undefined);
    try {
      for await (const entry of extract) {
        try {
          await this.apply(entry.header, entry as AsyncIterable<Buffer>);
        } finally {
          entry.resume();
        }
      }
      await feeding;
    } catch (err) {
      input.destroy();
      extract.destroy();
      if (err instanceof Error && !(err as NodeJS.ErrnoException).code && err.name !== 'EngineError') throw invalid(`invalid tar: ${err.message}`, err);
      throw err;
    }
    for (const [path, mtime] of this.dirTimes.reverse()) await utimes(path, mtime, mtime).catch(() => undefined);
  }

  private destPath(parts: string[]): string {
    return absolutePath([...this.dest, ...parts]);
  }

  /** The container components of a directory below dest, created (0755) where missing. */
  private async directory(parts: string[], entry: string): Promise<string[]> {
    let current = this.dest;
    for (let i = 0; i < parts.length; i++) {
      current = await this.view.resolve(this.destPath(parts.slice(0, i + 1)), true);
      const host = this.view.host(current);
      const st = await lstat(host).catch((err: unknown) => (isMissing(err) ? null : Promise.reject(err)));
      if (!st) await mkdir(host, { mode: 0o755 });
      else if (!st.isDirectory()) throw invalid(`cannot extract "${entry}": ${absolutePath(current)} is not a directory`);
    }
    return current;
  }

  private async apply(header: Header, body: AsyncIterable<Buffer>): Promise<void> {
    const name = header.name;
    let parts: string[];
    try {
      parts = entryComponents(name);
    } catch (err) {
      throw invalid(`invalid tar entry "${name}": ${errorMessage(err).replace(/^layer entry "[^"]*": /, '')}`, err);
    }
    if (parts.length === 0) {
      if (header.type === 'directory') await this.metadata(this.view.host(this.dest), header);
      return;
    }
    const parent = await this.directory(parts.slice(0, -1), name);
    const target = [...parent, parts[parts.length - 1]!];
    const path = this.view.host(target);
    const mount = this.view.mountOf(target);
    if (mount && !mount.rw) throw new EngineError('forbidden', `cannot extract "${name}": mounted volume is marked read-only`);
    const existing = await lstat(path).catch((err: unknown) => (isMissing(err) ? null : Promise.reject(err)));
    const isDirEntry = header.type === 'directory';
    if (existing) {
      if (this.noOverwriteDirNonDir && existing.isDirectory() && !isDirEntry) throw invalid(`cannot overwrite directory "${absolutePath(target)}" with non-directory "${name}"`);
      if (this.noOverwriteDirNonDir && !existing.isDirectory() && isDirEntry) throw invalid(`cannot overwrite non-directory "${absolutePath(target)}" with directory "${name}"`);
      if (!(existing.isDirectory() && isDirEntry)) await rm(path, { recursive: true, force: true });
    }
    switch (header.type) {
      case 'directory':
        if (!existing?.isDirectory()) await mkdir(path, { mode: 0o755 });
        break;
      case 'file':
      case 'contiguous-file':
        await pipeline(body, createWriteStream(path, { mode: 0o600 }));
        break;
      case 'symlink':
        await symlink(header.linkname ?? '', path);
        break;
      case 'link': {
        const linkTarget = this.view.host(await this.view.resolve(this.destPath(entryComponents(header.linkname ?? '')), false));
        const st = await lstat(linkTarget).catch(() => null);
        if (!st || st.isDirectory()) throw invalid(`invalid tar entry "${name}": hard link target "${header.linkname}" is not a file in the archive`);
        await link(linkTarget, path);
        return;
      }
      default:
        throw invalid(`invalid tar entry "${name}": entry type "${header.type}" cannot be copied into a container`);
    }
    await this.metadata(path, header);
  }

  private async metadata(path: string, header: Header): Promise<void> {
    const uid = this.owner?.uid ?? header.uid ?? 0;
    const gid = this.owner?.gid ?? header.gid ?? 0;
    const mtime = header.mtime ?? new Date();
    await lchown(path, uid, gid);
    if (header.type !== 'symlink') await chmod(path, (header.mode ?? 0o644) & 0o7777);
    if (header.type === 'directory') this.dirTimes.push([path, mtime]);
    else if (header.type === 'symlink') await lutimes(path, mtime, mtime);
    else await utimes(path, mtime, mtime);
  }
}
