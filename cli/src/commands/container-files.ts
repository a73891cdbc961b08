import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, lstat, mkdir, readdir, readlink, rm, stat, symlink, utimes, lutimes, link } from 'node:fs/promises';
import { basename, dirname, join, posix, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { Command } from 'commander';
import { extract as tarExtract, pack as tarPack, type Header } from 'tar-stream';
import { type CliContext, CliError, type CommandModule } from '../context.js';
import { DaemonError, type DockerClient } from '../client/index.js';
import { checkArgs, clientFor, collect, copyTo, isTerminal } from './image-support.js';
import { both, containerPath, splitReference, stdinOf } from './container-support.js';

/** diff, export, commit and cp. */
export const containerFileCommands: CommandModule = (program, context) => {
  both(program, 'diff', (command) =>
    command
      .description("Inspect changes to files or directories on a container's filesystem")
      .usage('CONTAINER')
      .argument('[CONTAINER...]')
      .action(async (refs: string[], _options: unknown, cmd: Command) => {
        checkArgs(cmd, refs, 1, 1);
        const changes = await clientFor(context, cmd).request<Array<{ Path: string; Kind: number }> | null>('GET', `/containers/${containerPath(refs[0]!)}/changes`);
        const letter = ['C', 'A', 'D'];
        context.stdout.write((changes ?? []).map((c) => `${letter[c.Kind] ?? '?'} ${c.Path}\n`).join(''));
      }),
  );

  both(program, 'export', (command) =>
    command
      .description("Export a container's filesystem as a tar archive")
      .usage('[OPTIONS] CONTAINER')
      .argument('[CONTAINER...]')
      .option('-o, --output <string>', 'write to a file, instead of STDOUT')
      .action(async (refs: string[], options: { output?: string }, cmd: Command) => {
        checkArgs(cmd, refs, 1, 1);
        if (options.output === undefined && isTerminal(context.stdout)) throw new CliError('cowardly refusing to save to a terminal. Use the -o flag or redirect');
        if (options.output !== undefined) {
          const dir = dirname(resolve(options.output));
          await stat(dir).catch(() => {
            throw new CliError(`failed to export container: invalid output path: directory "${dir}" does not exist`);
          });
          if ((await stat(options.output).catch(() => undefined))?.isDirectory()) throw new CliError(`failed to export container: invalid output path: "${options.output}" is a directory`);
        }
        const response = await clientFor(context, cmd).stream('GET', `/containers/${containerPath(refs[0]!)}/export`);
        if (options.output === undefined) await copyTo(response.body, context.stdout);
        else await pipeline(response.body, createWriteStream(options.output, { mode: 0o644 }));
      }),
  );

  both(program, 'commit', (command) =>
    command
      .description("Create a new image from a container's changes")
      .usage('[OPTIONS] CONTAINER [REPOSITORY[:TAG]]')
      .argument('[ARGS...]')
      .option('-a, --author <string>', 'author (e.g., "John Hannibal Smith <hannibal@a-team.com>")')
      .option('-c, --change <list>', 'apply Dockerfile instruction to the created image', collect)
      .option('-m, --message <string>', 'commit message')
      .option('-p, --pause', 'pause container during commit (default true)', true)
      .option('--no-pause', 'do not pause the container during commit')
      .action(async (args: string[], options: { author?: string; change?: string[]; message?: string; pause: boolean }, cmd: Command) => {
        checkArgs(cmd, args, 1, 2);
        const [container, reference] = args as [string, string | undefined];
        let repo: string | undefined;
        let tag: string | undefined;
        if (reference) {
          const parsed = splitReference(reference);
          if (parsed.digest) throw new CliError(`refusing to create a tag with a digest reference`);
          repo = parsed.name;
          tag = parsed.tag;
        }
        const search = new URLSearchParams();
        search.set('container', container);
        if (repo) search.set('repo', repo);
        if (tag) search.set('tag', tag);
        search.set('comment', options.message ?? '');
        search.set('author', options.author ?? '');
        search.set('pause', options.pause ? '1' : '0');
        for (const change of options.change ?? []) search.append('changes', change);
        const result = await clientFor(context, cmd).request<{ Id: string }>('POST', `/commit?${search.toString()}`);
        context.stdout.write(`${result.Id}\n`);
      }),
  );

  both(program, 'cp', (command) =>
    command
      .description('Copy files/folders between a container and the local filesystem')
      .usage('[OPTIONS] CONTAINER:SRC_PATH DEST_PATH|-\n       tsengine cp [OPTIONS] SRC_PATH|- CONTAINER:DEST_PATH')
      .argument('[ARGS...]')
      .option('-a, --archive', 'archive mode (copy all uid/gid information)')
      .option('-L, --follow-link', 'always follow symbol link in SRC_PATH')
      .option('-q, --quiet', 'suppress progress output during copy')
      .action(async (args: string[], options: { archive?: boolean; followLink?: boolean }, cmd: Command) => {
        checkArgs(cmd, args, 2, 2);
        const source = splitCopyArg(args[0]!);
        const target = splitCopyArg(args[1]!);
        if (source.container && target.container) throw new CliError('copying between containers is not supported');
        if (!source.container && !target.container) throw new CliError('must specify at least one container source');
        const client = clientFor(context, cmd);
        if (source.container) await copyFromContainer(context, client, source.container, source.path, target.path, options.followLink === true);
        else await copyToContainer(context, client, source.path, target.container!, target.path, options);
      }),
  );
};

/** Docker's splitCpArg: an absolute or ./-relative path is local, else CONTAINER:PATH. */
function splitCopyArg(arg: string): { container?: string; path: string } {
  if (arg.startsWith('/')) return { path: arg };
  const colon = arg.indexOf(':');
  if (colon === -1 || arg.startsWith('.')) return { path: arg };
  return { container: arg.slice(0, colon), path: arg.slice(colon + 1) };
}

interface PathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  linkTarget: string;
}

