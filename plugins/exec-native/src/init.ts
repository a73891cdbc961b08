/**
 * The container init: a short-lived Node process the daemon spawns as PID 1 of a new PID namespace
 * (or into a running container's PID namespace for exec). On its main thread and synchronously it
 * builds the container's world and execve()s the user's program. Only the main thread moves into
 * the new namespaces, so nothing asynchronous may run here. Keep imports minimal: start-up time is
 * the container's start-up time.
 */
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readSync, statSync, symlinkSync, writeFileSync, writeSync } from 'node:fs';
import {
  CLONE,
  MNT,
  MS,
  PR,
  S_IF,
  capset,
  dropBoundingSet,
  dup2,
  execve,
  lastCapability,
  makedev,
  mknod,
  mount,
  openPty,
  parseMountOptions,
  pivotRoot,
  resolveInRoot,
  prctl,
  setCloseOnExec,
  setInterfaceUp,
  setControllingTerminal,
  setWindowSize,
  setdomainname,
  setgroups,
  sethostname,
  setns,
  setresgid,
  setresuid,
  setsid,
  umount,
  unshare,
} from '@tsengine/linux';
import type { CreateInit, InitReport, InitSpec, JoinInit } from './protocol.js';
import { REPORT_FD, SPEC_FD } from './protocol.js';

const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** A failure with Docker's exit code: 127 not found, 126 not executable, 125 anything else. */
class InitError extends Error {
  constructor(
    readonly exitCode: 125 | 126 | 127,
    message: string,
  ) {
    super(message);
  }
}

function report(message: InitReport): void {
  writeSync(REPORT_FD, `${JSON.stringify(message)}\n`);
}

let specBuffer = '';
/** Reads one line from the daemon (blocking). */
function readLine(): string {
  const chunk = Buffer.alloc(65536);
  for (;;) {
    const nl = specBuffer.indexOf('\n');
    if (nl >= 0) {
      const line = specBuffer.slice(0, nl);
      specBuffer = specBuffer.slice(nl + 1);
      return line;
    }
    const n = readSync(SPEC_FD, chunk, 0, chunk.length, null);
    if (n === 0) throw new InitError(125, 'daemon closed the init pipe');
    specBuffer += chunk.toString('utf8', 0, n);
  }
}

function main(): void {
  setCloseOnExec(REPORT_FD, true);
  setCloseOnExec(SPEC_FD, true);
  process.umask(0);
  let spec: InitSpec;
  try {
    spec = JSON.parse(readLine()) as InitSpec;
  } catch (err) {
    fail(err);
  }
  try {
    if (spec.mode === 'create' && spec.nullStdin) reopenNullStdin();
    if (spec.mode === 'create') createContainer(spec);
    else joinContainer(spec);
    startProgram(spec);
  } catch (err) {
    fail(err);
  }
}

function fail(err: unknown): never {
  const exitCode = err instanceof InitError ? err.exitCode : 125;
  const message = err instanceof Error ? err.message : String(err);
  try {
    report({ type: 'error', exitCode, message });
  } catch {
    // The daemon is gone; the exit code still tells.
  }
  process.exit(exitCode);
}

// ---------------------------------------------------------------------------------------------
// Creating the container's namespaces and filesystem

/** The host's /dev/null, opened before the mount namespace changes; read-only, like Node's 'ignore'. */
function reopenNullStdin(): void {
  const fd = openSync('/dev/null', 'r');
  dup2(fd, 0);
  closeSync(fd);
}

function createContainer(spec: CreateInit): void {
  let flags = CLONE.NEWNS | CLONE.NEWUTS | CLONE.NEWIPC | CLONE.NEWCGROUP;
  if (spec.network.mode === 'none') flags |= CLONE.NEWNET;
  if (spec.network.mode === 'netns') {
    const fd = openSync(spec.network.path, 'r');
    try {
      setns(fd, CLONE.NEWNET);
    } finally {
      closeSync(fd);
    }
  }
  unshare(flags);
  if (spec.network.mode === 'none') setInterfaceUp('lo');
  mount(null, '/', null, MS.REC | MS.PRIVATE);
  const root = spec.rootfs;
  mount(root, root, null, MS.BIND | MS.REC);

  mountProc(root);
  mountSys(root, spec.privileged);
  mountDev(root, spec.shmSize);
  for (const m of spec.mounts) mountUser(root, m);
  if (!spec.privileged) {
    for (const p of spec.maskedPaths) maskPath(root, p);
    for (const p of spec.readonlyPaths) readonlyPath(root, p);
  }

  process.chdir(root);
  pivotRoot('.', '.');
  // The old root sits under the new one; detach it without propagating the unmount to the host.
  mount(null, '.', null, MS.REC | MS.SLAVE);
  umount('.', MNT.DETACH);
  process.chdir('/');

  if (spec.process.terminal) setUpTerminal(spec, true);
  if (spec.readonlyRootfs) mount(null, '/', null, MS.BIND | MS.REMOUNT | MS.RDONLY | MS.REC);
  sethostname(spec.hostname);
  if (spec.domainname) setdomainname(spec.domainname);
}

