import assert from 'node:assert/strict';
import { mkdtemp, mkdir, readFile, readdir, readlink, rm, writeFile, lstat } from 'node:fs/promises';
import http from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { packEntries } from '@tsengine/test';
import { type Daemon, docker, startDaemon } from '../helpers/daemon.js';
import { busyboxRootfsTar, readTar } from '../helpers/images.js';

const PLUGINS = ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', '@tsengine/exec-native', '@tsengine/volume-local', '@tsengine/containers'];

async function ok(daemon: Daemon, args: string[], input?: Buffer): Promise<string> {
  const r = await docker(daemon, args, input ? { input } : {});
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** A raw API call over the daemon's socket: status, headers and body. */
function api(daemon: Daemon, method: string, path: string, body?: Buffer): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ socketPath: daemon.socket, method, path, agent: false, headers: body ? { 'Content-Type': 'application/x-tar' } : {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('container filesystem: diff, export, commit, cp', () => {
  let daemon: Daemon | undefined;
  let local = '';

  before(async () => {
    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' } });
    local = await mkdtemp(join(tmpdir(), 'tsengine-cp-'));
    await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
    await ok(daemon, ['run', '--name', 'changed', 'busybox', 'sh', '-c', 'echo hi > /tmp/new; rm /etc/group; mkdir /root/made; ln -s /etc /tmp/etclink; ln -s /nonexistent-host-dir /tmp/outside']);
  });

  after(async () => {
    if (local) await rm(local, { recursive: true, force: true });
    if (daemon) {
      const result = await daemon.stop();
      assert.equal(result.code, 0, `daemon exited with ${result.code ?? result.signal}:\n${daemon.logs()}`);
    }
  });

  it('diff lists what the container changed, without the runtime\'s own files', async () => {
    const lines = (await ok(daemon!, ['diff', 'changed'])).trim().split('\n');
    assert.deepEqual(lines, ['C /etc', 'D /etc/group', 'C /root', 'A /root/made', 'C /tmp', 'A /tmp/etclink', 'A /tmp/new', 'A /tmp/outside']);
    const fresh = (await ok(daemon!, ['create', 'busybox'])).trim();
    assert.equal((await ok(daemon!, ['diff', fresh])).trim(), '');
    await ok(daemon!, ['rm', fresh]);
  });

  it('export writes the whole root filesystem as a tar', async () => {
    const file = join(local, 'export.tar');
    await ok(daemon!, ['export', '-o', file, 'changed']);
    const files = await readTar(await readFile(file));
    assert.equal(files.get('tmp/new')?.toString(), 'hi\n');
    assert.ok(files.has('bin/busybox'));
    assert.ok(!files.has('etc/group'), 'a deleted file is not exported');
    assert.equal(files.get('etc/passwd')?.toString().split('\n')[0], 'root:x:0:0:root:/root:/bin/sh');
  });

  it('commit makes an image of the container with -c changes, author and message', async () => {
    const id = (await ok(daemon!, ['commit', '-c', 'ENV Z=1', '-c', 'LABEL stage=two', '-a', 'tester', '-m', 'a message', 'changed', 'committed:1'])).trim();
    assert.match(id, /^sha256:[a-f0-9]{64}$/);
    const [image] = JSON.parse(await ok(daemon!, ['image', 'inspect', 'committed:1'])) as Array<{ Id: string; Author: string; Comment: string; Config: { Env: string[]; Labels: Record<string, string>; Cmd: string[] }; RootFS: { Layers: string[] } }>;
    assert.equal(image!.Id, id);
    assert.equal(image!.Author, 'tester');
    assert.equal(image!.Comment, 'a message');
    assert.ok(image!.Config.Env.includes('Z=1'));
    assert.equal(image!.Config.Labels.stage, 'two');
    assert.equal(image!.RootFS.Layers.length, 2);
    const r = await docker(daemon!, ['run', '--rm', 'committed:1', 'sh', '-c', 'cat /tmp/new; test -e /etc/group || echo gone; echo $Z']);
    assert.equal(r.stdout, 'hi\ngone\n1\n', r.stderr);
    const bad = await docker(daemon!, ['commit', '-c', 'RUN true', 'changed', 'bad:1']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /RUN is not a valid change command/);
    const imagesBefore = await ok(daemon!, ['images', '-aq']);
    const badName = await docker(daemon!, ['commit', 'changed', 'UPPER:1']);
    assert.equal(badName.status, 1);
    assert.match(badName.stderr, /invalid reference format: repository name \(.*UPPER\) must be lowercase/);
    assert.equal(await ok(daemon!, ['images', '-aq']), imagesBefore, 'a refused commit leaves no image behind');
  });

  it('commits a running container', async () => {
    await ok(daemon!, ['run', '-d', '--name', 'live', 'busybox', 'sh', '-c', 'echo live > /live.txt; sleep 60']);
    try {
      const deadline = Date.now() + 20_000;
      while (!(await ok(daemon!, ['diff', 'live'])).includes('A /live.txt')) {
        assert.ok(Date.now() < deadline, 'the running container never wrote /live.txt');
        await new Promise((r) => setTimeout(r, 100));
      }
      await ok(daemon!, ['commit', 'live', 'fromlive']);
      assert.equal((await ok(daemon!, ['inspect', '-f', '{{.State.Status}}', 'live'])).trim(), 'running', 'commit thaws the container it froze');
      await ok(daemon!, ['pause', 'live']);
      await ok(daemon!, ['commit', 'live', 'fromlive:paused']);
      assert.equal((await ok(daemon!, ['inspect', '-f', '{{.State.Status}}', 'live'])).trim(), 'paused', 'a container the user paused stays paused');
      await ok(daemon!, ['unpause', 'live']);
      const r = await docker(daemon!, ['run', '--rm', 'fromlive', 'cat', '/live.txt']);
      assert.equal(r.stdout, 'live\n', r.stderr);
    } finally {
      await docker(daemon!, ['rm', '-f', 'live']);
    }
  });

  it('cp copies files and directories out, and a symlink as a link unless -L', async () => {
    await ok(daemon!, ['cp', 'changed:/tmp/new', join(local, 'new.txt')]);
    assert.equal(await readFile(join(local, 'new.txt'), 'utf8'), 'hi\n');
    await ok(daemon!, ['cp', 'changed:/root', join(local, 'rootdir')]);
    assert.deepEqual(await readdir(join(local, 'rootdir')), ['made']);
    await ok(daemon!, ['cp', 'changed:/tmp/etclink', join(local, 'link')]);
    assert.equal(await readlink(join(local, 'link')), '/etc');
    await ok(daemon!, ['cp', '-L', 'changed:/bin/sh', join(local, 'sh')]);
    assert.ok((await lstat(join(local, 'sh'))).isFile());
  });

  it('cp copies files in, also into a running container, and resolves symlinks inside the container', async () => {
    await writeFile(join(local, 'up.txt'), 'uploaded\n');
    await ok(daemon!, ['cp', join(local, 'up.txt'), 'changed:/root/']);
    await ok(daemon!, ['cp', join(local, 'up.txt'), 'changed:/root/renamed.txt']);
    await ok(daemon!, ['cp', 'changed:/root', join(local, 'root-after')]);
    assert.deepEqual((await readdir(join(local, 'root-after'))).sort(), ['made', 'renamed.txt', 'up.txt']);
    assert.equal(await readFile(join(local, 'root-after', 'renamed.txt'), 'utf8'), 'uploaded\n');

    // /tmp/etclink -> /etc is followed inside the container, never on the host.
    await ok(daemon!, ['cp', join(local, 'up.txt'), 'changed:/tmp/etclink/']);
    await ok(daemon!, ['cp', 'changed:/etc/up.txt', join(local, 'back.txt')]);
    assert.equal(await readFile(join(local, 'back.txt'), 'utf8'), 'uploaded\n');
    // A link to a path that exists only on the host leads nowhere in the container.
    const hostDir = join(local, 'host-only');
    await mkdir(hostDir);
    await ok(daemon!, ['run', '--name', 'escaper', 'busybox', 'ln', '-s', hostDir, '/tmp/escape']);
    const escape = await docker(daemon!, ['cp', join(local, 'up.txt'), 'escaper:/tmp/escape/']);
    assert.notEqual(escape.status, 0);
    assert.deepEqual(await readdir(hostDir), []);
    await ok(daemon!, ['rm', 'escaper']);

    await ok(daemon!, ['run', '-d', '--name', 'running', 'busybox', 'sleep', '60']);
    try {
      await ok(daemon!, ['cp', join(local, 'up.txt'), 'running:/tmp/in-running.txt']);
      await ok(daemon!, ['cp', 'running:/tmp/in-running.txt', join(local, 'from-running.txt')]);
      assert.equal(await readFile(join(local, 'from-running.txt'), 'utf8'), 'uploaded\n');
    } finally {
      await docker(daemon!, ['rm', '-f', 'running']);
    }
  });

  it('cp reaches into volumes and binds, and refuses read-only ones', async () => {
    const bindDir = join(local, 'bind');
    await mkdir(bindDir);
    await writeFile(join(bindDir, 'from-host.txt'), 'host file\n');
    await ok(daemon!, ['create', '--name', 'vols', '-v', 'cpvol:/data', '-v', `${bindDir}:/bound`, '-v', `${bindDir}:/frozen:ro`, 'busybox', 'true']);
    try {
      await writeFile(join(local, 'vol.txt'), 'into the volume\n');
      await ok(daemon!, ['cp', join(local, 'vol.txt'), 'vols:/data/']);
      await ok(daemon!, ['cp', join(local, 'vol.txt'), 'vols:/bound/copied.txt']);
      assert.equal(await readFile(join(bindDir, 'copied.txt'), 'utf8'), 'into the volume\n');
      await ok(daemon!, ['cp', 'vols:/bound/from-host.txt', join(local, 'back-from-bind.txt')]);
      assert.equal(await readFile(join(local, 'back-from-bind.txt'), 'utf8'), 'host file\n');
      await ok(daemon!, ['cp', 'vols:/data', join(local, 'volume-copy')]);
      assert.deepEqual(await readdir(join(local, 'volume-copy')), ['vol.txt']);
      const frozen = await docker(daemon!, ['cp', join(local, 'vol.txt'), 'vols:/frozen/']);
      assert.equal(frozen.status, 1);
      assert.match(frozen.stderr, /mounted volume is marked read-only/);
      // Another container sees the file in the named volume: it went into the volume, not the rootfs.
      const r = await docker(daemon!, ['run', '--rm', '-v', 'cpvol:/mnt', 'busybox', 'cat', '/mnt/vol.txt']);
      assert.equal(r.stdout, 'into the volume\n', r.stderr);
    } finally {
      await docker(daemon!, ['rm', '-f', '-v', 'vols']);
      await docker(daemon!, ['volume', 'rm', 'cpvol']);
    }
  });

  it('reports commit, export and cp as container events', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    await ok(daemon!, ['export', '-o', join(local, 'events-export.tar'), 'changed']);
    await ok(daemon!, ['cp', 'changed:/tmp/new', join(local, 'events-new.txt')]);
    await ok(daemon!, ['cp', join(local, 'events-new.txt'), 'changed:/tmp/events-back.txt']);
    await ok(daemon!, ['commit', '-m', 'for events', 'changed', 'events:1']);
    const until = Math.ceil(Date.now() / 1000) + 1;
    const events = await ok(daemon!, ['events', '--since', String(since), '--until', String(until), '--filter', 'container=changed', '--format', '{{.Action}}']);
    // --since has whole seconds here, so earlier tests' cp events may come first: look from the export on.
    const actions = events.trim().split('\n');
    assert.deepEqual(actions.slice(actions.lastIndexOf('export')), ['export', 'archive-path', 'extract-to-dir', 'commit']);
  });

  it("cp reports missing paths with docker's message", async () => {
    const r = await docker(daemon!, ['cp', 'changed:/nope', join(local, 'nope')]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Could not find the file \/nope in container changed/);
    const missing = await docker(daemon!, ['cp', 'nosuch:/etc', join(local, 'x')]);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /No such container: nosuch/);
  });

  it('archive endpoints: stat header in Go file-mode bits, PUT refuses climbing names and non-directories', async () => {
    const head = await api(daemon!, 'HEAD', '/containers/changed/archive?path=/tmp');
    assert.equal(head.status, 200);
    const stat = JSON.parse(Buffer.from(String(head.headers['x-docker-container-path-stat']), 'base64').toString()) as { name: string; mode: number; linkTarget: string };
    assert.equal(stat.name, 'tmp');
    assert.equal(stat.mode, 2 ** 31 + 2 ** 20 + 0o777);
    const link = await api(daemon!, 'HEAD', '/containers/changed/archive?path=/tmp/etclink');
    const linkStat = JSON.parse(Buffer.from(String(link.headers['x-docker-container-path-stat']), 'base64').toString()) as { mode: number; linkTarget: string };
    assert.equal(linkStat.mode, 2 ** 27 + 0o777);
    assert.equal(linkStat.linkTarget, '/etc');
    assert.equal((await api(daemon!, 'HEAD', '/containers/changed/archive?path=/nope')).status, 404);

    const climbing = await packEntries([{ header: { name: '../../escaped.txt', type: 'file', mode: 0o644 }, body: Buffer.from('x') }]);
    const refused = await api(daemon!, 'PUT', '/containers/changed/archive?path=/tmp', climbing);
    assert.equal(refused.status, 400, refused.body.toString());
    const onFile = await api(daemon!, 'PUT', '/containers/changed/archive?path=/tmp/new', await packEntries([{ header: { name: 'a', type: 'file', mode: 0o644 }, body: Buffer.from('a') }]));
    assert.equal(onFile.status, 400);
    assert.match(onFile.body.toString(), /extraction point is not a directory/);
    const dirOverFile = await api(daemon!, 'PUT', '/containers/changed/archive?path=/tmp&noOverwriteDirNonDir=true', await packEntries([{ header: { name: 'new', type: 'directory', mode: 0o755 } }]));
    assert.equal(dirOverFile.status, 400);
    assert.match(dirOverFile.body.toString(), /cannot overwrite non-directory/);
  });
});
