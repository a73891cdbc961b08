import { closeSync, openSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { check, libc, SyscallError } from './libc.js';
import { CLONE, setns } from './namespaces.js';

/*
 * rtnetlink (NETLINK_ROUTE) requests for the few link, address and route changes a bridge network
 * needs, so the daemon does not fork `ip` for each container. Message layouts are those of
 * linux/netlink.h, linux/rtnetlink.h, linux/if_link.h, linux/if_addr.h and linux/veth.h.
 */

const socketFn = libc.func('int socket(int domain, int type, int protocol)') as (d: number, t: number, p: number) => number;
const closeFn = libc.func('int close(int fd)') as (fd: number) => number;
const sendFn = libc.func('long send(int fd, void *buf, size_t len, int flags)') as SendFn;
const recvFn = libc.func('long recv(int fd, void *buf, size_t len, int flags)') as RecvFn;
const setsockoptFn = libc.func('int setsockopt(int fd, int level, int name, void *value, uint32_t len)') as (fd: number, level: number, name: number, value: Buffer, len: number) => number;

type AsyncCallback = (err: unknown, result: number | bigint) => void;
interface SendFn {
  (fd: number, buf: Buffer, len: number, flags: number): number | bigint;
  async(fd: number, buf: Buffer, len: number, flags: number, done: AsyncCallback): void;
}
interface RecvFn {
  (fd: number, buf: Buffer, len: number, flags: number): number | bigint;
  async(fd: number, buf: Buffer, len: number, flags: number, done: AsyncCallback): void;
}

const AF_UNSPEC = 0;
const AF_INET = 2;
const AF_INET6 = 10;
const AF_NETLINK = 16;
const SOCK_RAW = 3;
const SOCK_CLOEXEC = 0o2000000;
const NETLINK_ROUTE = 0;
const SOL_NETLINK = 270;
const NETLINK_CAP_ACK = 10;
const NETLINK_EXT_ACK = 11;
const MSG_TRUNC = 0x20;

const NLMSG_HDRLEN = 16;
const NLMSG_ERROR = 2;
const NLMSG_DONE = 3;
const NLM_F_REQUEST = 0x1;
const NLM_F_ACK = 0x4;
const NLM_F_DUMP = 0x300;
const NLM_F_REPLACE = 0x100;
const NLM_F_EXCL = 0x200;
const NLM_F_CREATE = 0x400;
/** On an NLMSG_ERROR: extended-ACK attributes follow the echoed header. */
const NLM_F_ACK_TLVS = 0x200;
const NLMSGERR_ATTR_MSG = 1;

const RTM = { NEWLINK: 16, DELLINK: 17, GETLINK: 18, NEWADDR: 20, NEWROUTE: 24 } as const;
const RTM_NAMES: Record<number, string> = Object.fromEntries(Object.entries(RTM).map(([name, type]) => [type, `RTM_${name}`]));

const IFINFOMSG_LEN = 16;
const IFADDRMSG_LEN = 8;
const RTMSG_LEN = 12;
const IFLA = { ADDRESS: 1, IFNAME: 3, MTU: 4, MASTER: 10, LINKINFO: 18, NET_NS_FD: 28 } as const;
const IFLA_INFO_KIND = 1;
const IFLA_INFO_DATA = 2;
const VETH_INFO_PEER = 1;
const IFA_ADDRESS = 1;
const IFA_LOCAL = 2;
const RTA_OIF = 4;
const RTA_GATEWAY = 5;
const RT_TABLE_MAIN = 254;
/** What `ip route` marks its routes with (it is not a routing daemon's). */
const RTPROT_BOOT = 3;
const RT_SCOPE_UNIVERSE = 0;
const RTN_UNICAST = 1;
const IFF_UP = 0x1;
const IFNAMSIZ = 16;
/** Big enough for one dump batch: the kernel fills at most 32 KiB per skb for a larger buffer. */
const RECEIVE_BUFFER = 64 * 1024;

function align4(n: number): number {
  return (n + 3) & ~3;
}

/** One route attribute (struct rtattr / nlattr); `value` may itself be a list of attributes. */
interface Attribute {
  type: number;
  value: Buffer | Attribute[];
}

function encodeAttributes(attributes: Attribute[]): Buffer {
  const parts: Buffer[] = [];
  for (const { type, value } of attributes) {
    const payload = Buffer.isBuffer(value) ? value : encodeAttributes(value);
    const header = Buffer.alloc(4);
    header.writeUInt16LE(4 + payload.length, 0);
    header.writeUInt16LE(type, 2);
    // rta_len counts the payload unpadded; the next attribute starts at the 4-byte boundary.
    parts.push(header, payload, Buffer.alloc(align4(payload.length) - payload.length));
  }
  return Buffer.concat(parts);
}

/** Attributes of a message body by type (the last one wins, as the kernel's parser does). */
function decodeAttributes(buf: Buffer): Map<number, Buffer> {
  const found = new Map<number, Buffer>();
  let offset = 0;
  while (offset + 4 <= buf.length) {
    const length = buf.readUInt16LE(offset);
    if (length < 4 || offset + length > buf.length) break;
    // Masks NLA_F_NESTED and NLA_F_NET_BYTEORDER.
    found.set(buf.readUInt16LE(offset + 2) & 0x3fff, buf.subarray(offset + 4, offset + length));
    offset += align4(length);
  }
  return found;
}

function u32(value: number): Buffer {
  const buf = Buffer.alloc(4);
  buf.writeUInt32LE(value);
  return buf;
}

/** A NUL-terminated interface name, refused here when the kernel would refuse it with EINVAL. */
function ifname(name: string): Buffer {
  if (name === '' || Buffer.byteLength(name) >= IFNAMSIZ) throw new Error(`invalid interface name: ${JSON.stringify(name)} (1 to ${IFNAMSIZ - 1} bytes)`);
  return Buffer.from(`${name}\0`);
}

function macAddress(mac: string): Buffer {
  const bytes = mac.split(':');
  if (bytes.length !== 6 || !bytes.every((b) => /^[0-9a-fA-F]{2}$/.test(b))) throw new Error(`invalid MAC address: ${JSON.stringify(mac)}`);
  return Buffer.from(bytes.map((b) => parseInt(b, 16)));
}

/** Family and network-order bytes of an IPv4 or IPv6 address. */
function ipAddress(address: string): { family: number; bytes: Buffer } {
  if (isIPv4(address)) return { family: AF_INET, bytes: Buffer.from(address.split('.').map(Number)) };
  if (isIPv6(address)) return { family: AF_INET6, bytes: ipv6Bytes(address) };
  throw new Error(`invalid IP address: ${JSON.stringify(address)}`);
}

function ipv6Bytes(address: string): Buffer {
  let text = address;
  const dotted = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (dotted) {
    const [a, b, c, d] = dotted[1]!.split('.').map(Number) as [number, number, number, number];
    text = text.slice(0, -dotted[1]!.length) + `${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, tail] = text.split('::') as [string, string | undefined];
  const headGroups = head ? head.split(':') : [];
  const tailGroups = tail ? tail.split(':') : [];
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  const bytes = Buffer.alloc(16);
  groups.forEach((group, i) => bytes.writeUInt16BE(parseInt(group, 16), i * 2));
  return bytes;
}

function ifinfomsg(index: number, up?: boolean): Buffer {
  const buf = Buffer.alloc(IFINFOMSG_LEN);
  buf.writeUInt8(AF_UNSPEC, 0);
  buf.writeInt32LE(index, 4);
  if (up !== undefined) {
    buf.writeUInt32LE(up ? IFF_UP : 0, 8);
    buf.writeUInt32LE(IFF_UP, 12);
  }
  return buf;
}

/** The peer end of a veth pair, born in another namespace when `netnsFd` is given. */
export interface VethPeer {
  name: string;
  mtu?: number;
  macAddress?: string;
  /** An open fd of the namespace (e.g. its bind-mounted file) the peer is created in. */
  netnsFd?: number;
  up?: boolean;
}

export interface VethSpec {
  name: string;
  mtu?: number;
  /** Bridge (by index) the host end is enslaved to at creation. */
  master?: number;
  up?: boolean;
  peer: VethPeer;
}

/** A failed rtnetlink request: errno from the kernel's ACK, plus its extended-ACK text if any. */
export class NetlinkError extends SyscallError {
  constructor(
    request: string,
    errno: number,
    detail: string,
    readonly kernelMessage?: string,
  ) {
    super(request, errno, detail);
    this.name = 'NetlinkError';
    if (kernelMessage) this.message += `: ${kernelMessage}`;
  }
}

/**
 * One NETLINK_ROUTE socket. The socket acts on the network namespace it was created in, whatever
 * thread later uses it. Requests are answered one at a time: do not issue one while an async
 * request of the same socket is in flight (it would read the other's reply).
 */
export class RouteNetlink {
  private sequence = 0;
  private busy = false;
  private readonly receiveBuffer = Buffer.alloc(RECEIVE_BUFFER);

  private constructor(private fd: number) {}

  /** A socket in the calling thread's network namespace. */
  static open(): RouteNetlink {
    const fd = check(socketFn(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE), 'socket', 'AF_NETLINK NETLINK_ROUTE');
    // Best effort: a kernel without them still answers, only with less detail.
    const on = u32(1);
    setsockoptFn(fd, SOL_NETLINK, NETLINK_CAP_ACK, on, 4);
    setsockoptFn(fd, SOL_NETLINK, NETLINK_EXT_ACK, on, 4);
    return new RouteNetlink(fd);
  }

  /**
   * A socket inside the namespace bind-mounted on `netnsPath`. Only the main thread moves there,
   * for the one socket() call, and comes straight back.
   */
  static openInNamespace(netnsPath: string): RouteNetlink {
    const target = openSync(netnsPath, 'r');
    try {
      const home = openSync('/proc/thread-self/ns/net', 'r');
      try {
        setns(target, CLONE.NEWNET);
        try {
          return RouteNetlink.open();
        } finally {
          setns(home, CLONE.NEWNET);
        }
      } finally {
        closeSync(home);
      }
    } finally {
      closeSync(target);
    }
  }

  close(): void {
    if (this.fd < 0) return;
    closeFn(this.fd);
    this.fd = -1;
  }

  /** The index of a link by name, in this socket's namespace (if_nametoindex would use the thread's). */
  linkIndex(name: string): number {
    const [reply] = this.request(RTM.GETLINK, 0, `link ${name}`, ifinfomsg(0), [{ type: IFLA.IFNAME, value: ifname(name) }], true);
    if (!reply) throw new Error(`RTM_GETLINK link ${name}: no reply`);
    return reply.readInt32LE(4);
  }

  /** `ip link add NAME type bridge`; EEXIST when it exists. */
  addBridge(name: string): void {
    this.request(RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, `bridge ${name}`, ifinfomsg(0), [
      { type: IFLA.IFNAME, value: ifname(name) },
      { type: IFLA.LINKINFO, value: [{ type: IFLA_INFO_KIND, value: Buffer.from('bridge') }] },
    ]);
  }

  /** A veth pair in one request: the host end with master and state, the peer wherever it belongs. */
  addVeth(spec: VethSpec): void {
    const peer = spec.peer;
    const peerAttributes: Attribute[] = [{ type: IFLA.IFNAME, value: ifname(peer.name) }];
    if (peer.mtu !== undefined) peerAttributes.push({ type: IFLA.MTU, value: u32(peer.mtu) });
    if (peer.macAddress !== undefined) peerAttributes.push({ type: IFLA.ADDRESS, value: macAddress(peer.macAddress) });
    if (peer.netnsFd !== undefined) peerAttributes.push({ type: IFLA.NET_NS_FD, value: u32(peer.netnsFd) });
    // VETH_INFO_PEER carries a whole ifinfomsg before the peer's own attributes.
    const peerInfo = Buffer.concat([ifinfomsg(0, peer.up), encodeAttributes(peerAttributes)]);
    const attributes: Attribute[] = [{ type: IFLA.IFNAME, value: ifname(spec.name) }];
    if (spec.mtu !== undefined) attributes.push({ type: IFLA.MTU, value: u32(spec.mtu) });
    if (spec.master !== undefined) attributes.push({ type: IFLA.MASTER, value: u32(spec.master) });
    attributes.push({
      type: IFLA.LINKINFO,
      value: [
        { type: IFLA_INFO_KIND, value: Buffer.from('veth') },
        { type: IFLA_INFO_DATA, value: [{ type: VETH_INFO_PEER, value: peerInfo }] },
      ],
    });
    this.request(RTM.NEWLINK, NLM_F_CREATE | NLM_F_EXCL, `veth ${spec.name}`, ifinfomsg(0, spec.up), attributes);
  }

  /** `ip link set NAME [mtu N] [master M] [up|down]` in one request. */
  setLink(name: string, change: { mtu?: number; master?: number; up?: boolean }): void {
    const attributes: Attribute[] = [{ type: IFLA.IFNAME, value: ifname(name) }];
    if (change.mtu !== undefined) attributes.push({ type: IFLA.MTU, value: u32(change.mtu) });
    if (change.master !== undefined) attributes.push({ type: IFLA.MASTER, value: u32(change.master) });
    this.request(RTM.NEWLINK, 0, `link ${name}`, ifinfomsg(0, change.up), attributes);
  }

  /** `ip link del NAME`; ENODEV when there is no such link. */
  deleteLink(name: string): void {
    this.request(RTM.DELLINK, 0, `link ${name}`, ifinfomsg(0), [{ type: IFLA.IFNAME, value: ifname(name) }]);
  }

  /**
   * deleteLink with the syscalls on a libuv worker thread: the kernel waits for an RCU grace period
   * (synchronize_net) while it deletes a veth, which the event loop should not sit through.
   */
  async deleteLinkAsync(name: string): Promise<void> {
    const message = this.message(RTM.DELLINK, 0, ifinfomsg(0), [{ type: IFLA.IFNAME, value: ifname(name) }]);
    this.enter();
    try {
      const sent = await callAsync(sendFn, this.fd, message.buffer, message.buffer.length, 0);
      // koffi does not bring a worker thread's errno back, so there is no code to report.
      if (sent < 0) throw new Error(`send RTM_DELLINK link ${name}: failed`);
      for (;;) {
        const length = await callAsync(recvFn, this.fd, this.receiveBuffer, this.receiveBuffer.length, MSG_TRUNC);
        if (length < 0) throw new Error(`recv RTM_DELLINK link ${name}: failed`);
        if (this.handleReplies(length, message.sequence, `link ${name}`, RTM.DELLINK, []) === 'done') return;
      }
    } finally {
      this.busy = false;
    }
  }

  /** Names of the links enslaved to the link `masterIndex` (`ip link show master BRIDGE`). */
  linksWithMaster(masterIndex: number): string[] {
    const replies = this.request(RTM.GETLINK, NLM_F_DUMP, `master ${masterIndex}`, ifinfomsg(0), [{ type: IFLA.MASTER, value: u32(masterIndex) }], true);
    const names: string[] = [];
    for (const reply of replies) {
      const attributes = decodeAttributes(reply.subarray(IFINFOMSG_LEN));
      // Kernels without master filtering for link dumps (before 4.4) send every link.
      if (attributes.get(IFLA.MASTER)?.readUInt32LE(0) !== masterIndex) continue;
      const name = attributes.get(IFLA.IFNAME);
      if (name) names.push(name.toString('utf8').replace(/\0.*$/s, ''));
    }
    return names;
  }

  /** `ip addr add|replace ADDRESS/PREFIX dev` the link `index`. */
  addAddress(index: number, address: string, prefixLength: number, options: { replace?: boolean } = {}): void {
    const { family, bytes } = ipAddress(address);
    const header = Buffer.alloc(IFADDRMSG_LEN);
    header.writeUInt8(family, 0);
    header.writeUInt8(prefixLength, 1);
    header.writeUInt32LE(index, 4);
    const flags = NLM_F_CREATE | (options.replace ? NLM_F_REPLACE : NLM_F_EXCL);
    this.request(RTM.NEWADDR, flags, `${address}/${prefixLength} dev ${index}`, header, [
      { type: IFA_LOCAL, value: bytes },
      { type: IFA_ADDRESS, value: bytes },
    ]);
  }

  /** `ip route replace default via GATEWAY dev` the link `index`. */
  replaceDefaultRoute(index: number, gateway: string): void {
    const { family, bytes } = ipAddress(gateway);
    const header = Buffer.alloc(RTMSG_LEN);
    header.writeUInt8(family, 0);
    header.writeUInt8(RT_TABLE_MAIN, 4);
    header.writeUInt8(RTPROT_BOOT, 5);
    header.writeUInt8(RT_SCOPE_UNIVERSE, 6);
    header.writeUInt8(RTN_UNICAST, 7);
    this.request(RTM.NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, `default via ${gateway} dev ${index}`, header, [
      { type: RTA_GATEWAY, value: bytes },
      { type: RTA_OIF, value: u32(index) },
    ]);
  }

  private enter(): void {
    if (this.fd < 0) throw new Error('netlink socket is closed');
    if (this.busy) throw new Error('netlink socket is busy with another request');
    this.busy = true;
  }

  private message(type: number, flags: number, header: Buffer, attributes: Attribute[]): { buffer: Buffer; sequence: number } {
    const body = Buffer.concat([header, Buffer.alloc(align4(header.length) - header.length), encodeAttributes(attributes)]);
    const buffer = Buffer.alloc(NLMSG_HDRLEN + body.length);
    const sequence = (this.sequence = (this.sequence + 1) >>> 0);
    buffer.writeUInt32LE(buffer.length, 0);
    buffer.writeUInt16LE(type, 4);
    // Dumps end with NLMSG_DONE; everything else is acknowledged so that errors come back.
    buffer.writeUInt16LE(NLM_F_REQUEST | flags | ((flags & NLM_F_DUMP) === NLM_F_DUMP ? 0 : NLM_F_ACK), 6);
    buffer.writeUInt32LE(sequence, 8);
    body.copy(buffer, NLMSG_HDRLEN);
    return { buffer, sequence };
  }

  /**
   * Sends one request and reads until its ACK (or NLMSG_DONE for a dump); returns the bodies of the
   * data messages received before it when `wantReplies`.
   */
  private request(type: number, flags: number, detail: string, header: Buffer, attributes: Attribute[], wantReplies = false): Buffer[] {
    const message = this.message(type, flags, header, attributes);
    this.enter();
    try {
      const name = RTM_NAMES[type] ?? `RTM ${type}`;
      check(sendFn(this.fd, message.buffer, message.buffer.length, 0), 'send', `${name} ${detail}`);
      const replies: Buffer[] = [];
      for (;;) {
        const length = check(recvFn(this.fd, this.receiveBuffer, this.receiveBuffer.length, MSG_TRUNC), 'recv', `${name} ${detail}`);
        if (this.handleReplies(length, message.sequence, detail, type, wantReplies ? replies : null) === 'done') return replies;
      }
    } finally {
      this.busy = false;
    }
  }

  /** Walks one datagram of replies; 'done' once the ACK, error or NLMSG_DONE of `sequence` is in it. */
  private handleReplies(length: number, sequence: number, detail: string, type: number, replies: Buffer[] | null): 'done' | 'more' {
    const name = RTM_NAMES[type] ?? `RTM ${type}`;
    if (length > this.receiveBuffer.length) throw new Error(`recv ${name} ${detail}: reply of ${length} bytes truncated`);
    let offset = 0;
    let done = false;
    while (offset + NLMSG_HDRLEN <= length) {
      const messageLength = this.receiveBuffer.readUInt32LE(offset);
      if (messageLength < NLMSG_HDRLEN || offset + messageLength > length) throw new Error(`recv ${name} ${detail}: malformed reply`);
      const messageType = this.receiveBuffer.readUInt16LE(offset + 4);
      const messageFlags = this.receiveBuffer.readUInt16LE(offset + 6);
      const messageSequence = this.receiveBuffer.readUInt32LE(offset + 8);
      const body = this.receiveBuffer.subarray(offset + NLMSG_HDRLEN, offset + messageLength);
      offset += align4(messageLength);
      // A reply to an earlier request that was abandoned (an exception between send and recv).
      if (messageSequence !== sequence) continue;
      if (messageType === NLMSG_ERROR) {
        const error = -body.readInt32LE(0);
        if (error !== 0) throw new NetlinkError(name, error, detail, extendedAckMessage(body, messageFlags));
        done = true;
      } else if (messageType === NLMSG_DONE) {
        // A dump can fail part way: the DONE message then carries a negative errno.
        const error = body.length >= 4 ? -body.readInt32LE(0) : 0;
        if (error > 0) throw new NetlinkError(name, error, detail, extendedAckMessage(body, messageFlags));
        done = true;
      } else if (replies) {
        // Copied: the receive buffer is reused by the next recv.
        replies.push(Buffer.from(body));
      }
    }
    return done ? 'done' : 'more';
  }
}

/** NLMSGERR_ATTR_MSG of an extended ACK (NETLINK_CAP_ACK: the request's header only is echoed). */
function extendedAckMessage(body: Buffer, flags: number): string | undefined {
  if (!(flags & NLM_F_ACK_TLVS) || body.length < 4 + NLMSG_HDRLEN) return undefined;
  const text = decodeAttributes(body.subarray(4 + NLMSG_HDRLEN)).get(NLMSGERR_ATTR_MSG);
  return text ? text.toString('utf8').replace(/\0.*$/s, '') : undefined;
}

function callAsync(fn: SendFn | RecvFn, fd: number, buf: Buffer, len: number, flags: number): Promise<number> {
  return new Promise((resolve, reject) => {
    fn.async(fd, buf, len, flags, (err, result) => (err ? reject(err) : resolve(Number(result))));
  });
}