function mountProc(root: string): void {
  const target = resolveInRoot(root, '/proc');
  mkdirSync(target, { recursive: true });
  mount('proc', target, 'proc', MS.NOSUID | MS.NODEV | MS.NOEXEC);
}

function mountSys(root: string, privileged: boolean): void {
  const target = resolveInRoot(root, '/sys');
  mkdirSync(target, { recursive: true });
  const flags = MS.NOSUID | MS.NODEV | MS.NOEXEC | (privileged ? 0 : MS.RDONLY);
  try {
    mount('sysfs', target, 'sysfs', flags);
  } catch {
    // sysfs refuses a mount from a network namespace we do not own: show the host's, read-only.
    mount('/sys', target, null, MS.BIND | MS.REC);
    if (!privileged) mount(null, target, null, MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC);
  }
}

const DEVICES: Array<[string, number, number]> = [
  ['null', 1, 3],
  ['zero', 1, 5],
  ['full', 1, 7],
  ['random', 1, 8],
  ['urandom', 1, 9],
  ['tty', 5, 0],
];

function mountDev(root: string, shmSize: number): void {
  const dev = resolveInRoot(root, '/dev');
  mkdirSync(dev, { recursive: true });
  mount('tmpfs', dev, 'tmpfs', MS.NOSUID | MS.STRICTATIME, 'mode=755,size=65536k');
  for (const [name, major, minor] of DEVICES) {
    const path = `${dev}/${name}`;
    try {
      mknod(path, S_IF.CHR | 0o666, makedev(major, minor));
    } catch {
      writeFileSync(path, '');
      mount(`/dev/${name}`, path, null, MS.BIND);
    }
  }
  mkdirSync(`${dev}/pts`);
  mount('devpts', `${dev}/pts`, 'devpts', MS.NOSUID | MS.NOEXEC, 'newinstance,ptmxmode=0666,mode=0620,gid=5');
  symlinkSync('pts/ptmx', `${dev}/ptmx`);
  mkdirSync(`${dev}/shm`);
  mount('shm', `${dev}/shm`, 'tmpfs', MS.NOSUID | MS.NODEV | MS.NOEXEC, `mode=1777,size=${shmSize}`);
  mkdirSync(`${dev}/mqueue`);
  mount('mqueue', `${dev}/mqueue`, 'mqueue', MS.NOSUID | MS.NODEV | MS.NOEXEC);
  symlinkSync('/proc/self/fd', `${dev}/fd`);
  symlinkSync('/proc/self/fd/0', `${dev}/stdin`);
  symlinkSync('/proc/self/fd/1', `${dev}/stdout`);
  symlinkSync('/proc/self/fd/2', `${dev}/stderr`);
  symlinkSync('/proc/kcore', `${dev}/core`);
}

const PROPAGATION: Record<string, number> = {
  rprivate: MS.REC | MS.PRIVATE,
  private: MS.PRIVATE,
  rslave: MS.REC | MS.SLAVE,
  slave: MS.SLAVE,
  rshared: MS.REC | MS.SHARED,
  shared: MS.SHARED,
};

function mountUser(root: string, m: MountSpecLike): void {
  const target = resolveInRoot(root, m.destination);
  const { flags, data } = parseMountOptions(m.options ?? [], m.readonly ? MS.RDONLY : 0);
  if (m.type === 'tmpfs') {
    mkdirSync(target, { recursive: true });
    mount('tmpfs', target, 'tmpfs', flags, data || null);
    return;
  }
  const sourceIsDir = statSync(m.source).isDirectory();
  if (sourceIsDir) mkdirSync(target, { recursive: true });
  else if (!existsSync(target)) {
    mkdirSync(resolveInRoot(root, parentOf(m.destination)), { recursive: true });
    writeFileSync(target, '');
  }
  mount(m.source, target, null, MS.BIND | (m.recursive === false ? 0 : MS.REC));
  if (flags) mount(null, target, null, MS.BIND | MS.REMOUNT | flags);
  mount(null, target, null, PROPAGATION[m.propagation ?? 'rprivate'] ?? MS.REC | MS.PRIVATE);
}

