import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { chmod, chown, mkdir, mkdtemp, readFile, readlink, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { MountRequest, VolumeDriver } from '@tsengine/core';
import { resolveInRoot } from '@tsengine/linux';
import { LocalVolumeDriver, LocalVolumeService } from '../src/index.js';
import { mountPointsUnder, providersOf, silentLogger } from './helpers.js';

const ID_A = 'a'.repeat(64);
const ID_B = 'b'.repeat(64);

function request(containerId: string, hostConfig: MountRequest['hostConfig'], extra: Partial<MountRequest> = {}): MountRequest {
  return { containerId, hostConfig, volumesFrom: [], imageVolumes: {}, ...extra };
}

async function open(root: string): Promise<{ driver: LocalVolumeDriver; service: LocalVolumeService }> {
  const driver = new LocalVolumeDriver(root, silentLogger);
  await driver.restore();
  const providers = providersOf(driver);
  const service = new LocalVolumeService(root, () => providers, silentLogger);
  await service.restore(driver);
  return { driver, service };
}

describe('volume service', () => {
  let base = '';

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'tsengine-volume-service-'));
  });

  after(async () => {
    const left = await mountPointsUnder(base);
    await rm(base, { recursive: true, force: true });
    assert.deepEqual(left, []);
  });

  it('records mounts at prepare, refuses to remove a volume in use and forgets on rm', async () => {
    const root = join(base, 'inuse');
    const { service } = await open(root);
    const hostDir = join(base, 'made-by-v');
    const points = await service.prepare(request(ID_A, { Binds: ['data:/data:ro', `${hostDir}:/host`], Tmpfs: { '/run': 'size=1m' } }, { imageVolumes: { '/var/lib/x': {} } }));
    assert.ok(existsSync(hostDir), 'a missing -v source is created');
    assert.deepEqual(
      points.map((p) => [p.Type, p.Destination, p.RW]),
      [
        ['volume', '/data', false],
        ['bind', '/host', true],
        ['volume', '/var/lib/x', true],
      ],
    );
    const anonymous = points.find((p) => p.Destination === '/var/lib/x')!.Name!;
    assert.match(anonymous, /^[a-f0-9]{64}$/);
    assert.deepEqual(service.inspect(anonymous).Labels, { 'com.docker.volume.anonymous': '' });
    await assert.rejects(service.remove('data'), (err: Error) => {
      assert.equal(err.message, `remove data: volume is in use - [${ID_A}]`);
      assert.equal((err as { kind?: string }).kind, 'conflict');
      return true;
    });
    assert.deepEqual((await service.list({ dangling: ['false'] })).Volumes.map((v) => v.Name).sort(), [anonymous, 'data'].sort());
    assert.deepEqual((await service.prune({ all: ['true'] })).VolumesDeleted, []);

    // State survives a restart.
    const reopened = await open(root);
    assert.deepEqual(reopened.service.mountPoints(ID_A), points);
    await assert.rejects(reopened.service.remove('data'), /volume is in use/);

    await reopened.service.forget(ID_A, true);
    assert.deepEqual(reopened.service.mountPoints(ID_A), []);
    assert.throws(() => reopened.service.inspect(anonymous), /get [a-f0-9]{64}: no such volume/);
    await reopened.service.remove('data');
    assert.deepEqual((await reopened.service.list()).Volumes, []);
  });

  it('undoes anonymous volumes when a prepare fails, and rejects duplicates', async () => {
    const { service } = await open(join(base, 'fail'));
    await assert.rejects(service.prepare(request(ID_A, { Binds: ['v1:/x'], Mounts: [{ Type: 'tmpfs', Target: '/x' }] })), /Duplicate mount point: \/x/);
    await assert.rejects(
      service.prepare(request(ID_A, { Mounts: [{ Type: 'volume', Target: '/a' }, { Type: 'volume', Source: 'bad', Target: '/b', VolumeOptions: { DriverConfig: { Options: { nope: '1' } } } }] })),
      /create bad: invalid option: "nope"/,
    );
    assert.deepEqual((await service.list()).Volumes, [], 'the anonymous volume made before the failure is gone');
    await assert.rejects(service.prepare(request(ID_A, { Binds: ['x:/a'] })), /create x: volume name is too short/);
    await assert.rejects(service.prepare(request(ID_A, { Mounts: [{ Type: 'volume', Source: 'v', Target: '/a', VolumeOptions: { DriverConfig: { Name: 'nfs-plugin' } } }] })), /error looking up volume plugin nfs-plugin/);
  });

  it('copies volumes-from mounts, overridden by the container\'s own', async () => {
    const { service } = await open(join(base, 'from'));
    await service.prepare(request(ID_A, { Binds: ['shared:/s', '/tmp:/t'], Tmpfs: { '/run': '' } }));
    const points = await service.prepare(request(ID_B, { Binds: ['own:/t'] }, { volumesFrom: [`${ID_A}:ro`] }));
    assert.deepEqual(
      points.map((p) => [p.Destination, p.Name ?? p.Source, p.RW]),
      [
        ['/s', 'shared', false],
        ['/t', 'own', true],
      ],
    );
    await service.forget(ID_A, true);
    await assert.rejects(service.remove('shared'), new RegExp(`in use - \\[${ID_B}\\]`));
  });

  it('copies image content into an empty volume once, and never through links out of the rootfs', async () => {
    const root = join(base, 'copy');
    const rootfs = join(base, 'rootfs');
    const outside = join(base, 'outside');
    await mkdir(join(rootfs, 'app', 'sub'), { recursive: true });
    await mkdir(outside, { recursive: true });
    await writeFile(join(outside, 'secret'), 'host');
    await writeFile(join(rootfs, 'app', 'sub', 'f'), 'image');
    await chown(join(rootfs, 'app'), 1000, 1001);
    await chmod(join(rootfs, 'app'), 0o750);
    await symlink('/etc/passwd', join(rootfs, 'app', 'abs'));
    await symlink(outside, join(rootfs, 'escape'));
    await symlink('../../../../../../..' + outside, join(rootfs, 'climb'));

    assert.equal(resolveInRoot(rootfs, '/escape/x'), `${rootfs}${outside}/x`);
    assert.equal(resolveInRoot(rootfs, '/climb'), `${rootfs}${outside}`);
    assert.equal(resolveInRoot(rootfs, '/../../app/./sub'), `${rootfs}/app/sub`);

    const { service } = await open(root);
    await service.prepare(request(ID_A, { Binds: ['appdata:/app', 'esc:/escape', 'climb:/climb'] }));
    const specs = await service.mounts(ID_A, rootfs);
    assert.deepEqual(
      specs.map((s) => [s.type, s.destination, s.source]),
      [
        ['bind', '/app', join(root, 'appdata', '_data')],
        ['bind', '/escape', join(root, 'esc', '_data')],
        ['bind', '/climb', join(root, 'climb', '_data')],
      ],
    );
    const data = join(root, 'appdata', '_data');
    assert.equal(await readFile(join(data, 'sub', 'f'), 'utf8'), 'image');
    assert.equal(await readlink(join(data, 'abs')), '/etc/passwd');
    const st = await stat(data);
    assert.equal(st.uid, 1000);
    assert.equal(st.gid, 1001);
    assert.equal(st.mode & 0o777, 0o750);
    assert.ok(!existsSync(join(root, 'esc', '_data', 'secret')), 'the link to the host was not followed');
    assert.ok(!existsSync(join(root, 'climb', '_data', 'secret')));
    await service.release(ID_A);

    await rm(join(data, 'sub'), { recursive: true });
    await service.mounts(ID_A, rootfs);
    assert.ok(!existsSync(join(data, 'sub')), 'the copy happens once per container');
    await service.release(ID_A);
  });

  it('prunes only unused anonymous local volumes unless all=true, with label filters', async () => {
    const { service } = await open(join(base, 'prune'));
    const anonymous = (await service.create({})).Name;
    await service.create({ Name: 'named', Labels: { keep: 'no' } });
    await service.create({ Name: 'kept', Labels: { keep: 'yes' } });
    await assert.rejects(service.prune({ dangling: ['true'] }), /invalid filter 'dangling'/);
    assert.deepEqual((await service.prune()).VolumesDeleted, [anonymous]);
    assert.deepEqual((await service.prune({ all: ['true'], 'label!': ['keep=yes'] })).VolumesDeleted, ['named']);
    assert.deepEqual((await service.list()).Volumes.map((v) => v.Name), ['kept']);
    await assert.rejects(service.list({ bogus: ['1'] }), /invalid filter 'bogus'/);
    await assert.rejects(service.list({ dangling: ['maybe'] }), /invalid filter 'dangling=maybe'/);
    await assert.rejects(service.create({ Name: 'kept', Driver: 'other' }), /create kept: volume name must be unique/);
    await assert.rejects(service.create({ Name: 'fresh', Driver: 'other' }), /error looking up volume plugin other: plugin "other" not found/);
  });
});

