import { check, libc } from './libc.js';

const socketFn = libc.func('int socket(int domain, int type, int protocol)') as (d: number, t: number, p: number) => number;
const closeFn = libc.func('int close(int fd)') as (fd: number) => number;
const ioctlFn = libc.func('ioctl', 'int', ['int', 'unsigned long', 'void *']) as (fd: number, request: number, arg: Buffer) => number;

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const SIOCGIFFLAGS = 0x8913;
const SIOCSIFFLAGS = 0x8914;
const IFF_UP = 0x1;
const IFNAMSIZ = 16;

/** Sets a network interface of the calling thread's network namespace up (like `ip link set NAME up`). */
export function setInterfaceUp(name: string): void {
  if (Buffer.byteLength(name) >= IFNAMSIZ) throw new Error(`interface name too long: ${name}`);
  const sock = check(socketFn(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0), 'socket');
  try {
    const ifreq = Buffer.alloc(40);
    ifreq.write(name, 0, 'utf8');
    check(ioctlFn(sock, SIOCGIFFLAGS, ifreq), 'ioctl', `SIOCGIFFLAGS ${name}`);
    ifreq.writeUInt16LE(ifreq.readUInt16LE(IFNAMSIZ) | IFF_UP, IFNAMSIZ);
    check(ioctlFn(sock, SIOCSIFFLAGS, ifreq), 'ioctl', `SIOCSIFFLAGS ${name}`);
  } finally {
    closeFn(sock);
  }
}
