import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { lstat, mkdtemp, readFile, readdir, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Daemon, docker, startDaemon, tsengine } from '../helpers/daemon.js';
import { busyboxRootfsTar, imageArchive, layerTar } from '../helpers/images.js';

const PLUGINS = ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', '@tsengine/exec-native', '@tsengine/volume-local', '@tsengine/containers'];
const MTIME = new Date('2020-01-01T00:00:00Z');

async function ok(daemon: Daemon, args: string[], input?: Buffer): Promise<string> {
  const r = await docker(daemon, args, input ? { input } : {});
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Mount points under `dir` in the test's (the host's) mount namespace. */
async function mountsUnder(dir: string): Promise<string[]> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  return lines.map((l) => l.split(' ')[4] ?? '').filter((point) => point === dir || point.startsWith(dir + '/'));
}

interface VolumeJson {
  CreatedAt: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string> | null;
  Scope: string;
}

interface MountJson {
  Type: string;
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

describe('volumes and mounts through the docker CLI', () => {
  let daemon: Daemon | undefined;
  let daemonDir = '';
  /** A host folder that a symlink in the test image points at; nothing may ever land in it. */
  let hostDir = '';

  before(async () => {
    hostDir = await mkdtemp(join(tmpdir(), 'tsengine-voltest-host-'));
    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' } });
    daemonDir = daemon.dir;
    await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
    // An image with content owned by uid 1000 under /srv/app, a VOLUME, and a symlink pointing at a host path.
    const dir = (name: string, mode: number, uid = 0) => ({ header: { name, type: 'directory' as const, mode, mtime: MTIME, uid, gid: uid } });
    const extra = await layerTar({
      raw: [
        dir('srv/', 0o755),
        dir('srv/app/', 0o750, 1000),
        { header: { name: 'srv/app/hello.txt', type: 'file', mode: 0o640, mtime: MTIME, uid: 1000, gid: 1000, size: 11 }, body: Buffer.from('from image\n') },
        { header: { name: 'srv/app/link', type: 'symlink', mode: 0o777, mtime: MTIME, uid: 0, gid: 0, linkname: '/etc/passwd' } },
        dir('srv/anon/', 0o755),
        { header: { name: 'srv/anon/seed', type: 'file', mode: 0o644, mtime: MTIME, uid: 0, gid: 0, size: 5 }, body: Buffer.from('seed\n') },
        { header: { name: 'evil', type: 'symlink', mode: 0o777, mtime: MTIME, uid: 0, gid: 0, linkname: hostDir } },
      ],
    });
    const { archive } = await imageArchive([await busyboxRootfsTar(), extra], {
      repoTags: ['voltest:latest'],
      config: { Cmd: ['sh'], Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], Volumes: { '/srv/anon': {} } },
    });
    await ok(daemon, ['load'], archive);
  });

  after(async () => {
    if (daemon) {
      const result = await daemon.stop();
      assert.equal(result.code, 0, `daemon exited with ${result.code ?? result.signal}:\n${daemon.logs()}`);
    }
    // Nothing of ours stays mounted: rootfs, volume filesystems, the container's own mounts.
    if (daemonDir) assert.deepEqual(await mountsUnder(daemonDir), []);
    if (hostDir) {
      assert.deepEqual(await mountsUnder(hostDir), []);
      await rm(hostDir, { recursive: true, force: true });
    }
  });

  it('creates, lists, filters, inspects and removes volumes like docker', async () => {
    assert.equal((await ok(daemon!, ['volume', 'create', '--label', 'tier=db', '--label', 'flag', 'v-basic'])).trim(), 'v-basic');
    assert.equal((await ok(daemon!, ['volume', 'create', 'v-other'])).trim(), 'v-other');
    const [inspected] = JSON.parse(await ok(daemon!, ['volume', 'inspect', 'v-basic'])) as VolumeJson[];
    assert.equal(inspected!.Name, 'v-basic');
    assert.equal(inspected!.Driver, 'local');
    assert.equal(inspected!.Scope, 'local');
    assert.deepEqual(inspected!.Labels, { tier: 'db', flag: '' });
    assert.equal(inspected!.Options, null);
    assert.equal(inspected!.Mountpoint, join(daemon!.dataRoot, 'volumes', 'v-basic', '_data'));
    assert.match(inspected!.CreatedAt, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(Z|[+-]\d\d:\d\d)$/);
    assert.ok((await stat(inspected!.Mountpoint)).isDirectory());

    const table = await ok(daemon!, ['volume', 'ls']);
    assert.match(table, /^DRIVER {4}VOLUME NAME\n/);
    assert.match(table, /^local {5}v-basic$/m);
    assert.equal(await ok(daemon!, ['volume', 'ls', '-q', '--filter', 'label=tier=db']), 'v-basic\n');
    assert.equal(await ok(daemon!, ['volume', 'ls', '-q', '--filter', 'label=flag']), 'v-basic\n');
    assert.equal(await ok(daemon!, ['volume', 'ls', '-q', '--filter', 'name=other']), 'v-other\n');
    assert.equal(await ok(daemon!, ['volume', 'ls', '-q', '--filter', 'driver=nosuch']), '');
    assert.match(await ok(daemon!, ['volume', 'ls', '-q', '--filter', 'dangling=true']), /^v-basic$/m);
    assert.equal(await ok(daemon!, ['volume', 'ls', '--format', '{{.Name}} {{.Driver}} {{.Scope}}', '--filter', 'name=v-basic']), 'v-basic local local\n');

    const missing = await docker(daemon!, ['volume', 'inspect', 'nosuchvol']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /get nosuchvol: no such volume/);

    const short = await docker(daemon!, ['volume', 'create', 'a']);
    assert.equal(short.status, 1);
    assert.match(short.stderr, /create a: volume name is too short, names should be at least two alphanumeric characters/);
    const bad = await docker(daemon!, ['volume', 'create', 'bad/name']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /includes invalid characters for a local volume name, only "\[a-zA-Z0-9\]\[a-zA-Z0-9_.-\]" are allowed/);
    const badOpt = await docker(daemon!, ['volume', 'create', '-o', 'nosuch=1', 'v-badopt']);
    assert.equal(badOpt.status, 1);
    assert.match(badOpt.stderr, /create v-badopt: invalid option: "nosuch"/);
    assert.ok(!existsSync(join(daemon!.dataRoot, 'volumes', 'v-badopt')), 'a refused create leaves nothing behind');

    assert.equal(await ok(daemon!, ['volume', 'rm', 'v-basic', 'v-other']), 'v-basic\nv-other\n');
    assert.ok(!existsSync(inspected!.Mountpoint));
    const again = await docker(daemon!, ['volume', 'rm', 'v-basic']);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /no such volume/);
    assert.equal((await docker(daemon!, ['volume', 'rm', '-f', 'v-basic'])).status, 0, 'rm -f ignores a missing volume');
  });

