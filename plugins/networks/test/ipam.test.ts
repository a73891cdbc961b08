import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type Logger, errorKind } from '@tsengine/core';
import { DEFAULT_ADDRESS_POOLS, DefaultIpam, contains, formatCidr, macForIp, overlaps, parseCidr, parseIp } from '../src/index.js';

/** A logger that drops everything. */
const log = new Proxy({}, { get: (_t, key) => (key === 'child' ? () => log : () => undefined) }) as unknown as Logger;
const dirs: string[] = [];

async function freshIpam(pools = DEFAULT_ADDRESS_POOLS): Promise<{ ipam: DefaultIpam; dir: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'tsengine-ipam-'));
  dirs.push(dir);
  const ipam = new DefaultIpam(dir, pools, log);
  await ipam.load();
  return { ipam, dir };
}

after(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

describe('cidr helpers', () => {
  it('parses, formats and compares subnets', () => {
    assert.equal(parseIp('10.1.2.3'), (10 * 2 ** 24 + 1 * 2 ** 16 + 2 * 256 + 3) >>> 0);
    assert.equal(parseIp('10.1.2'), undefined);
    assert.equal(parseIp('10.1.2.256'), undefined);
    assert.equal(formatCidr(parseCidr('10.1.2.0/24')), '10.1.2.0/24');
    assert.equal(formatCidr(parseCidr('10.1.2.1/24', true)), '10.1.2.0/24');
    assert.throws(() => parseCidr('10.1.2.1/24'), /host bits set/);
    assert.throws(() => parseCidr('nonsense'), /invalid CIDR address: nonsense/);
    assert.ok(contains(parseCidr('10.1.2.0/24'), parseIp('10.1.2.200')!));
    assert.ok(!contains(parseCidr('10.1.2.0/24'), parseIp('10.1.3.1')!));
    assert.ok(overlaps(parseCidr('10.0.0.0/8'), parseCidr('10.1.2.0/24')));
    assert.ok(!overlaps(parseCidr('10.1.2.0/24'), parseCidr('10.1.3.0/24')));
  });

  it("derives Docker's MAC from the address", () => {
    assert.equal(macForIp('172.17.0.2'), '02:42:ac:11:00:02');
  });
});

describe('default IPAM', () => {
  it('picks the first default pool that overlaps neither host routes nor other pools', async () => {
    const { ipam } = await freshIpam();
    const first = await ipam.requestPool({ avoid: ['172.17.0.0/16', '192.0.2.0/24'] });
    assert.deepEqual(first, { subnet: '172.18.0.0/16', gateway: '172.18.0.1' });
    const second = await ipam.requestPool({ avoid: ['172.17.0.0/16'] });
    assert.equal(second.subnet, '172.19.0.0/16');
  });

  it('refuses overlapping, malformed and too small subnets, and gateways outside', async () => {
    const { ipam } = await freshIpam();
    await ipam.requestPool({ subnet: '10.50.0.0/16' });
    await assert.rejects(ipam.requestPool({ subnet: '10.50.3.0/24' }), (err) => errorKind(err) === 'forbidden' && /overlaps/.test(String(err)));
    await assert.rejects(ipam.requestPool({ subnet: '10.51.0.0/31' }), /too small/);
    await assert.rejects(ipam.requestPool({ subnet: '10.52.0.0/24', gateway: '10.53.0.1' }), /no matching subnet for gateway 10.53.0.1/);
    await assert.rejects(ipam.requestPool({ subnet: 'x/24' }), /invalid CIDR address/);
  });

  it('gives the lowest free address, honours --ip, and keeps allocations across a reload', async () => {
    const { ipam, dir } = await freshIpam();
    const pool = await ipam.requestPool({ subnet: '10.60.0.0/29', gateway: '10.60.0.1' });
    assert.equal(await ipam.requestAddress(pool.subnet, 'a'), '10.60.0.2');
    assert.equal(await ipam.requestAddress(pool.subnet, 'a'), '10.60.0.2', 'an owner keeps its address');
    assert.equal(await ipam.requestAddress(pool.subnet, 'b', '10.60.0.5', true), '10.60.0.5');
    await assert.rejects(ipam.requestAddress(pool.subnet, 'c', '10.60.0.5', true), /Address already in use: 10.60.0.5/);
    await assert.rejects(ipam.requestAddress(pool.subnet, 'c', '10.61.0.5', true), /does not belong to any of this network's subnets/);
    await assert.rejects(ipam.requestAddress(pool.subnet, 'c', '10.60.0.7', true), /does not belong/, 'the broadcast address is not usable');

    const reloaded = new DefaultIpam(dir, DEFAULT_ADDRESS_POOLS, log);
    await reloaded.load();
    assert.equal(reloaded.addressOf(pool.subnet, 'a'), '10.60.0.2');
    assert.equal(await reloaded.requestAddress(pool.subnet, 'c'), '10.60.0.3');
    assert.equal(await reloaded.requestAddress(pool.subnet, 'd'), '10.60.0.4');
    assert.equal(await reloaded.requestAddress(pool.subnet, 'e'), '10.60.0.6');
    await assert.rejects(reloaded.requestAddress(pool.subnet, 'f'), /no available IPv4 addresses/);
    await reloaded.releaseAddress(pool.subnet, '10.60.0.3');
    assert.equal(await reloaded.requestAddress(pool.subnet, 'f'), '10.60.0.3');
    const onDisk = JSON.parse(await readFile(join(dir, 'ipam.json'), 'utf8'));
    assert.equal(onDisk.pools['10.60.0.0/29'].addresses['10.60.0.3'], 'f');
  });

  it('gives addresses from the ip range only', async () => {
    const { ipam } = await freshIpam();
    const pool = await ipam.requestPool({ subnet: '10.70.0.0/24', ipRange: '10.70.0.128/25' });
    assert.equal(await ipam.requestAddress(pool.subnet, 'a'), '10.70.0.128');
    await ipam.releasePool(pool.subnet);
    await assert.rejects(ipam.requestAddress(pool.subnet, 'a'), /no address pool/);
  });
});