type MountSpecLike = CreateInit['mounts'][number];

function maskPath(root: string, path: string): void {
  const target = resolveInRoot(root, path);
  let isDir: boolean;
  try {
    isDir = statSync(target).isDirectory();
  } catch {
    return;
  }
  if (isDir) mount('tmpfs', target, 'tmpfs', MS.RDONLY, null);
  else mount(`${root}/dev/null`, target, null, MS.BIND);
}

function readonlyPath(root: string, path: string): void {
  const target = resolveInRoot(root, path);
  if (!existsSync(target)) return;
  mount(target, target, null, MS.BIND | MS.REC);
  mount(null, target, null, MS.BIND | MS.REMOUNT | MS.RDONLY | MS.NOSUID | MS.NODEV | MS.NOEXEC);
}

function parentOf(path: string): string {
  const i = path.replace(/\/+$/, '').lastIndexOf('/');
  return i <= 0 ? '/' : path.slice(0, i);
}


// ---------------------------------------------------------------------------------------------
// Joining a running container (exec)

function joinContainer(spec: JoinInit): void {
  // Open every namespace first: once in the container's mount namespace, /proc/<pid> is out of reach.
  const kinds: Array<[string, number]> = [
    ['ipc', CLONE.NEWIPC],
    ['uts', CLONE.NEWUTS],
    ['net', CLONE.NEWNET],
    ['cgroup', CLONE.NEWCGROUP],
    ['mnt', CLONE.NEWNS],
  ];
  const fds = kinds.map(([name, type]) => [openSync(`/proc/${spec.pid}/ns/${name}`, 'r'), type] as const);
  unshare(CLONE.FS);
  for (const [fd, type] of fds) {
    setns(fd, type);
    closeSync(fd);
  }
  process.chdir('/');
  if (spec.process.terminal) setUpTerminal(spec, false);
}

// ---------------------------------------------------------------------------------------------
// Terminal: a pty from the container's own devpts, so the program sees /dev/pts/0 etc.

function setUpTerminal(spec: InitSpec, bindConsole: boolean): void {
  const { master, slavePath } = openPty();
  if (spec.process.consoleSize) setWindowSize(master, spec.process.consoleSize.rows, spec.process.consoleSize.cols);
  const slave = openSync(slavePath, 'r+');
  if (bindConsole) {
    writeFileSync('/dev/console', '');
    mount(slavePath, '/dev/console', null, MS.BIND);
  }
  report({ type: 'pty', fd: master });
  if (readLine() !== 'ack') throw new InitError(125, 'daemon did not take the terminal');
  closeSync(master);
  setsid();
  for (const fd of [0, 1, 2]) dup2(slave, fd);
  closeSync(slave);
  setControllingTerminal(0);
}

// ---------------------------------------------------------------------------------------------
// User, capabilities and the program

interface ExecUser {
  uid: number;
  gid: number;
  groups: number[];
  home: string;
}

function readEntries(path: string): string[][] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch {
    return [];
  }
  return text
    .split('\n')
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.split(':'));
}

const isNumeric = (s: string) => /^\d+$/.test(s);

