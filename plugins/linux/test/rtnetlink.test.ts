import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, openSync, readlinkSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { NetlinkError, RouteNetlink, createNetworkNamespace, removeNetworkNamespace } from '../src/index.js';

// Every device of this file starts with the prefix, so a leftover is easy to spot and to sweep.
const prefix = `rtn${(process.pid % 0xffff).toString(16).padStart(4, '0')}`;
const bridge = `${prefix}br`;
const hostEnd = `${prefix}h`;
const peerEnd = `${prefix}p`;
const dir = mkdtempSync(join(tmpdir(), 'tsengine-rtnetlink-'));
const netns = join(dir, 'ns');

interface IpLink {
  ifname: string;
  mtu: number;
  flags: string[];
  master?: string;
  address?: string;
  linkinfo?: { info_kind?: string };
}
interface IpAddr {
  ifname: string;
  addr_info: Array<{ family: string; local: string; prefixlen: number }>;
}
interface IpRoute {
  dst: string;
  gateway?: string;
  dev: string;
}

/** `ip -j ARGS` on the host, or inside the test namespace. */
function ipJson<T>(args: string[], inside = false): T[] {
  const argv = inside ? ['--net=' + netns, 'ip', '-j', ...args] : ['-j', ...args];
  const out = execFileSync(inside ? 'nsenter' : 'ip', argv, { encoding: 'utf8' });
  return out.trim() === '' ? [] : (JSON.parse(out) as T[]);
}

function linkOf(name: string, inside = false): IpLink | undefined {
  return ipJson<IpLink>(['-d', 'link', 'show'], inside).find((l) => l.ifname === name);
}

/** Addresses of a link but the IPv6 link-local one the kernel adds by itself. */
function addressesOf(name: string, inside = false): string[] {
  const info = ipJson<IpAddr>(['addr', 'show'], inside).find((a) => a.ifname === name)?.addr_info ?? [];
  return info.filter((a) => !a.local.startsWith('fe80:')).map((a) => `${a.local}/${a.prefixlen}`);
}