  it('generates a 64-hex name for a volume created without one, and prune removes it', async () => {
    const name = (await ok(daemon!, ['volume', 'create'])).trim();
    assert.match(name, /^[a-f0-9]{64}$/);
    await ok(daemon!, ['volume', 'create', 'v-keep']);
    const pruned = await ok(daemon!, ['volume', 'prune', '-f']);
    assert.match(pruned, new RegExp(`^Deleted Volumes:\\n(.*\\n)*${name}\\n`));
    assert.match(pruned, /Total reclaimed space: /);
    assert.doesNotMatch(pruned, /v-keep/, 'prune without --all keeps named volumes');
    assert.equal(await ok(daemon!, ['volume', 'ls', '-q', '--filter', 'name=v-keep']), 'v-keep\n');
    assert.match(await ok(daemon!, ['volume', 'prune', '-f', '--all']), /v-keep/);
    assert.equal(await ok(daemon!, ['volume', 'ls', '-q', '--filter', 'name=v-keep']), '');
  });

  it('keeps data in a named volume across containers', async () => {
    await ok(daemon!, ['run', '--rm', '-v', 'v-persist:/data', 'busybox', 'sh', '-c', 'echo persisted > /data/note']);
    assert.equal(await ok(daemon!, ['run', '--rm', '-v', 'v-persist:/data', 'busybox', 'cat', '/data/note']), 'persisted\n');
    const mountpoint = (await ok(daemon!, ['volume', 'inspect', '-f', '{{.Mountpoint}}', 'v-persist'])).trim();
    assert.equal(await readFile(join(mountpoint, 'note'), 'utf8'), 'persisted\n');
    await ok(daemon!, ['volume', 'rm', 'v-persist']);
  });