const GO_DIR = 2 ** 31;
const GO_SYMLINK = 2 ** 27;

function isGoDir(mode: number): boolean {
  return Math.floor(mode / GO_DIR) % 2 === 1;
}

function isGoSymlink(mode: number): boolean {
  return Math.floor(mode / GO_SYMLINK) % 2 === 1;
}

function decodeStat(header: string | string[] | undefined): PathStat | undefined {
  if (typeof header !== 'string') return undefined;
  try {
    return JSON.parse(Buffer.from(header, 'base64').toString('utf8')) as PathStat;
  } catch {
    return undefined;
  }
}

async function statInContainer(client: DockerClient, container: string, path: string): Promise<PathStat | undefined> {
  const response = await client.stream('HEAD', `/containers/${containerPath(container)}/archive`, { query: { path } }).catch((err: unknown) => {
    if (err instanceof DaemonError && err.status === 404) {
      if (/No such container/i.test(err.message)) throw err;
      return undefined;
    }
    throw err;
  });
  if (!response) return undefined;
  response.body.resume();
  return decodeStat(response.headers['x-docker-container-path-stat']);
}

function endsWithDirMarker(path: string): boolean {
  return path.endsWith('/') || path.endsWith('/.') || path === '.';
}

async function copyFromContainer(context: CliContext, client: DockerClient, container: string, srcPath: string, dstPath: string, followLink: boolean): Promise<void> {
  let requested = srcPath;
  let rename: string | undefined;
  if (followLink) {
    const st = await statInContainer(client, container, srcPath);
    if (st && isGoSymlink(st.mode)) {
      requested = st.linkTarget;
      rename = posix.basename(srcPath);
    }
  }
  let response;
  try {
    response = await client.stream('GET', `/containers/${containerPath(container)}/archive`, { query: { path: requested } });
  } catch (err) {
    if (err instanceof DaemonError && err.status === 404 && !/No such container/i.test(err.message)) throw new CliError(`Error response from daemon: ${err.message}`);
    throw err;
  }
  if (dstPath === '-') {
    await copyTo(response.body, context.stdout);
    return;
  }
  const srcStat = decodeStat(response.headers['x-docker-container-path-stat']);
  const srcIsDir = srcStat ? isGoDir(srcStat.mode) : false;
  const existing = await stat(dstPath).catch(() => undefined);
  let dstDir: string;
  let mapName: ((first: string) => string | null) | undefined;
  if (existing?.isDirectory()) {
    dstDir = dstPath;
    if (srcIsDir && srcPath.endsWith('/.')) mapName = () => null;
    else if (rename) mapName = () => rename!;
  } else if (existing) {
    if (srcIsDir) throw new CliError(`cannot copy directory`);
    dstDir = dirname(dstPath);
    mapName = () => basename(dstPath);
  } else {
    if (dstPath.endsWith('/') || dstPath.endsWith(sep)) throw new CliError(`destination directory "${dstPath}" must exist`);
    const parent = dirname(dstPath);
    if (!(await stat(parent).catch(() => undefined))?.isDirectory()) throw new CliError(`lstat ${resolve(parent)}: no such file or directory`);
    dstDir = parent;
    mapName = () => basename(dstPath);
  }
  await extractLocal(response.body, resolve(dstDir), mapName);
}

