import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Daemon, docker, startDaemon } from '../helpers/daemon.js';
import { busyboxArchive, busyboxRootfsTar, imageArchive, layerTar, makeImageArchive } from '../helpers/images.js';

const PLUGINS = (driver: string) => ['@tsengine/api-server', '@tsengine/system', `@tsengine/graphdriver-${driver}`, '@tsengine/images'];

async function ok(daemon: Daemon, args: string[], input?: Buffer): Promise<string> {
  const r = await docker(daemon, args, input ? { input } : {});
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

for (const driver of ['overlay', 'vfs'] as const) {
  describe(`images through the docker CLI (${driver})`, () => {
    let daemon: Daemon;
    let work: string;
    let busyboxTar: Buffer;

    before(async () => {
      work = await mkdtemp(join(tmpdir(), 'tsengine-images-it-'));
      busyboxTar = await busyboxRootfsTar();
      daemon = await startDaemon({ plugins: PLUGINS(driver), config: { graphdriver: driver } });
    });
    after(async () => {
      await daemon?.stop();
      await rm(work, { recursive: true, force: true });
    });

    it('imports busybox from stdin, lists, inspects and shows history', async () => {
      const out = await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-c', 'ENV A=b', '-', 'busybox:latest'], busyboxTar);
      const id = out.trim();
      assert.match(id, /^sha256:[a-f0-9]{64}$/);
      const images = await ok(daemon, ['images']);
      assert.match(images, /^REPOSITORY\s+TAG\s+IMAGE ID\s+CREATED\s+SIZE/);
      assert.match(images, new RegExp(`busybox\\s+latest\\s+${id.slice(7, 19)}`));
      const inspect = JSON.parse(await ok(daemon, ['image', 'inspect', 'busybox'])) as Array<{ Id: string; Config: { Cmd: string[]; Env: string[] }; Comment: string; RootFS: { Layers: string[] } }>;
      assert.equal(inspect[0]!.Id, id);
      assert.deepEqual(inspect[0]!.Config.Cmd, ['sh']);
      assert.deepEqual(inspect[0]!.Config.Env, ['A=b']);
      assert.equal(inspect[0]!.Comment, 'Imported from -');
      const history = await ok(daemon, ['history', 'busybox']);
      assert.match(history, /Imported from -/);
      assert.equal((await ok(daemon, ['images', '-q'])).trim(), id.slice(7, 19));
    });

    it('tags and removes tags with docker semantics', async () => {
      await ok(daemon, ['tag', 'busybox', 'localhost:5000/bb:2']);
      await ok(daemon, ['tag', 'busybox', 'other/bb:3']);
      const id = (await ok(daemon, ['image', 'inspect', '-f', '{{.Id}}', 'busybox'])).trim();
      const refused = await docker(daemon, ['rmi', id.slice(7, 19)]);
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, /conflict: unable to delete [a-f0-9]{12} \(must be forced\) - image is referenced in multiple repositories/);
      assert.equal((await ok(daemon, ['rmi', 'other/bb:3'])).trim(), 'Untagged: other/bb:3');
      assert.equal((await ok(daemon, ['rmi', 'localhost:5000/bb:2'])).trim(), 'Untagged: localhost:5000/bb:2');
      const missing = await docker(daemon, ['image', 'inspect', 'nosuch:1']);
      assert.equal(missing.status, 1);
      assert.match(missing.stderr, /No such image: nosuch:1/);
      const bad = await docker(daemon, ['tag', 'busybox', 'Bad/Name']);
      assert.notEqual(bad.status, 0);
    });

    it('round-trips save → rmi → load, keeping the image ID', async () => {
      const id = (await ok(daemon, ['image', 'inspect', '-f', '{{.Id}}', 'busybox'])).trim();
      const file = join(work, `busybox-${driver}.tar`);
      await ok(daemon, ['save', '-o', file, 'busybox']);
      const rmi = await ok(daemon, ['rmi', 'busybox']);
      assert.match(rmi, /Untagged: busybox:latest/);
      assert.match(rmi, new RegExp(`Deleted: ${id}`));
      assert.doesNotMatch(await ok(daemon, ['images']), /busybox/);
      const loaded = await ok(daemon, ['load', '-i', file]);
      assert.match(loaded, /Loaded image: busybox:latest/);
      assert.equal((await ok(daemon, ['image', 'inspect', '-f', '{{.Id}}', 'busybox'])).trim(), id);
    });

    it('loads a multi-layer image with whiteouts and a docker-archive built elsewhere', async () => {
      const { archive, image } = await makeImageArchive(
        [{ files: { 'etc/a': 'a', 'etc/b': 'b', 'opt/x/1': '1' } }, { deletes: ['etc/a'], opaque: ['opt/x'], files: { 'opt/x/2': '2' } }, { files: { 'etc/c': 'c' } }],
        { repoTags: ['multi:1'], layout: 'legacy' },
      );
      const out = await ok(daemon, ['load'], archive);
      assert.match(out, /Loaded image: multi:1/);
      const inspect = JSON.parse(await ok(daemon, ['image', 'inspect', 'multi:1'])) as Array<{ Id: string; RootFS: { Layers: string[] } }>;
      assert.equal(inspect[0]!.Id, image.id);
      assert.deepEqual(inspect[0]!.RootFS.Layers, image.diffIds);
      const history = await ok(daemon, ['history', '-q', 'multi:1']);
      assert.equal(history.trim().split('\n').length, 3);
      const built = await busyboxArchive({ repoTags: ['bbarchive:1'] });
      assert.match(await ok(daemon, ['load'], built.archive), /Loaded image: bbarchive:1/);
      assert.equal((await ok(daemon, ['image', 'inspect', '-f', '{{.Id}}', 'bbarchive:1'])).trim(), built.image.id);
    });

    it('rejects hostile layers with a clear error and registers nothing', async () => {
      const escape = await layerTar({ raw: [{ header: { name: '../../escape', type: 'file', size: 3, mode: 0o644 }, body: Buffer.from('bad') }] });
      const through = await layerTar({ files: { link: { symlink: '/' } }, raw: [{ header: { name: 'link/tmp/pwned-by-load', type: 'file', size: 3, mode: 0o644 }, body: Buffer.from('bad') }] });
      for (const [name, layer] of [['escape', escape], ['symlink', through]] as const) {
        const { archive } = await imageArchive([layer], { repoTags: [`hostile-${name}:1`] });
        const r = await docker(daemon, ['load'], { input: archive });
        assert.equal(r.status, 1, r.stdout + r.stderr);
        assert.ok((r.stderr + r.stdout).trim().length > 0);
        assert.doesNotMatch(await ok(daemon, ['images']), /hostile/);
      }
      assert.equal(existsSync('/tmp/pwned-by-load'), false);
      assert.equal(existsSync(join(daemon.dataRoot, 'escape')), false);
    });

    it('prunes dangling images and reports system df', async () => {
      await ok(daemon, ['import', '-'], await layerTar({ files: { dangling: randomBytes(8).toString('hex') } }));
      assert.match(await ok(daemon, ['images', '-f', 'dangling=true']), /<none>\s+<none>/);
      const pruned = await ok(daemon, ['image', 'prune', '-f']);
      assert.match(pruned, /^Deleted Images:\ndeleted: sha256:[a-f0-9]{64}\n/);
      assert.match(pruned, /Total reclaimed space/);
      assert.doesNotMatch(await ok(daemon, ['images']), /<none>/);
      const df = await ok(daemon, ['system', 'df']);
      assert.match(df, /^TYPE\s+TOTAL\s+ACTIVE\s+SIZE\s+RECLAIMABLE\nImages\s+\d+/);
    });
  });
}