  it("copies the image's content into a new named volume, keeping owners, modes and links", async () => {
    assert.equal(await ok(daemon!, ['run', '--rm', '-v', 'v-copy:/srv/app', 'voltest', 'sh', '-c', 'cat /srv/app/hello.txt; rm /srv/app/hello.txt']), 'from image\n');
    const mountpoint = (await ok(daemon!, ['volume', 'inspect', '-f', '{{.Mountpoint}}', 'v-copy'])).trim();
    const root = await stat(mountpoint);
    assert.equal(root.uid, 1000);
    assert.equal(root.mode & 0o7777, 0o750);
    assert.equal(await readlink(join(mountpoint, 'link')), '/etc/passwd', 'a symlink is copied as a link, not followed');
    // The content is copied once: the file deleted by the first container stays deleted.
    assert.equal((await docker(daemon!, ['run', '--rm', '-v', 'v-copy:/srv/app', 'voltest', 'test', '-e', '/srv/app/hello.txt'])).status, 1);
    await ok(daemon!, ['volume', 'rm', 'v-copy']);

    await ok(daemon!, ['volume', 'create', 'v-full']);
    await ok(daemon!, ['run', '--rm', '-v', 'v-full:/data', 'busybox', 'touch', '/data/mine']);
    assert.equal(await ok(daemon!, ['run', '--rm', '-v', 'v-full:/srv/app', 'voltest', 'ls', '/srv/app']), 'mine\n', 'a volume with content is not filled');
    const owned = await stat(join((await ok(daemon!, ['volume', 'inspect', '-f', '{{.Mountpoint}}', 'v-full'])).trim(), 'mine'));
    assert.equal(owned.uid, 0);
    await ok(daemon!, ['volume', 'rm', 'v-full']);

    assert.equal(await ok(daemon!, ['run', '--rm', '--mount', 'type=volume,src=v-nocopy,dst=/srv/app,volume-nocopy', 'voltest', 'ls', '-A', '/srv/app']), '');
    await ok(daemon!, ['volume', 'rm', 'v-nocopy']);
  });

  it('enforces read-only volume and bind mounts', async () => {
    const bindDir = await mkdtemp(join(tmpdir(), 'tsengine-voltest-bind-'));
    try {
      await writeFile(join(bindDir, 'host.txt'), 'host file\n');
      for (const mount of [['-v', 'v-ro:/data:ro'], ['--mount', 'type=volume,src=v-ro,dst=/data,readonly'], ['-v', `${bindDir}:/data:ro`], ['--mount', `type=bind,src=${bindDir},dst=/data,ro`]]) {
        const r = await docker(daemon!, ['run', '--rm', ...mount, 'busybox', 'sh', '-c', 'touch /data/new']);
        assert.equal(r.status, 1, `${mount.join(' ')}: ${r.stderr}`);
        assert.match(r.stderr, /Read-only file system/);
      }
      assert.equal(await ok(daemon!, ['run', '--rm', '-v', `${bindDir}:/data:ro`, 'busybox', 'cat', '/data/host.txt']), 'host file\n');
      await ok(daemon!, ['run', '--rm', '-v', `${bindDir}:/data`, 'busybox', 'sh', '-c', 'echo written > /data/from-container']);
      assert.equal(await readFile(join(bindDir, 'from-container'), 'utf8'), 'written\n');
      assert.deepEqual((await readdir(bindDir)).sort(), ['from-container', 'host.txt']);
    } finally {
      await rm(bindDir, { recursive: true, force: true });
    }
    await ok(daemon!, ['volume', 'rm', 'v-ro']);
  });