describe('third-party volume drivers', () => {
  /** A driver as a plugin would provide it: folders under its own root, with a log of calls. */
  class FolderDriver implements VolumeDriver {
    readonly name = 'folders';
    readonly calls: string[] = [];
    private readonly names = new Set<string>();
    constructor(private readonly root: string) {}
    async create(name: string, options: Record<string, string>): Promise<void> {
      this.calls.push(`create ${name} ${JSON.stringify(options)}`);
      await mkdir(this.path(name), { recursive: true });
      this.names.add(name);
    }
    async remove(name: string): Promise<void> {
      this.calls.push(`remove ${name}`);
      await rm(this.path(name), { recursive: true, force: true });
      this.names.delete(name);
    }
    async list(): Promise<string[]> {
      return [...this.names];
    }
    path(name: string): string {
      return join(this.root, name);
    }
    options(): Record<string, string> | null {
      return null;
    }
    async mount(name: string, ref: string): Promise<string> {
      this.calls.push(`mount ${name} ${ref.slice(0, 4)}`);
      return this.path(name);
    }
    async unmount(name: string, ref: string): Promise<void> {
      this.calls.push(`unmount ${name} ${ref.slice(0, 4)}`);
    }
    async size(): Promise<number> {
      return -1;
    }
  }

  it('routes volumes to the driver named by --volume-driver, volume-driver= or Driver', async () => {
    const base = await mkdtemp(join(tmpdir(), 'tsengine-volume-drivers-'));
    try {
      const local = new LocalVolumeDriver(join(base, 'volumes'), silentLogger);
      await local.restore();
      const folders = new FolderDriver(join(base, 'folders'));
      const providers = providersOf(local, folders);
      const service = new LocalVolumeService(join(base, 'volumes'), () => providers, silentLogger);
      await service.restore(local);
      const created = await service.create({ Name: 'remote', Driver: 'folders', DriverOpts: { server: 'x' }, Labels: { a: 'b' } });
      assert.equal(created.Driver, 'folders');
      assert.equal(created.Mountpoint, join(base, 'folders', 'remote'));
      const points = await service.prepare(request(ID_A, { VolumeDriver: 'folders', Binds: ['remote:/r', 'other:/o'], Mounts: [{ Type: 'volume', Source: 'loc', Target: '/l', VolumeOptions: { DriverConfig: { Name: 'local' } } }] }));
      assert.deepEqual(
        points.map((p) => [p.Name, p.Driver]),
        [
          ['remote', 'folders'],
          ['other', 'folders'],
          ['loc', 'local'],
        ],
      );
      await service.mounts(ID_A, base);
      await service.release(ID_A);
      await service.forget(ID_A, true);
      assert.deepEqual((await service.prune({ all: ['true'] })).VolumesDeleted, ['loc'], 'prune only takes local volumes');
      await service.remove('remote');
      assert.deepEqual(folders.calls, ['create remote {"server":"x"}', 'create other {}', 'mount remote aaaa', 'mount other aaaa', 'unmount remote aaaa', 'unmount other aaaa', 'remove remote']);
      assert.deepEqual((await service.list({ driver: ['folders'] })).Volumes.map((v) => v.Name), ['other']);
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });
});