describe('images survive a daemon killed in the middle of a load', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'tsengine-images-crash-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('starts again, lists only complete images, and no image points at a missing layer', async () => {
    const dataRoot = join(work, 'data');
    let daemon = await startDaemon({ plugins: PLUGINS('overlay'), config: { graphdriver: 'overlay' }, dataRoot, logLevel: 'info' });
    try {
      await ok(daemon, ['import', '-', 'small:1'], await layerTar({ files: { small: 'x' } }));
      const layers = [];
      for (let i = 0; i < 4; i++) layers.push(await layerTar({ files: { [`big${i}`]: randomBytes(40 * 1024 * 1024) } }));
      const { archive } = await imageArchive(layers, { repoTags: ['big:1'] });
      const file = join(work, 'big.tar');
      await writeFile(file, archive);
      const loading = docker(daemon, ['load', '-i', file]);
      const layerdb = join(dataRoot, 'image', 'overlay', 'layerdb', 'sha256');
      const deadline = Date.now() + 60_000;
      let seen = 0;
      // Kill once a layer of the big image is recorded complete (the first non-"small" record).
      while (Date.now() < deadline) {
        const records = (await readdir(layerdb).catch(() => [] as string[])).filter((n) => n.endsWith('.json'));
        let complete = 0;
        for (const r of records) if ((await readFile(join(layerdb, r), 'utf8').catch(() => '')).includes('"complete"')) complete++;
        seen = complete;
        if (complete >= 2) break;
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(seen >= 2, 'the load never recorded a layer');
      process.kill(daemon.pid, 'SIGKILL');
      await daemon.exited;
      await loading;
      await daemon.stop();
      daemon = await startDaemon({ plugins: PLUGINS('overlay'), config: { graphdriver: 'overlay' }, dataRoot });
      const images = await ok(daemon, ['images', '--format', '{{.Repository}}:{{.Tag}}']);
      assert.deepEqual(images.trim().split('\n'), ['small:1']);
      const ids = (await ok(daemon, ['images', '-a', '-q', '--no-trunc'])).trim().split('\n').filter(Boolean);
      for (const id of ids) await ok(daemon, ['history', id]);
      // The load can simply be repeated.
      assert.match(await ok(daemon, ['load', '-i', file]), /Loaded image: big:1/);
    } finally {
      await daemon.stop();
    }
  });
});