/** Resolves Docker's --user against the container's /etc/passwd and /etc/group, as runc does. */
function resolveUser(userArg: string, additional: string[]): ExecUser {
  const [userPart = '', groupPart] = userArg.split(':', 2);
  const passwd = readEntries('/etc/passwd');
  const group = readEntries('/etc/group');
  // No user given means uid 0, with or without an /etc/passwd that names it.
  const name = userPart || '0';
  let entry = userPart ? passwd.find((p) => p[0] === name) : undefined;
  if (!entry && isNumeric(name)) entry = passwd.find((p) => p[2] === name);
  if (!entry && !isNumeric(name)) throw new InitError(125, `unable to find user ${name}: no matching entries in passwd file`);
  const uid = entry ? Number(entry[2]) : Number(name);
  let gid = entry ? Number(entry[3]) : 0;
  const home = entry?.[5] || '/';
  const groups: number[] = [];
  if (groupPart !== undefined && groupPart !== '') {
    const g = group.find((e) => e[0] === groupPart) ?? (isNumeric(groupPart) ? group.find((e) => e[2] === groupPart) : undefined);
    if (!g && !isNumeric(groupPart)) throw new InitError(125, `unable to find group ${groupPart}: no matching entries in group file`);
    gid = g ? Number(g[2]) : Number(groupPart);
  } else if (entry) {
    for (const g of group) if ((g[3] ?? '').split(',').includes(entry[0]!)) groups.push(Number(g[2]));
  }
  for (const extra of additional) {
    const g = group.find((e) => e[0] === extra);
    if (!g && !isNumeric(extra)) throw new InitError(125, `Unable to find group ${extra}`);
    groups.push(g ? Number(g[2]) : Number(extra));
  }
  return { uid, gid, groups: [...new Set(groups)], home };
}

function startProgram(spec: InitSpec): void {
  const proc = spec.process;
  const user = resolveUser(proc.user, proc.additionalGroups ?? []);
  const env = [...proc.env];
  if (!env.some((e) => e.startsWith('HOME='))) env.push(`HOME=${user.home}`);

  if (!existsSync(proc.cwd)) mkdirSync(proc.cwd, { recursive: true, mode: 0o755 });
  try {
    process.chdir(proc.cwd);
  } catch (err) {
    throw new InitError(125, `chdir to cwd ("${proc.cwd}") set in config.json failed: ${describe(err)}`);
  }

  const caps = BigInt(spec.capabilities);
  // Keep the capabilities across the uid change, then set them exactly; the bounding set limits
  // what any later execve can gain.
  prctl(PR.SET_KEEPCAPS, 1);
  dropBoundingSet(caps, lastCapability((p) => readFileSync(p, 'utf8')));
  setgroups(user.groups);
  setresgid(user.gid);
  setresuid(user.uid);
  prctl(PR.SET_KEEPCAPS, 0);
  capset(caps, caps, 0n);
  if (spec.noNewPrivileges) prctl(PR.SET_NO_NEW_PRIVS, 1);

  const path = lookPath(proc.args[0] ?? '', env);
  for (const fd of [0, 1, 2]) setCloseOnExec(fd, false);
  process.umask(0o022);
  report({ type: 'ready' });
  if (readLine() !== 'go') throw new InitError(125, 'daemon did not release the container process');
  report({ type: 'exec' });
  try {
    execve(path, proc.args, env);
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === 'ENOENT') throw new InitError(127, `exec: "${proc.args[0]}": no such file or directory`);
    if (code === 'EACCES' || code === 'EPERM' || code === 'ENOEXEC') throw new InitError(126, `exec: "${proc.args[0]}": permission denied`);
    throw new InitError(125, `exec: "${proc.args[0]}": ${describe(err)}`);
  }
}

function describe(err: unknown): string {
  const code = (err as { code?: string }).code;
  const texts: Record<string, string> = { ENOENT: 'no such file or directory', EACCES: 'permission denied', ENOTDIR: 'not a directory' };
  return (code && texts[code]) ?? (err instanceof Error ? err.message : String(err));
}

/** Go's exec.LookPath, which runc uses: a name with a slash is used as is, else searched in PATH. */
function lookPath(file: string, env: string[]): string {
  if (!file) throw new InitError(127, 'exec: "": executable file not found in $PATH');
  if (file.includes('/')) {
    let st;
    try {
      st = statSync(file);
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new InitError(code === 'EACCES' ? 126 : 127, `exec: "${file}": stat ${file}: ${describe(err)}`);
    }
    if (st.isDirectory()) throw new InitError(126, `exec: "${file}": is a directory`);
    if ((st.mode & 0o111) === 0) throw new InitError(126, `exec: "${file}": permission denied`);
    return file;
  }
  const pathVar = [...env].reverse().find((e) => e.startsWith('PATH='))?.slice(5) ?? DEFAULT_PATH;
  for (const dir of pathVar.split(':')) {
    const candidate = `${dir || '.'}/${file}`;
    try {
      const st = statSync(candidate);
      if (!st.isDirectory() && (st.mode & 0o111) !== 0) return candidate;
    } catch {
      // keep looking
    }
  }
  throw new InitError(127, `exec: "${file}": executable file not found in $PATH`);
}

main();