function deleteQuietly(name: string): void {
  try {
    execFileSync('ip', ['link', 'del', name], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}

/** Listens on the namespace's address, prints its port, answers one connection with "pong". */
const SERVER = `const s = require('net').createServer((c) => { c.end('pong'); s.close(); });
s.listen(0, '10.213.7.2', () => process.stdout.write(String(s.address().port)));
setTimeout(() => process.exit(1), 30000).unref();`;

const isNetlinkError = (code: string, pattern: RegExp) => (err: unknown) => err instanceof NetlinkError && err.code === code && pattern.test(err.message);

describe('RouteNetlink', () => {
  let host: RouteNetlink;

  before(() => {
    createNetworkNamespace(netns);
    host = RouteNetlink.open();
  });

  after(() => {
    host?.close();
    for (const name of [hostEnd, peerEnd, bridge]) deleteQuietly(name);
    removeNetworkNamespace(netns);
    rmSync(dir, { recursive: true, force: true });
  });

  it('creates a bridge with MTU, address and state, and refuses a second one of the same name', () => {
    host.addBridge(bridge);
    host.setLink(bridge, { mtu: 1400 });
    const index = host.linkIndex(bridge);
    host.addAddress(index, '10.213.7.1', 24, { replace: true });
    host.addAddress(index, '10.213.7.1', 24, { replace: true });
    host.setLink(bridge, { up: true });

    const link = linkOf(bridge);
    assert.equal(link?.linkinfo?.info_kind, 'bridge');
    assert.equal(link?.mtu, 1400);
    assert.ok(link?.flags.includes('UP'), `flags ${link?.flags.join(',')}`);
    assert.deepEqual(addressesOf(bridge), ['10.213.7.1/24']);
    assert.throws(() => host.addBridge(bridge), isNetlinkError('EEXIST', new RegExp(`^RTM_NEWLINK bridge ${bridge}: EEXIST \\(File exists\\)`)));
    assert.throws(() => host.addAddress(index, '10.213.7.1', 24), isNetlinkError('EEXIST', /^RTM_NEWADDR 10\.213\.7\.1\/24/));
  });

  it('adds an IPv6 address in the kernel byte order', (t) => {
    if (!existsSync('/proc/sys/net/ipv6')) return t.skip('no IPv6 in this kernel');
    host.addAddress(host.linkIndex(bridge), 'fd00:213:7::1', 64);
    assert.ok(addressesOf(bridge).includes('fd00:213:7::1/64'), addressesOf(bridge).join(' '));
  });

  it('makes a veth pair whose peer is born inside a namespace with its name, MTU and MAC', () => {
    const fd = openSync(netns, 'r');
    try {
      host.addVeth({
        name: hostEnd,
        mtu: 1400,
        master: host.linkIndex(bridge),
        up: true,
        peer: { name: peerEnd, mtu: 1400, macAddress: '02:42:0a:d5:07:02', netnsFd: fd },
      });
    } finally {
      closeSync(fd);
    }
    const outside = linkOf(hostEnd);
    assert.equal(outside?.linkinfo?.info_kind, 'veth');
    assert.equal(outside?.master, bridge);
    assert.equal(outside?.mtu, 1400);
    assert.ok(outside?.flags.includes('UP'), `flags ${outside?.flags.join(',')}`);
    assert.equal(linkOf(peerEnd), undefined, 'the peer must not appear on the host');

    const inside = linkOf(peerEnd, true);
    assert.equal(inside?.mtu, 1400);
    assert.equal(inside?.address, '02:42:0a:d5:07:02');
    assert.deepEqual(host.linksWithMaster(host.linkIndex(bridge)), [hostEnd]);
  });

  it('configures the peer through a socket opened inside the namespace, leaving the thread at home', () => {
    const home = readlinkSync('/proc/thread-self/ns/net');
    const nl = RouteNetlink.openInNamespace(netns);
    try {
      assert.equal(readlinkSync('/proc/thread-self/ns/net'), home);
      const index = nl.linkIndex(peerEnd);
      nl.addAddress(index, '10.213.7.2', 24);
      nl.setLink(peerEnd, { up: true });
      nl.replaceDefaultRoute(index, '10.213.7.1');
      nl.replaceDefaultRoute(index, '10.213.7.1');
      assert.throws(() => nl.linkIndex(hostEnd), isNetlinkError('ENODEV', new RegExp(`RTM_GETLINK link ${hostEnd}: ENODEV`)));
    } finally {
      nl.close();
    }
    assert.deepEqual(addressesOf(peerEnd, true), ['10.213.7.2/24']);
    const routes = ipJson<IpRoute>(['route', 'show'], true);
    assert.deepEqual(
      routes.filter((r) => r.dst === 'default').map((r) => [r.gateway, r.dev]),
      [['10.213.7.1', peerEnd]],
    );
  });

  it('carries traffic from the bridge into the namespace over the pair', async () => {
    const server = spawn('nsenter', [`--net=${netns}`, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
    try {
      const [port] = (await once(server.stdout!, 'data')) as [Buffer];
      const socket = connect(Number(port.toString()), '10.213.7.2');
      const [reply] = (await once(socket, 'data')) as [Buffer];
      socket.destroy();
      assert.equal(reply.toString(), 'pong');
    } finally {
      server.kill();
    }
  });

  it('deletes a veth pair off the event loop, both ends, and reports a missing link as ENODEV', async () => {
    await host.deleteLinkAsync(hostEnd);
    assert.equal(linkOf(hostEnd), undefined);
    assert.equal(linkOf(peerEnd, true), undefined);
    assert.deepEqual(host.linksWithMaster(host.linkIndex(bridge)), []);
    await assert.rejects(host.deleteLinkAsync(hostEnd), isNetlinkError('ENODEV', new RegExp(`^RTM_DELLINK link ${hostEnd}: ENODEV`)));
    // The socket is usable again after an async request.
    assert.ok(host.linkIndex(bridge) > 0);
  });

  it('refuses a request while an async one is in flight on the same socket', async () => {
    execFileSync('ip', ['link', 'add', hostEnd, 'type', 'veth', 'peer', 'name', peerEnd]);
    const pending = host.deleteLinkAsync(hostEnd);
    assert.throws(() => host.linkIndex(bridge), /busy/);
    await pending;
    assert.equal(linkOf(hostEnd), undefined);
  });

  it('deletes a bridge synchronously and refuses bad input before sending', () => {
    host.deleteLink(bridge);
    assert.equal(linkOf(bridge), undefined);
    assert.throws(() => host.deleteLink(bridge), isNetlinkError('ENODEV', /No such device/));
    assert.throws(() => host.addBridge('a-name-that-is-too-long'), /invalid interface name/);
    assert.throws(() => host.addVeth({ name: hostEnd, peer: { name: peerEnd, macAddress: '02:42' } }), /invalid MAC address/);
    assert.throws(() => host.addAddress(1, '10.0.0.300', 24), /invalid IP address/);
    assert.equal(linkOf(hostEnd), undefined);
  });
});