  it('mounts tmpfs for --tmpfs, --mount type=tmpfs and a local volume with type=tmpfs', async () => {
    await ok(daemon!, ['volume', 'create', '-o', 'type=tmpfs', '-o', 'device=tmpfs', '-o', 'o=size=3m', 'v-tmpfs']);
    const [vol] = JSON.parse(await ok(daemon!, ['volume', 'inspect', 'v-tmpfs'])) as VolumeJson[];
    assert.deepEqual(vol!.Options, { type: 'tmpfs', device: 'tmpfs', o: 'size=3m' });
    const out = await ok(daemon!, ['run', '--rm', '--tmpfs', '/scratch:size=1m', '--mount', 'type=tmpfs,dst=/t2,tmpfs-size=2097152', '-v', 'v-tmpfs:/tv', 'busybox', 'sh', '-c', 'grep -E " /(scratch|t2|tv) " /proc/mounts; echo data > /tv/f; cat /tv/f']);
    const lines = out.trim().split('\n');
    const fields = (point: string) => lines.find((l) => l.split(' ')[1] === point)?.split(' ');
    for (const [point, size] of [['/scratch', 'size=1024k'], ['/t2', 'size=2048k'], ['/tv', 'size=3072k']] as const) {
      const f = fields(point);
      assert.ok(f, `${point} is mounted: ${out}`);
      assert.equal(f[2], 'tmpfs', `${point} is a tmpfs`);
      assert.match(f[3]!, new RegExp(size), `${point} has ${size}`);
    }
    assert.match(fields('/scratch')![3]!, /nosuid.*nodev.*noexec/);
    assert.equal(lines[lines.length - 1], 'data');
    // The volume's filesystem is mounted only while a container uses it, and it holds its data only then.
    assert.deepEqual(await mountsUnder(vol!.Mountpoint), []);
    await ok(daemon!, ['volume', 'rm', 'v-tmpfs']);
  });

  it('refuses to remove a volume in use with docker\'s message', async () => {
    const id = (await ok(daemon!, ['create', '-v', 'v-used:/data', 'busybox', 'true'])).trim();
    const r = await docker(daemon!, ['volume', 'rm', 'v-used']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, new RegExp(`Error response from daemon: remove v-used: volume is in use - \\[${id}\\]`));
    assert.equal((await docker(daemon!, ['volume', 'rm', '-f', 'v-used'])).status, 1, '-f does not remove a volume in use');
    assert.equal(await ok(daemon!, ['volume', 'ls', '-q', '--filter', 'dangling=false']), 'v-used\n');
    assert.doesNotMatch(await ok(daemon!, ['volume', 'prune', '-f', '-a']), /v-used/);
    const [mount] = JSON.parse(await ok(daemon!, ['inspect', '-f', '{{json .Mounts}}', id])) as MountJson[];
    assert.equal(mount!.Type, 'volume');
    assert.equal(mount!.Name, 'v-used');
    assert.equal(mount!.Destination, '/data');
    assert.equal(mount!.Driver, 'local');
    assert.equal(mount!.RW, true);
    assert.equal(mount!.Source, join(daemon!.dataRoot, 'volumes', 'v-used', '_data'));
    await ok(daemon!, ['rm', id]);
    assert.equal(await ok(daemon!, ['volume', 'rm', 'v-used']), 'v-used\n');
  });

