import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, readFile, readdir, readlink, realpath, stat } from 'node:fs/promises';
import { join, posix, relative, resolve, sep } from 'node:path';
import { Readable } from 'node:stream';
import type { Command } from 'commander';
import { type CliContext, CliError, type CommandModule, withHostOption } from '../context.js';
import { humanSize } from '../format/units.js';
import { checkArgs, clientFor, collect, imageGroup, queryString, readJsonMessages, stdinOf } from './image-support.js';

interface BuildOptions {
  tag?: string[];
  file?: string;
  quiet?: boolean;
  buildArg?: string[];
  label?: string[];
  target?: string;
  cache?: boolean;
  network?: string;
  rm?: boolean;
  forceRm?: boolean;
}

export const buildCommand: CommandModule = (program, context) => {
  configure(withHostOption(program.command('build')), context);
  configure(withHostOption(imageGroup(program).command('build')), context);
};

function configure(command: Command, context: CliContext): void {
  command
    .description('Build an image from a Dockerfile')
    .usage('[OPTIONS] PATH | -')
    .argument('[PATH...]', 'the build context: a directory, or - to read a tar (or a Dockerfile) from stdin')
    .option('-t, --tag <name>', 'name and optionally a tag in the "name:tag" format (repeatable)', collect)
    .option('-f, --file <path>', "name of the Dockerfile (default: 'PATH/Dockerfile')")
    .option('-q, --quiet', 'suppress the build output and print image ID on success')
    .option('--build-arg <arg>', 'set build-time variables (repeatable)', collect)
    .option('--label <label>', 'set metadata for an image (repeatable)', collect)
    .option('--target <stage>', 'set the target build stage to build')
    .option('--no-cache', 'do not use cache when building the image')
    .option('--network <mode>', 'networking mode for the RUN instructions during build (none, host)')
    .option('--rm', 'remove intermediate containers after a successful build (always)')
    .option('--force-rm', 'always remove intermediate containers (always)')
    .action(async (args: string[], options: BuildOptions, cmd: Command) => {
      checkArgs(cmd, args, 1, 1);
      const { body, dockerfile, counter } = await buildContext(context, args[0]!, options.file);
      const query = queryString([
        ['dockerfile', dockerfile],
        ...(options.tag ?? []).map((t): [string, string] => ['t', t]),
        ['buildargs', mapJson(options.buildArg, context.env, true)],
        ['labels', mapJson(options.label, context.env, false)],
        ['target', options.target],
        ['nocache', options.cache === false ? '1' : undefined],
        ['q', options.quiet ? '1' : undefined],
        ['networkmode', options.network],
        ['rm', '1'],
        ['forcerm', options.forceRm ? '1' : undefined],
        ['version', '1'],
      ]);
      const response = await clientFor(context, cmd).stream('POST', `/build${query}`, { body, headers: { 'Content-Type': 'application/x-tar' } });
      if (!options.quiet) context.stdout.write(`Sending build context to Docker daemon  ${humanSize(counter.bytes, 4)}\n`);
      const id = await displayBuildStream(response.body, context, options.quiet === true);
      if (options.quiet && id) context.stdout.write(`${id}\n`);
    });
}

/** --build-arg K=V / K (taken from the environment, or null when unset, as docker sends it); --label K=V. */
function mapJson(values: string[] | undefined, env: NodeJS.ProcessEnv, fromEnv: boolean): string | undefined {
  if (!values?.length) return undefined;
  const map: Record<string, string | null> = {};
  for (const value of values) {
    const eq = value.indexOf('=');
    if (eq >= 0) map[value.slice(0, eq)] = value.slice(eq + 1);
    else map[value] = fromEnv ? (env[value] ?? null) : '';
  }
  return JSON.stringify(map);
}

/** Prints the daemon's build stream like docker; a failed step ends the command with its code (errorDetail.code, else 1). */
async function displayBuildStream(body: Readable, context: CliContext, quiet: boolean): Promise<string | undefined> {
  let id: string | undefined;
  let held = '';
  await readJsonMessages(
    body,
    (message) => {
      const aux = message.aux as { ID?: string } | undefined;
      if (aux?.ID) id = aux.ID;
      else if (message.stream !== undefined) {
        if (quiet) held += message.stream;
        else context.stdout.write(message.stream);
      }
    },
    () => {
      if (quiet && held) context.stderr.write(held);
    },
  );
  return id;
}

interface ByteCounter {
  bytes: number;
}

/**
 * The context tar for PATH (or stdin), with the Dockerfile given by -f added under a generated
 * name when it lies outside the context (as docker does). Ownership is 0:0 in the tar, as docker
 * sends it; the daemon applies .dockerignore.
 */