/**
 * Extracts a tar from the daemon into a local directory like docker's Untar with NoLchown: names may
 * not climb out, nothing is written through a symlink, and the first path element can be renamed
 * (null: the element is dropped, copying a directory's contents).
 */
async function extractLocal(input: Readable, dest: string, mapName: ((first: string) => string | null) | undefined): Promise<void> {
  const extract = tarExtract();
  const feeding = pipeline(input, extract as unknown as NodeJS.WritableStream);
  feeding.catch(() => undefined);
  const dirTimes: Array<[string, Date]> = [];
  for await (const entry of extract) {
    try {
      const header: Header = entry.header;
      const parts = header.name.split('/').filter((p) => p !== '' && p !== '.');
      if (parts.some((p) => p === '..')) throw new CliError(`invalid tar entry from the daemon: ${header.name}`);
      if (mapName && parts.length) {
        const renamed = mapName(parts[0]!);
        if (renamed === null) parts.shift();
        else parts[0] = renamed;
      }
      if (parts.length === 0) continue;
      const path = join(dest, ...parts);
      for (let i = 1; i < parts.length; i++) {
        const parent = join(dest, ...parts.slice(0, i));
        const st = await lstat(parent).catch(() => undefined);
        if (!st) await mkdir(parent, { mode: 0o755 });
        else if (!st.isDirectory()) throw new CliError(`cannot extract ${header.name}: ${parent} is not a directory`);
      }
      const existing = await lstat(path).catch(() => undefined);
      if (existing && !(existing.isDirectory() && header.type === 'directory')) await rm(path, { recursive: true, force: true });
      const mtime = header.mtime ?? new Date();
      switch (header.type) {
        case 'directory':
          if (!existing?.isDirectory()) await mkdir(path, { mode: 0o755 });
          await chmod(path, (header.mode ?? 0o755) & 0o7777);
          dirTimes.push([path, mtime]);
          break;
        case 'file':
        case 'contiguous-file':
          await pipeline(entry, createWriteStream(path, { mode: 0o600 }));
          await chmod(path, (header.mode ?? 0o644) & 0o7777);
          await utimes(path, mtime, mtime);
          break;
        case 'symlink': {
          const target = header.linkname ?? '';
          if (!target.startsWith('/') && relative(dest, resolve(dirname(path), target)).startsWith('..')) throw new CliError(`invalid symlink "${path}" -> "${target}"`);
          await symlink(target, path);
          await lutimes(path, mtime, mtime).catch(() => undefined);
          break;
        }
        case 'link': {
          const linkParts = (header.linkname ?? '').split('/').filter((p) => p !== '' && p !== '.');
          if (mapName && linkParts.length) {
            const renamed = mapName(linkParts[0]!);
            if (renamed === null) linkParts.shift();
            else linkParts[0] = renamed;
          }
          if (linkParts.some((p) => p === '..')) throw new CliError(`invalid hardlink "${header.name}" -> "${header.linkname}"`);
          await link(join(dest, ...linkParts), path);
          break;
        }
        default:
          break; // devices and fifos are skipped: they cannot be made without privileges anyway
      }
    } finally {
      entry.resume();
    }
  }
  await feeding;
  for (const [path, mtime] of dirTimes.reverse()) await utimes(path, mtime, mtime).catch(() => undefined);
}

