import { check, libc } from './libc.js';

const posixOpenptFn = libc.func('int posix_openpt(int flags)') as (flags: number) => number;
const grantptFn = libc.func('int grantpt(int fd)') as (fd: number) => number;
const unlockptFn = libc.func('int unlockpt(int fd)') as (fd: number) => number;
const ptsnameRFn = libc.func('int ptsname_r(int fd, char *buf, size_t len)') as (fd: number, buf: Buffer, len: number) => number;
const ioctlPtrFn = libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as (fd: number, request: number, arg: Buffer | null) => number;
const ioctlIntFn = libc.func('ioctl', 'int', ['int', 'unsigned long', 'long']) as (fd: number, request: number, arg: number) => number;

const O_RDWR = 0o2;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000;
const TIOCSWINSZ = 0x5414;
const TIOCGWINSZ = 0x5413;
const TIOCSCTTY = 0x540e;

/** Opens a pty master (close-on-exec) from the /dev/ptmx of the calling thread's mount namespace; returns it and its slave path. */
export function openPty(): { master: number; slavePath: string } {
  const master = check(posixOpenptFn(O_RDWR | O_NOCTTY | O_CLOEXEC), 'posix_openpt');
  check(grantptFn(master), 'grantpt');
  check(unlockptFn(master), 'unlockpt');
  const buf = Buffer.alloc(128);
  const rc = ptsnameRFn(master, buf, buf.length);
  if (rc !== 0) check(-1, 'ptsname_r');
  return { master, slavePath: buf.toString('utf8', 0, buf.indexOf(0)) };
}

export function setWindowSize(fd: number, rows: number, cols: number): void {
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(rows, 0);
  ws.writeUInt16LE(cols, 2);
  check(ioctlPtrFn(fd, TIOCSWINSZ, ws), 'ioctl', 'TIOCSWINSZ');
}

export function getWindowSize(fd: number): { rows: number; cols: number } {
  const ws = Buffer.alloc(8);
  check(ioctlPtrFn(fd, TIOCGWINSZ, ws), 'ioctl', 'TIOCGWINSZ');
  return { rows: ws.readUInt16LE(0), cols: ws.readUInt16LE(2) };
}

/** Makes `fd` (a terminal) the controlling terminal of the calling session leader. */
export function setControllingTerminal(fd: number): void {
  check(ioctlIntFn(fd, TIOCSCTTY, 0), 'ioctl', 'TIOCSCTTY');
}