async function buildContext(context: CliContext, path: string, file: string | undefined): Promise<{ body: Readable; dockerfile: string | undefined; counter: ByteCounter }> {
  const counter: ByteCounter = { bytes: 0 };
  if (path === '-') {
    if (file === '-') throw new CliError('invalid argument: can\'t use stdin for both build context and dockerfile');
    const data = await readAll(stdinOf(context));
    const looksLikeArchive = (data[0] === 0x1f && data[1] === 0x8b) || data.subarray(257, 262).toString('latin1') === 'ustar';
    if (looksLikeArchive) return { body: counted(Readable.from([data]), counter), dockerfile: file, counter };
    // A Dockerfile on stdin: the context is empty.
    return { body: counted(Readable.from(tarEntries([{ name: 'Dockerfile', data }])), counter), dockerfile: 'Dockerfile', counter };
  }
  const root = await stat(path).catch(() => undefined);
  if (!root?.isDirectory()) throw new CliError(`unable to prepare context: path "${path}" not found`);
  const contextDir = await realpath(path);
  let dockerfile: string | undefined;
  const extra: TarInput[] = [];
  if (file !== undefined) {
    const data = file === '-' ? await readAll(stdinOf(context)) : undefined;
    const full = file === '-' ? undefined : await realpath(resolve(file)).catch(() => undefined);
    if (file !== '-' && !full) throw new CliError(`unable to prepare context: the Dockerfile (${file}) cannot be found`);
    const inside = full !== undefined && (full + sep).startsWith(contextDir + sep);
    if (inside) dockerfile = relative(contextDir, full).split(sep).join('/');
    else {
      dockerfile = `.dockerfile.${randomBytes(10).toString('hex')}`;
      extra.push({ name: dockerfile, data: data ?? (await readFile(full!)) });
    }
  }
  const ignore = new IgnorePatterns(await readFile(join(contextDir, '.dockerignore'), 'utf8').catch(() => ''));
  // The Dockerfile and .dockerignore always go: the daemon reads them (and drops them itself when they are listed).
  const keep = new Set(['.dockerignore', dockerfile ?? 'Dockerfile', ...(dockerfile ? [] : ['dockerfile'])]);
  return { body: counted(Readable.from(tarDirectory(contextDir, extra, (rel) => !keep.has(rel) && ignore.ignores(rel), ignore.hasExceptions)), counter), dockerfile, counter };
}

/** .dockerignore as the docker CLI applies it before sending: Go filepath.Match patterns, `**`, `!` exceptions, last match wins. */
class IgnorePatterns {
  private readonly patterns: Array<{ exclusion: boolean; regexp: RegExp }> = [];

  constructor(text: string) {
    for (const raw of text.split(/\r?\n/)) {
      let line = raw.trim();
      if (line === '' || line.startsWith('#')) continue;
      const exclusion = line.startsWith('!');
      if (exclusion) line = line.slice(1).trim();
      const cleaned = posix.normalize(line).replace(/^\/+/, '').replace(/\/+$/, '') || '.';
      this.patterns.push({ exclusion, regexp: patternRegExp(cleaned) });
    }
  }

  get hasExceptions(): boolean {
    return this.patterns.some((p) => p.exclusion);
  }

  ignores(path: string): boolean {
    const parts = path.split('/');
    const candidates = parts.map((_, i) => parts.slice(0, i + 1).join('/'));
    let ignored = false;
    for (const p of this.patterns) if (candidates.some((c) => p.regexp.test(c))) ignored = !p.exclusion;
    return ignored;
  }
}

function patternRegExp(pattern: string): RegExp {
  let out = '^';
  for (let i = 0; i < pattern.length; i++) {
    const ch = pattern[i]!;
    if (ch === '*' && pattern[i + 1] === '*') {
      i++;
      if (pattern[i + 1] === '/') {
        i++;
        out += '(?:.*/)?';
      } else out += '.*';
    } else if (ch === '*') out += '[^/]*';
    else if (ch === '?') out += '[^/]';
    else if (ch === '[' && pattern.indexOf(']', i + 1) > i) {
      const end = pattern.indexOf(']', i + 1);
      const cls = pattern.slice(i + 1, end).replace(/\\/g, '\\\\');
      out += `[${cls.startsWith('^') || cls.startsWith('!') ? '^' + cls.slice(1) : cls}]`;
      i = end;
    } else if (ch === '\\' && i + 1 < pattern.length) out += pattern[++i]!.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
    else out += ch.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
  }
  return new RegExp(out + '$');
}