  it('creates anonymous volumes for image VOLUMEs and --mount without a source; rm -v removes them', async () => {
    const id = (await ok(daemon!, ['create', '--mount', 'type=volume,dst=/more', '-v', 'v-named:/named', 'voltest', 'cat', '/srv/anon/seed'])).trim();
    const mounts = JSON.parse(await ok(daemon!, ['inspect', '-f', '{{json .Mounts}}', id])) as MountJson[];
    const anon = mounts.filter((m) => m.Destination === '/srv/anon' || m.Destination === '/more');
    assert.equal(anon.length, 2, JSON.stringify(mounts));
    for (const m of anon) assert.match(m.Name!, /^[a-f0-9]{64}$/);
    const labels = JSON.parse(await ok(daemon!, ['volume', 'inspect', '-f', '{{json .Labels}}', anon[0]!.Name!])) as Record<string, string>;
    assert.deepEqual(labels, { 'com.docker.volume.anonymous': '' });
    const r = await docker(daemon!, ['start', '-a', id]);
    assert.equal(r.stdout, 'seed\n', 'the image content is copied into the anonymous volume');
    await ok(daemon!, ['rm', '-v', id]);
    const left = (await ok(daemon!, ['volume', 'ls', '-q'])).split('\n').filter(Boolean);
    for (const m of anon) assert.ok(!left.includes(m.Name!), `anonymous volume ${m.Name} removed by rm -v`);
    assert.ok(left.includes('v-named'), 'rm -v keeps named volumes');
    await ok(daemon!, ['volume', 'rm', 'v-named']);

    // --rm containers lose their anonymous volumes too; without -v they stay (and prune takes them).
    await ok(daemon!, ['run', '--rm', 'voltest', 'true']);
    assert.equal((await ok(daemon!, ['volume', 'ls', '-q'])).trim(), '');
    const kept = (await ok(daemon!, ['create', 'voltest', 'true'])).trim();
    await ok(daemon!, ['rm', kept]);
    const orphan = (await ok(daemon!, ['volume', 'ls', '-q'])).trim();
    assert.match(orphan, /^[a-f0-9]{64}$/);
    assert.match(await ok(daemon!, ['volume', 'prune', '-f']), new RegExp(orphan));
  });

  it('anonymous volumes from -v /path are removed by rm -v', async () => {
    const id = (await ok(daemon!, ['create', '-v', '/anon-path', 'busybox', 'true'])).trim();
    const mounts = JSON.parse(await ok(daemon!, ['inspect', '-f', '{{json .Mounts}}', id])) as MountJson[];
    try {
      assert.equal(mounts.length, 1);
      assert.match(mounts[0]!.Name ?? '', /^[a-f0-9]{64}$/);
    } finally {
      await ok(daemon!, ['rm', '-v', id]);
    }
    assert.equal((await ok(daemon!, ['volume', 'ls', '-q'])).trim(), '');
  });

  it('shares mounts with --volumes-from, read-only when asked', async () => {
    await ok(daemon!, ['create', '--name', 'vf-source', '-v', 'v-shared:/shared', '--mount', 'type=volume,dst=/anon', 'busybox', 'true']);
    await ok(daemon!, ['run', '--rm', '--volumes-from', 'vf-source', 'busybox', 'sh', '-c', 'echo shared > /shared/x; echo anon > /anon/y']);
    assert.equal(await ok(daemon!, ['run', '--rm', '--volumes-from', 'vf-source', 'busybox', 'cat', '/shared/x', '/anon/y']), 'shared\nanon\n');
    const ro = await docker(daemon!, ['run', '--rm', '--volumes-from', 'vf-source:ro', 'busybox', 'touch', '/shared/z']);
    assert.equal(ro.status, 1);
    assert.match(ro.stderr, /Read-only file system/);
    const missing = await docker(daemon!, ['run', '--rm', '--volumes-from', 'nosuchcontainer', 'busybox', 'true']);
    assert.equal(missing.status, 125, 'an unknown --volumes-from container fails the run');
    await ok(daemon!, ['rm', '-v', 'vf-source']);
    assert.equal((await ok(daemon!, ['volume', 'ls', '-q'])).trim(), 'v-shared');
    await ok(daemon!, ['volume', 'rm', 'v-shared']);
  });

