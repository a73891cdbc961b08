import { createHash } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { chmod, copyFile, lchown, lstat, lutimes, mkdir, open, readFile, readdir, readlink, rm, symlink, utimes } from 'node:fs/promises';
import { basename, join, posix } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { invalid } from '@tsengine/core';
import { applyLayer } from '@tsengine/archive';
import { mkdirInScope, resolveInScope } from './scope.js';

export interface Owner {
  uid: number;
  gid: number;
}

/** One COPY/ADD source: a host path (already resolved inside its own root) and its name for messages. */
export interface Source {
  host: string;
  name: string;
}

export interface CopyOptions {
  /** Owner of everything written; undefined keeps the source's (COPY --from) or root's. */
  owner?: Owner;
  /** ADD: local tar archives (plain or gzip) are extracted instead of copied. */
  extractArchives: boolean;
}

/**
 * A digest over what a COPY/ADD would write (names, types, modes, contents, link targets), so that
 * the layer cache misses exactly when a copied file changed. File times are left out, as docker does.
 */
export async function digestSources(sources: Source[], preserveOwner: boolean): Promise<string> {
  const hash = createHash('sha256');
  const visit = async (host: string, rel: string): Promise<void> => {
    const st = await lstat(host);
    hash.update(`${rel}\0${st.mode}\0${preserveOwner ? `${st.uid}:${st.gid}` : ''}\0`);
    if (st.isDirectory()) {
      for (const name of (await readdir(host)).sort()) await visit(join(host, name), `${rel}/${name}`);
    } else if (st.isSymbolicLink()) hash.update(await readlink(host));
    else if (st.isFile()) {
      const file = createHash('sha256');
      await pipeline(createReadStream(host), file);
      hash.update(file.digest('hex'));
    }
    hash.update('\n');
  };
  for (const source of sources) await visit(source.host, source.name);
  return hash.digest('hex');
}

/** Plain tar (ustar magic) or gzip, as docker's ADD auto-extraction detects them (bzip2/xz are copied as files). */
export async function isLocalArchive(path: string): Promise<boolean> {
  const handle = await open(path, 'r');
  try {
    const head = Buffer.alloc(512);
    const { bytesRead } = await handle.read(head, 0, 512, 0);
    if (bytesRead >= 2 && head[0] === 0x1f && head[1] === 0x8b) return true;
    return bytesRead >= 262 && head.subarray(257, 262).toString('latin1') === 'ustar';
  } finally {
    await handle.close();
  }
}

/**
 * Docker's COPY/ADD into a root filesystem: a directory source copies its contents, a file goes to
 * `dest` or, when `dest` ends with "/" or is a directory, into it. Every write goes through paths
 * resolved inside `root`, and files are created fresh (O_EXCL, never through a symlink).
 */
export async function copyInto(root: string, dest: string, sources: Source[], options: CopyOptions): Promise<void> {
  const destIsDirName = dest.endsWith('/') || dest.endsWith('/.');
  for (const source of sources) {
    const st = await lstat(source.host);
    if (st.isDirectory()) {
      const target = await mkdirInScope(root, dest, options.owner);
      await copyChildren(source.host, target, options);
      continue;
    }
    if (options.extractArchives && st.isFile() && (await isLocalArchive(source.host))) {
      const target = await mkdirInScope(root, dest, options.owner);
      await applyLayer(target, createReadStream(source.host), { whiteouts: 'delete' });
      continue;
    }
    let targetPath = dest;
    if (destIsDirName || (await isDirectoryInScope(root, dest))) targetPath = posix.join(dest, basename(source.name));
    const parent = await mkdirInScope(root, posix.dirname(targetPath), options.owner);
    await copyEntry(source.host, join(parent, posix.basename(targetPath)), options);
  }
}

async function isDirectoryInScope(root: string, path: string): Promise<boolean> {
  try {
    return (await lstat(await resolveInScope(root, path))).isDirectory();
  } catch {
    return false;
  }
}

async function copyChildren(fromDir: string, toDir: string, options: CopyOptions): Promise<void> {
  for (const name of await readdir(fromDir)) await copyEntry(join(fromDir, name), join(toDir, name), options);
}

async function copyEntry(from: string, to: string, options: CopyOptions): Promise<void> {
  const st = await lstat(from);
  let existing;
  try {
    existing = await lstat(to);
  } catch {
    existing = undefined;
  }
  if (existing && !(existing.isDirectory() && st.isDirectory())) await rm(to, { recursive: true, force: true });
  if (st.isDirectory()) {
    if (!existing?.isDirectory()) await mkdir(to, { mode: 0o700 });
    await copyChildren(from, to, options);
  } else if (st.isSymbolicLink()) {
    await symlink(await readlink(from), to);
  } else if (st.isFile()) {
    await copyFile(from, to, constants.COPYFILE_EXCL);
  } else {
    return; // sockets, devices and fifos in a build context are not copied
  }
  const owner = options.owner ?? { uid: st.uid, gid: st.gid };
  await lchown(to, owner.uid, owner.gid);
  if (!st.isSymbolicLink()) {
    await chmod(to, st.mode & 0o7777);
    await utimes(to, st.atime, st.mtime);
  } else await lutimes(to, st.atime, st.mtime);
}

/**
 * `--chown=user[:group]` against the destination's /etc/passwd and /etc/group (numbers pass as
 * they are; a user without a group takes the user's primary group).
 */
export async function resolveChown(root: string, spec: string): Promise<Owner> {
  const [user = '', group] = spec.split(':');
  const passwd = await readDatabase(root, '/etc/passwd');
  const groups = await readDatabase(root, '/etc/group');
  let uid: number;
  let primaryGid: number | undefined;
  if (/^\d+$/.test(user)) {
    uid = Number(user);
    const entry = passwd.find((e) => e[2] === user);
    primaryGid = entry ? Number(entry[3]) : undefined;
  } else {
    const entry = passwd.find((e) => e[0] === user);
    if (!entry) throw invalid(`unable to convert uid/gid chown string to host mapping: can't find uid for user ${user}: no such user: ${user}`);
    uid = Number(entry[2]);
    primaryGid = Number(entry[3]);
  }
  let gid: number;
  if (group === undefined) gid = primaryGid ?? uid;
  else if (/^\d+$/.test(group)) gid = Number(group);
  else {
    const entry = groups.find((e) => e[0] === group);
    if (!entry) throw invalid(`unable to convert uid/gid chown string to host mapping: can't find gid for group ${group}: no such group: ${group}`);
    gid = Number(entry[2]);
  }
  return { uid, gid };
}

async function readDatabase(root: string, path: string): Promise<string[][]> {
  try {
    const text = await readFile(await resolveInScope(root, path), 'utf8');
    return text.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.split(':'));
  } catch {
    return [];
  }
}
