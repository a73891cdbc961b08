import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { DriverEndpoint, DriverNetwork, Logger } from '@tsengine/core';
import { createNetworkNamespace, removeNetworkNamespace } from '@tsengine/linux';
import { BridgeDriver } from '../src/driver.js';
import { Firewall } from '../src/firewall.js';

const log = new Proxy({}, { get: (_t, key) => (key === 'child' ? () => log : () => undefined) }) as unknown as Logger;

function ourRules(bridge: string): string[] {
  return ['filter', 'nat'].flatMap((t) => execFileSync('iptables', ['-w', '-t', t, '-S'], { encoding: 'utf8' }).split('\n')).filter((l) => l.includes(bridge));
}

function linkExists(name: string): boolean {
  try {
    execFileSync('ip', ['link', 'show', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A 10.X.Y.0/24 that no host route covers. */
function freeSubnet(): string {
  const routes = execFileSync('ip', ['-4', 'route', 'show'], { encoding: 'utf8' });
  for (;;) {
    const prefix = `10.${150 + Math.floor(Math.random() * 100)}.${Math.floor(Math.random() * 250)}`;
    if (!routes.includes(`${prefix}.`) && !/^10\.0\.0\.0\/8/m.test(routes)) return prefix;
  }
}

describe('firewall chains', () => {
  it('are created idempotently and removed completely', async () => {
    const bridge = `tsetest${randomBytes(3).toString('hex')}`;
    const firewall = new Firewall();
    try {
      const rules = { bridge, subnet: '10.249.0.0/24', internal: false, icc: true, masquerade: true };
      await firewall.setUp(rules);
      const first = ourRules(bridge);
      await firewall.setUp(rules);
      assert.deepEqual(ourRules(bridge), first, 'a second set-up changes nothing');
      assert.ok(first.some((l) => l.includes(`-A FORWARD -o ${bridge} -j TSE-I-${bridge}`)), first.join('\n'));
      assert.ok(first.some((l) => l.includes(`-A FORWARD -i ${bridge} ! -o ${bridge} -j TSE-E-${bridge}`)), first.join('\n'));
      // Ingress jumps come before every egress jump, whatever the order of creation.
      const forward = execFileSync('iptables', ['-w', '-S', 'FORWARD'], { encoding: 'utf8' }).split('\n');
      const lastIngress = Math.max(...forward.map((l, i) => (l.includes('-j TSE-I-') ? i : -1)));
      const firstEgress = forward.findIndex((l) => l.includes('-j TSE-E-'));
      assert.ok(lastIngress < firstEgress, forward.join('\n'));
      assert.ok(first.some((l) => l.includes('MASQUERADE')), first.join('\n'));
      await firewall.link(bridge, '10.249.0.2', '10.249.0.3', [{ port: 80, protocol: 'tcp' }], true);
      await firewall.link(bridge, '10.249.0.2', '10.249.0.3', [{ port: 80, protocol: 'tcp' }], true);
      assert.equal(ourRules(bridge).filter((l) => l.includes('--dport 80')).length, 1);
      await firewall.link(bridge, '10.249.0.2', '10.249.0.3', [{ port: 80, protocol: 'tcp' }], false);
      assert.equal(ourRules(bridge).filter((l) => l.includes('10.249.0.3')).length, 0);
      // Internal: no masquerade, everything leaving the bridge dropped.
      await firewall.setUp({ ...rules, internal: true });
      const internal = ourRules(bridge);
      assert.ok(!internal.some((l) => l.includes('MASQUERADE')));
      assert.ok(internal.some((l) => l.includes(`-A TSE-E-${bridge} -j DROP`)), internal.join('\n'));
    } finally {
      await firewall.tearDown(bridge);
    }
    assert.deepEqual(ourRules(bridge), []);
  });
});

describe('bridge driver', () => {
  it('makes a bridge, plugs an endpoint into a namespace and removes everything again', async () => {
    const suffix = randomBytes(3).toString('hex');
    const prefix = freeSubnet();
    const network: DriverNetwork = {
      id: randomBytes(32).toString('hex'),
      name: 'unit',
      subnet: `${prefix}.0/24`,
      gateway: `${prefix}.1`,
      internal: false,
      options: { 'com.docker.network.bridge.name': `tseu${suffix}`, 'com.docker.network.driver.mtu': '1400' },
    };
    const endpoint: DriverEndpoint = {
      id: randomBytes(32).toString('hex'),
      containerId: 'c',
      containerName: 'unit',
      address: `${prefix}.2`,
      prefixLength: 24,
      macAddress: '02:42:0a:00:00:02',
      interfaceName: 'eth0',
      defaultRoute: true,
      ports: [],
    };
    const dir = await mkdtemp(join(tmpdir(), 'tsengine-bridge-'));
    const netns = join(dir, 'ns');
    const driver = new BridgeDriver(log);
    createNetworkNamespace(netns);
    try {
      await driver.up(network);
      await driver.up(network);
      assert.equal(linkExists(`tseu${suffix}`), true);
      await driver.join(network, endpoint, netns);
      const inside = execFileSync('nsenter', [`--net=${netns}`, 'ip', '-o', 'addr', 'show', 'eth0'], { encoding: 'utf8' });
      assert.match(inside, new RegExp(`inet ${prefix.replace(/\./g, '\\.')}\\.2/24`));
      assert.match(execFileSync('nsenter', [`--net=${netns}`, 'ip', 'link', 'show', 'eth0'], { encoding: 'utf8' }), /mtu 1400 .*\n.*02:42:0a:00:00:02/);
      assert.match(execFileSync('nsenter', [`--net=${netns}`, 'ip', 'route'], { encoding: 'utf8' }), new RegExp(`default via ${prefix.replace(/\./g, '\\.')}\\.1 dev eth0`));
      // The namespace reaches the gateway on the bridge.
      execFileSync('nsenter', [`--net=${netns}`, '/bin/busybox', 'ping', '-c', '1', '-W', '5', `${prefix}.1`], { stdio: 'ignore' });
      await driver.leave(network, endpoint, netns);
      assert.equal(linkExists(`tsv${endpoint.id.slice(0, 10)}`), false);
      assert.doesNotMatch(execFileSync('nsenter', [`--net=${netns}`, 'ip', 'link'], { encoding: 'utf8' }), /eth0/);
    } finally {
      await driver.down(network);
      removeNetworkNamespace(netns);
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(linkExists(`tseu${suffix}`), false);
    assert.deepEqual(ourRules(`tseu${suffix}`), []);
  });

  it('refuses unknown options and bad values', () => {
    const driver = new BridgeDriver(log);
    assert.throws(() => driver.validateOptions({ foo: 'bar' }), /unknown option for the bridge driver: foo/);
    assert.throws(() => driver.validateOptions({ 'com.docker.network.bridge.name': 'much-too-long-name' }), /invalid bridge name/);
    assert.throws(() => driver.validateOptions({ 'com.docker.network.driver.mtu': '10' }), /invalid MTU/);
    assert.throws(() => driver.validateOptions({ 'com.docker.network.bridge.name': 'lo' }), /bridge name lo is already in use on the host/);
    driver.validateOptions({ 'com.docker.network.bridge.enable_icc': 'false' });
  });
});