  it('refuses a missing --mount bind source with docker\'s message and creates a missing -v source', async () => {
    const base = await mkdtemp(join(tmpdir(), 'tsengine-voltest-src-'));
    try {
      const absent = join(base, 'absent');
      const r = await docker(daemon!, ['run', '--rm', '--mount', `type=bind,src=${absent},dst=/x`, 'busybox', 'true']);
      assert.equal(r.status, 125);
      assert.match(r.stderr, new RegExp(`invalid mount config for type "bind": bind source path does not exist: ${absent}`));
      assert.ok(!existsSync(absent));
      const created = join(base, 'made', 'by', 'v');
      await ok(daemon!, ['run', '--rm', '-v', `${created}:/x`, 'busybox', 'touch', '/x/inside']);
      assert.ok((await stat(join(created, 'inside'))).isFile());
      const dup = await docker(daemon!, ['create', '-v', 'v-dup:/x', '--mount', 'type=tmpfs,dst=/x', 'busybox', 'true']);
      assert.equal(dup.status, 1);
      assert.match(dup.stderr, /Duplicate mount point: \/x/);
      const rootDest = await docker(daemon!, ['create', '--mount', 'type=volume,src=v-x,dst=/', 'busybox', 'true']);
      assert.equal(rootDest.status, 1);
      assert.match(rootDest.stderr, /destination can't be '\/'/);
      assert.equal((await ok(daemon!, ['volume', 'ls', '-q'])).trim(), '', 'a refused create leaves no volume behind');
    } finally {
      await rm(base, { recursive: true, force: true });
    }
  });

  it('never lets a symlink in the image redirect a mount or the copy-up onto the host', async () => {
    await writeFile(join(hostDir, 'host-file'), 'host\n');
    const bindDir = await mkdtemp(join(tmpdir(), 'tsengine-voltest-bind-'));
    try {
      // /evil in the image is a symlink to hostDir: it must resolve inside the container's rootfs.
      await ok(daemon!, ['run', '--rm', '-v', 'v-evil:/evil', '-v', `${bindDir}:/evil/sub`, '--tmpfs', '/evil/tmp', 'busybox', 'sh', '-c', 'echo volume > /evil/marker; echo bind > /evil/sub/marker']);
      assert.deepEqual(await readdir(hostDir), ['host-file'], 'nothing was written into the host folder the link names');
      assert.deepEqual(await mountsUnder(hostDir), []);
      const mountpoint = (await ok(daemon!, ['volume', 'inspect', '-f', '{{.Mountpoint}}', 'v-evil'])).trim();
      assert.ok(!existsSync(join(mountpoint, 'host-file')), 'the copy-up did not follow the link to the host');
      assert.equal(await readFile(join(mountpoint, 'marker'), 'utf8'), 'volume\n');
      assert.equal(await readFile(join(bindDir, 'marker'), 'utf8'), 'bind\n');
      assert.equal((await lstat(join(hostDir, 'host-file'))).isFile(), true);
    } finally {
      await rm(bindDir, { recursive: true, force: true });
    }
    await ok(daemon!, ['volume', 'rm', 'v-evil']);
  });

  it('serves the tsengine CLI: volume create, ls, inspect, rm and prune', async () => {
    const run = async (args: string[]) => {
      const r = await tsengine(args, { host: daemon! });
      assert.equal(r.status, 0, `tsengine ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    assert.equal(await run(['volume', 'create', '--label', 'k=v', 'ts-vol']), 'ts-vol\n');
    assert.match(await run(['volume', 'ls', '--filter', 'name=ts-vol']), /^DRIVER {4}VOLUME NAME\nlocal {5}ts-vol\n$/);
    assert.equal(await run(['volume', 'inspect', '-f', '{{.Name}} {{.Driver}}', 'ts-vol']), 'ts-vol local\n');
    const id = (await ok(daemon!, ['create', '-v', 'ts-vol:/d', 'busybox', 'true'])).trim();
    const inUse = await tsengine(['volume', 'rm', 'ts-vol'], { host: daemon! });
    assert.equal(inUse.status, 1);
    assert.match(inUse.stderr, new RegExp(`Error response from daemon: remove ts-vol: volume is in use - \\[${id}\\]`));
    await ok(daemon!, ['rm', id]);
    assert.equal(await run(['volume', 'rm', 'ts-vol']), 'ts-vol\n');
    await run(['volume', 'create']);
    assert.match(await run(['volume', 'prune', '-f']), /^Deleted Volumes:\n[a-f0-9]{64}\n\nTotal reclaimed space: 0B\n$/);
  });

  it('leaves a running container with a mounted tmpfs volume for the daemon shutdown', async () => {
    await ok(daemon!, ['volume', 'create', '-o', 'type=tmpfs', '-o', 'device=tmpfs', 'v-live']);
    await ok(daemon!, ['run', '-d', '--name', 'live', '-v', 'v-live:/live', '-v', 'v-live2:/live2', 'busybox', 'sleep', '300']);
    const mountpoint = (await ok(daemon!, ['volume', 'inspect', '-f', '{{.Mountpoint}}', 'v-live'])).trim();
    assert.equal((await mountsUnder(mountpoint)).length, 1, 'the tmpfs volume is mounted while the container runs');
  });
});

describe('volumes across a daemon restart', () => {
  let base = '';
  let daemon: Daemon | undefined;

  before(async () => {
    base = await mkdtemp(join(tmpdir(), 'tsengine-voltest-restart-'));
  });

  after(async () => {
    if (daemon) await daemon.stop();
    const left = await mountsUnder(base);
    await rm(base, { recursive: true, force: true });
    assert.deepEqual(left, []);
  });

  it('keeps volumes, labels, data and which container uses what', async () => {
    const dataRoot = join(base, 'data');
    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' }, dataRoot });
    await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
    await ok(daemon, ['volume', 'create', '--label', 'a=b', 'v-restart']);
    await ok(daemon, ['run', '--name', 'writer', '-v', 'v-restart:/d', '--mount', 'type=volume,dst=/anon', 'busybox', 'sh', '-c', 'echo kept > /d/f']);
    const before = JSON.parse(await ok(daemon, ['inspect', '-f', '{{json .Mounts}}', 'writer'])) as MountJson[];
    assert.equal((await daemon.stop()).code, 0);
    daemon = undefined;

    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' }, dataRoot });
    assert.deepEqual(JSON.parse(await ok(daemon, ['inspect', '-f', '{{json .Mounts}}', 'writer'])), before);
    const labels = JSON.parse(await ok(daemon, ['volume', 'inspect', '-f', '{{json .Labels}}', 'v-restart'])) as Record<string, string>;
    assert.deepEqual(labels, { a: 'b' });
    const r = await docker(daemon, ['volume', 'rm', 'v-restart']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /volume is in use/);
    assert.equal(await ok(daemon, ['run', '--rm', '--volumes-from', 'writer', 'busybox', 'cat', '/d/f']), 'kept\n');
    await ok(daemon, ['rm', '-v', 'writer']);
    assert.equal((await ok(daemon, ['volume', 'ls', '-q'])).trim(), 'v-restart');
    await ok(daemon, ['volume', 'rm', 'v-restart']);
  });
});