async function copyToContainer(context: CliContext, client: DockerClient, srcPath: string, container: string, dstPath: string, options: { archive?: boolean; followLink?: boolean }): Promise<void> {
  const query = { path: dstPath, noOverwriteDirNonDir: true, copyUIDGID: options.archive || undefined };
  const put = (path: string, body: Readable) =>
    client.request('PUT', `/containers/${containerPath(container)}/archive`, { query: { ...query, path }, body, headers: { 'Content-Type': 'application/x-tar' } }).catch((err: unknown) => {
      if (err instanceof DaemonError) throw new CliError(`Error response from daemon: ${err.message}`);
      throw err;
    });
  if (srcPath === '-') {
    await put(dstPath, stdinOf(context));
    return;
  }
  let dst = await statInContainer(client, container, dstPath);
  let dstResolved = dstPath;
  if (dst && isGoSymlink(dst.mode)) {
    dstResolved = dst.linkTarget;
    dst = await statInContainer(client, container, dstResolved);
  }
  const absolute = resolve(srcPath);
  const local = await (options.followLink ? stat(absolute) : lstat(absolute)).catch(() => {
    throw new CliError(`lstat ${absolute}: no such file or directory`);
  });
  const contentsOnly = local.isDirectory() && srcPath.endsWith('/.');
  let targetDir: string;
  let name: string | null = contentsOnly ? null : basename(absolute);
  if (dst && isGoDir(dst.mode)) targetDir = dstResolved;
  else if (dst) {
    if (local.isDirectory()) throw new CliError('cannot copy directory');
    targetDir = posix.dirname(dstResolved);
    name = posix.basename(dstResolved);
  } else {
    if (endsWithDirMarker(dstPath)) throw new CliError(`Error response from daemon: Could not find the file ${dstPath} in container ${container}`);
    targetDir = posix.dirname(posix.join('/', dstResolved));
    name = posix.basename(dstResolved);
  }
  await put(targetDir, packLocal(absolute, name, options.followLink === true));
}

/** A tar of a local file or directory, its top entry named `name` (null: the directory's contents only). */
function packLocal(source: string, name: string | null, followTop: boolean): Readable {
  const pack = tarPack();
  const add = (header: Partial<Header> & { name: string }, body?: Readable): Promise<void> =>
    new Promise((resolveEntry, reject) => {
      if (!body) {
        pack.entry(header, Buffer.alloc(0), (err) => (err ? reject(err) : resolveEntry()));
        return;
      }
      const sink = pack.entry(header, (err) => (err ? reject(err) : resolveEntry()));
      body.on('error', reject);
      body.on('data', (chunk: Buffer) => {
        if (!sink.write(chunk)) {
          body.pause();
          sink.once('drain', () => body.resume());
        }
      });
      body.on('end', () => sink.end(undefined as never));
    });
  const visit = async (path: string, entryName: string | null, follow: boolean): Promise<void> => {
    const st = follow ? await stat(path) : await lstat(path);
    const base = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: st.mtime };
    if (st.isDirectory()) {
      if (entryName !== null) await add({ ...base, name: `${entryName}/`, type: 'directory' });
      for (const child of (await readdir(path)).sort()) await visit(join(path, child), entryName === null ? child : `${entryName}/${child}`, false);
    } else if (st.isSymbolicLink()) {
      await add({ ...base, name: entryName!, type: 'symlink', linkname: await readlink(path) });
    } else if (st.isFile()) {
      await add({ ...base, name: entryName!, type: 'file', size: st.size }, createReadStream(path));
    }
  };
  visit(source, name, followTop).then(
    () => pack.finalize(),
    (err: unknown) => pack.destroy(err as Error),
  );
  return Readable.from(pack as AsyncIterable<Buffer>);
}