function counted(source: Readable, counter: ByteCounter): Readable {
  source.on('data', (chunk: Buffer) => (counter.bytes += chunk.length));
  return source;
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

// ---- a small streaming tar writer (ustar + PAX for long names) ----

interface TarInput {
  name: string;
  data: Buffer;
}

async function* tarDirectory(dir: string, extra: TarInput[], ignored: (rel: string) => boolean, descendIgnored: boolean): AsyncGenerator<Buffer> {
  // A Dockerfile from outside the context is listed in .dockerignore, so that COPY . never copies it (docker does the same).
  const ignoreExtra = extra.map((e) => e.name).join('\n');
  if (ignoreExtra) {
    const own = await readFile(join(dir, '.dockerignore')).catch(() => Buffer.alloc(0));
    extra = [...extra, { name: '.dockerignore', data: Buffer.concat([own, Buffer.from(`\n${ignoreExtra}\n`)]) }];
  }
  const walk = async function* (abs: string, rel: string): AsyncGenerator<Buffer> {
    for (const name of (await readdir(abs)).sort()) {
      const path = join(abs, name);
      const entry = rel ? `${rel}/${name}` : name;
      if (ignoreExtra && entry === '.dockerignore') continue;
      const st = await lstat(path);
      const mode = st.mode & 0o7777;
      const mtime = Math.floor(st.mtimeMs / 1000);
      const skip = ignored(entry);
      if (st.isDirectory()) {
        // An ignored folder is entered only when an exception might bring something in it back.
        if (skip && !descendIgnored) continue;
        if (!skip) yield header({ name: `${entry}/`, type: '5', mode, size: 0, mtime });
        yield* walk(path, entry);
      } else if (skip) {
        continue;
      } else if (st.isSymbolicLink()) {
        yield header({ name: entry, type: '2', mode, size: 0, mtime, linkname: await readlink(path) });
      } else if (st.isFile()) {
        yield header({ name: entry, type: '0', mode, size: st.size, mtime });
        let written = 0;
        for await (const chunk of createReadStream(path)) {
          written += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
        if (written !== st.size) throw new CliError(`${path} changed size while the build context was being sent`);
        yield padding(st.size);
      }
    }
  };
  yield* walk(dir, '');
  yield* tarEntries(extra, false);
  yield Buffer.alloc(1024);
}

function* tarEntries(entries: TarInput[], end = true): Generator<Buffer> {
  const mtime = Math.floor(Date.now() / 1000);
  for (const entry of entries) {
    yield header({ name: entry.name, type: '0', mode: 0o644, size: entry.data.length, mtime });
    yield entry.data;
    yield padding(entry.data.length);
  }
  if (end) yield Buffer.alloc(1024);
}

function padding(size: number): Buffer {
  return Buffer.alloc((512 - (size % 512)) % 512);
}

function header(h: { name: string; type: string; mode: number; size: number; mtime: number; linkname?: string }): Buffer {
  const pax: string[] = [];
  if (Buffer.byteLength(h.name) > 100) pax.push(paxRecord('path', h.name));
  if (h.linkname && Buffer.byteLength(h.linkname) > 100) pax.push(paxRecord('linkpath', h.linkname));
  const main = ustar({ ...h, name: truncate(h.name, 100), linkname: truncate(h.linkname ?? '', 100) });
  if (!pax.length) return main;
  const body = Buffer.from(pax.join(''));
  return Buffer.concat([ustar({ name: 'PaxHeader', type: 'x', mode: 0o644, size: body.length, mtime: h.mtime, linkname: '' }), body, padding(body.length), main]);
}

function paxRecord(key: string, value: string): string {
  const text = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(text) + 1;
  while (String(length).length + Buffer.byteLength(text) !== length) length = String(length).length + Buffer.byteLength(text);
  return `${length}${text}`;
}

function truncate(value: string, bytes: number): string {
  const buf = Buffer.from(value);
  return buf.length <= bytes ? value : buf.subarray(0, bytes).toString('latin1');
}

function ustar(h: { name: string; type: string; mode: number; size: number; mtime: number; linkname: string }): Buffer {
  const block = Buffer.alloc(512);
  const octal = (value: number, offset: number, length: number) => block.write(value.toString(8).padStart(length - 1, '0') + '\0', offset, length, 'latin1');
  block.write(h.name, 0, 100, 'utf8');
  octal(h.mode, 100, 8);
  octal(0, 108, 8);
  octal(0, 116, 8);
  octal(h.size, 124, 12);
  octal(h.mtime, 136, 12);
  block.fill(' ', 148, 156);
  block.write(h.type, 156, 1, 'latin1');
  block.write(h.linkname, 157, 100, 'utf8');
  block.write('ustar\0', 257, 6, 'latin1');
  block.write('00', 263, 2, 'latin1');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8, 'latin1');
  return block;
}
