import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MS, mount, parseMountOptions } from '@tsengine/linux';
import { LocalVolumeDriver, validateLocalOptions } from '../src/index.js';
import { mountPointsUnder, silentLogger } from './helpers.js';

describe('local volume driver', () => {
  let root = '';

  before(async () => {
    root = await mkdtemp(join(tmpdir(), 'tsengine-volume-driver-'));
  });

  after(async () => {
    const left = await mountPointsUnder(root);
    await rm(root, { recursive: true, force: true });
    assert.deepEqual(left, [], 'nothing stays mounted');
  });

  it('creates volumes as <root>/<name>/_data and removes them', async () => {
    const driver = new LocalVolumeDriver(join(root, 'plain'), silentLogger);
    await driver.restore();
    await driver.create('one', {});
    assert.equal(driver.path('one'), join(root, 'plain', 'one', '_data'));
    assert.ok(existsSync(driver.path('one')));
    assert.equal(driver.options('one'), null);
    await writeFile(join(driver.path('one'), 'f'), '12345');
    assert.equal(await driver.size('one'), 5);
    assert.deepEqual(await driver.list(), ['one']);
    assert.equal(await driver.mount('one', 'c1'), driver.path('one'));
    await driver.unmount('one', 'c1');
    await driver.remove('one');
    assert.ok(!existsSync(join(root, 'plain', 'one')));
    assert.deepEqual(await driver.list(), []);
  });

  it("validates type/device/o like docker's local driver, leaving nothing behind", async () => {
    assert.throws(() => validateLocalOptions({ size: '1g' }), /invalid option: "size"/);
    assert.throws(() => validateLocalOptions({ type: 'tmpfs' }), /missing required option: "device"/);
    assert.throws(() => validateLocalOptions({ device: '/dev/sda1' }), /missing required option: "type"/);
    assert.throws(() => validateLocalOptions({ o: 'size=1m' }), /missing required option: "type"/);
    validateLocalOptions({ type: 'tmpfs', device: 'tmpfs', o: 'size=1m' });
    const driver = new LocalVolumeDriver(join(root, 'bad'), silentLogger);
    await driver.restore();
    await assert.rejects(driver.create('x1', { bogus: '1' }), /invalid option: "bogus"/);
    assert.ok(!existsSync(join(root, 'bad', 'x1')));
  });

  it('splits mount flags from filesystem data', () => {
    assert.deepEqual(parseMountOptions('size=1m,ro,uid=5,nosuid'.split(',')), { flags: MS.RDONLY | MS.NOSUID, data: 'size=1m,uid=5' });
    assert.deepEqual(parseMountOptions(['bind', 'rw']), { flags: MS.BIND, data: '' });
    assert.deepEqual(parseMountOptions([]), { flags: 0, data: '' });
  });

  it('mounts a tmpfs volume on first use, counts users and unmounts after the last', async () => {
    const driver = new LocalVolumeDriver(join(root, 'typed'), silentLogger);
    await driver.restore();
    await driver.create('tv', { type: 'tmpfs', device: 'tmpfs', o: 'size=1m,mode=0700' });
    assert.deepEqual(driver.options('tv'), { type: 'tmpfs', device: 'tmpfs', o: 'size=1m,mode=0700' });
    assert.equal(await driver.size('tv'), -1);
    const path = await driver.mount('tv', 'a');
    await driver.mount('tv', 'b');
    const info = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === path);
    assert.match(info ?? '', / - tmpfs tmpfs .*size=1024k/);
    await driver.unmount('tv', 'a');
    assert.deepEqual(await mountPointsUnder(path), [path], 'still mounted for b');
    await driver.unmount('tv', 'b');
    assert.deepEqual(await mountPointsUnder(path), []);
  });

  it('bind-mounts a device folder with o=bind, and removing never deletes through the mount', async () => {
    const source = join(root, 'bind-source');
    const driver = new LocalVolumeDriver(join(root, 'bound'), silentLogger);
    await driver.restore();
    await rm(source, { recursive: true, force: true });
    await mkdir(source);
    await writeFile(join(source, 'keep'), 'precious');
    await driver.create('bv', { type: 'none', device: source, o: 'bind' });
    const path = await driver.mount('bv', 'c');
    assert.equal(await readFile(join(path, 'keep'), 'utf8'), 'precious');
    await driver.remove('bv');
    assert.equal(await readFile(join(source, 'keep'), 'utf8'), 'precious', 'the bind source survives the removal');
    assert.deepEqual(await mountPointsUnder(join(root, 'bound')), []);
  });

  it('restores volumes and options after a restart, unmounting what a dead daemon left mounted', async () => {
    const dir = join(root, 'restart');
    const first = new LocalVolumeDriver(dir, silentLogger);
    await first.restore();
    await first.create('kept', {});
    await first.create('typed', { type: 'tmpfs', device: 'tmpfs' });
    // A crash: the tmpfs stays mounted and nobody unmounts it.
    mount('tmpfs', first.path('typed'), 'tmpfs', 0, 'size=1m');
    const second = new LocalVolumeDriver(dir, silentLogger);
    await second.restore();
    assert.deepEqual((await second.list()).sort(), ['kept', 'typed']);
    assert.deepEqual(second.options('typed'), { type: 'tmpfs', device: 'tmpfs' });
    assert.deepEqual(await mountPointsUnder(dir), []);
  });
});
