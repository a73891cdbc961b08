import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { type DockerClient, runCli } from '@tsengine/cli';
import { type CommandResult, type Daemon, docker, startDaemon, tsengine } from '../helpers/daemon.js';
import { busyboxArchive, busyboxRootfsTar, digestOf, layerTar } from '../helpers/images.js';

const PLUGINS = ['@tsengine/api-server', '@tsengine/system', '@tsengine/graphdriver-vfs', '@tsengine/images'];
const LONG_STEP = '/bin/sh -c #(nop) ADD file:0123456789abcdef0123456789abcdef0123456789abcdef in / ';

/**
 * A legacy docker-archive whose history has a long CREATED BY step and an empty (metadata) step,
 * created in 2020 so that "6 years ago" style columns stay the same between two runs.
 */
async function archiveWithHistory(repoTag: string): Promise<{ archive: Buffer; id: string }> {
  const layers = [await layerTar({ files: { 'etc/one': 'one' } }), await layerTar({ files: { 'etc/two': randomBytes(3000) } })];
  const created = '2020-01-01T00:00:00Z';
  const config = Buffer.from(
    JSON.stringify({
      architecture: process.arch === 'x64' ? 'amd64' : process.arch,
      os: 'linux',
      created,
      config: { Cmd: ['sh'] },
      rootfs: { type: 'layers', diff_ids: layers.map(digestOf) },
      history: [
        { created, created_by: LONG_STEP },
        { created, created_by: '/bin/sh -c #(nop)  ENV\tA=b', empty_layer: true },
        { created, created_by: 'second layer', comment: 'a comment' },
      ],
    }),
  );
  const id = digestOf(config);
  const files: Record<string, Buffer | string> = { [`${id.slice(7)}.json`]: config };
  const layerPaths = layers.map((layer, i) => {
    const path = `layer${i}/layer.tar`;
    files[path] = layer;
    return path;
  });
  files['manifest.json'] = JSON.stringify([{ Config: `${id.slice(7)}.json`, RepoTags: [repoTag], Layers: layerPaths }]);
  return { archive: await layerTar({ files }), id };
}

describe('tsengine image commands against a real daemon', () => {
  let daemon: Daemon;
  let work: string;
  let busyboxTar: Buffer;
  let busyboxId: string;

  const ours = (args: string[], input?: Buffer | string): Promise<CommandResult> => tsengine(args, { host: daemon, ...(input !== undefined ? { input } : {}) });
  const theirs = (args: string[], input?: Buffer | string): Promise<CommandResult> => docker(daemon, args, input !== undefined ? { input } : {});
  const ok = async (run: Promise<CommandResult>, what: string): Promise<string> => {
    const r = await run;
    assert.equal(r.status, 0, `${what} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'tsengine-cli-images-'));
    busyboxTar = await busyboxRootfsTar();
    await writeFile(join(work, 'busybox.tar'), busyboxTar);
    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'vfs' }, logLevel: 'info' });
  });
  after(async () => {
    await daemon?.stop();
    await rm(work, { recursive: true, force: true });
  });

  it('imports busybox from a file with -c and lists it with docker columns and docker IDs', async () => {
    const out = await ok(ours(['import', '-c', 'CMD ["sh"]', '-m', 'from the cli', join(work, 'busybox.tar'), 'busybox:latest']), 'tsengine import');
    busyboxId = out.trim();
    assert.match(busyboxId, /^sha256:[a-f0-9]{64}$/);
    const images = await ok(ours(['images']), 'tsengine images');
    assert.match(images, /^REPOSITORY {3}TAG {7}IMAGE ID {7}CREATED +SIZE\n/);
    assert.match(images, new RegExp(`^busybox {6}latest {4}${busyboxId.slice(7, 19)} {3}(Less than a second|\\d+ seconds?) ago {3,}\\d+(\\.\\d+)?MB$`, 'm'));
    assert.equal(await ok(ours(['images', '-q']), 'images -q'), await ok(theirs(['images', '-q']), 'docker images -q'));
    assert.equal(await ok(ours(['images', '-q', '--no-trunc']), 'images -q --no-trunc'), `${busyboxId}\n`);
    const inspect = JSON.parse(await ok(theirs(['image', 'inspect', 'busybox']), 'docker image inspect')) as Array<{ Config: { Cmd: string[] }; Comment: string }>;
    assert.deepEqual(inspect[0]!.Config.Cmd, ['sh']);
    assert.equal(inspect[0]!.Comment, 'from the cli');
    const format = ['images', '--format', '{{.Repository}}|{{.Tag}}|{{.ID}}|{{.Size}}|{{.VirtualSize}}'];
    assert.equal(await ok(ours(format), 'images --format'), await ok(theirs(format), 'docker images --format'));
    // CreatedSince may cross a second between the two runs; every other field must agree.
    const rows = async (run: Promise<CommandResult>) =>
      (await ok(run, 'images --format json'))
        .trim()
        .split('\n')
        .map((line) => ({ ...(JSON.parse(line) as object), CreatedSince: undefined }));
    assert.deepEqual(await rows(ours(['images', '--format', 'json'])), await rows(theirs(['images', '--format', 'json'])));
  });

  it('prints exactly what docker prints for an image loaded from an archive (fixed dates)', async () => {
    const { archive, id } = await archiveWithHistory('layered:1');
    const loaded = await ok(ours(['load'], archive), 'tsengine load');
    assert.equal(loaded, 'Loaded image: layered:1\n');
    for (const args of [
      ['images', 'layered'],
      ['images', '--digests', 'layered:1'],
      ['images', '--no-trunc', 'layered'],
      ['images', '--format', 'table {{.ID}}\t{{.Repository}}:{{.Tag}}\t{{.CreatedAt}}', 'layered'],
      ['history', 'layered:1'],
      ['history', '--no-trunc', 'layered:1'],
      ['history', '-q', 'layered:1'],
      ['history', '-H=false', 'layered:1'],
      ['image', 'history', '--format', '{{.ID}} {{.Size}} {{.CreatedBy}}', 'layered:1'],
      ['system', 'df'],
    ]) {
      assert.equal(await ok(ours(args), `tsengine ${args.join(' ')}`), await ok(theirs(args), `docker ${args.join(' ')}`), `tsengine ${args.join(' ')}`);
    }
    const history = (await ok(ours(['history', 'layered:1']), 'history')).split('\n').map((line) => line.split(/ {3,}/));
    assert.deepEqual(history[0], ['IMAGE', 'CREATED', 'CREATED BY', 'SIZE', 'COMMENT']);
    assert.deepEqual(history[1]!.slice(0, 3), [id.slice(7, 19), '6 years ago', 'second layer']);
    assert.match(history[1]![3]!, /^\d+(\.\d+)?kB$/);
    assert.equal(history[1]![4], 'a comment');
    assert.deepEqual(history[2], ['<missing>', '6 years ago', '/bin/sh -c #(nop)  ENV A=b', '0B', '']);
    assert.deepEqual(history[3]!.slice(0, 3), ['<missing>', '6 years ago', `${LONG_STEP.slice(0, 44)}…`]);
    const df = (await ok(ours(['system', 'df']), 'system df')).split('\n').map((line) => line.split(/ {3,}/));
    assert.deepEqual(df[0], ['TYPE', 'TOTAL', 'ACTIVE', 'SIZE', 'RECLAIMABLE']);
    assert.equal(df[1]![0], 'Images');
    assert.ok(Number(df[1]![1]) >= 1, 'the loaded image is counted');
    assert.match(df[1]![4]!, /^[\d.]+[kMG]?B \(100%\)$/);
    const untruncated = await ok(ours(['history', '--no-trunc', 'layered:1']), 'history --no-trunc');
    assert.ok(untruncated.includes(LONG_STEP), untruncated);
    assert.ok(untruncated.includes(id), untruncated);
  });

  it('inspects images as docker does, and reports missing ones with status 1', async () => {
    const mine = await ok(ours(['image', 'inspect', 'busybox', 'layered:1']), 'tsengine image inspect');
    const dockers = await ok(theirs(['image', 'inspect', 'busybox', 'layered:1']), 'docker image inspect');
    assert.deepEqual(JSON.parse(mine), JSON.parse(dockers));
    assert.equal(mine, dockers, 'pretty-printed with the same 4-space indent');
    assert.equal(await ok(ours(['image', 'inspect', '-f', '{{.Id}} {{json .Config.Cmd}}', 'busybox']), 'inspect -f'), `${busyboxId} ["sh"]\n`);
    const missing = await ours(['image', 'inspect', 'nosuch:1']);
    assert.equal(missing.status, 1);
    assert.equal(missing.stdout, '[]\n');
    assert.equal(missing.stderr, 'Error response from daemon: No such image: nosuch:1\n');
    const some = await ours(['image', 'inspect', '--format', '{{.Id}}', 'nosuch:1', 'busybox']);
    assert.equal(some.status, 1);
    assert.equal(some.stdout, `${busyboxId}\n`);
    assert.match(some.stderr, /No such image: nosuch:1/);
  });

  it('filters by reference, dangling and the REPOSITORY argument', async () => {
    const dangling = (await ok(ours(['import', '-'], await layerTar({ files: { dangling: randomBytes(8).toString('hex') } })), 'import -')).trim();
    const danglingRows = await ok(ours(['images', '--filter', 'dangling=true']), 'images -f dangling=true');
    assert.match(danglingRows, new RegExp(`^<none> {7}<none> {4}${dangling.slice(7, 19)} `, 'm'));
    assert.doesNotMatch(danglingRows, /busybox|layered/);
    assert.equal(await ok(ours(['images', '-q', '-f', 'dangling=true']), 'dangling -q'), await ok(theirs(['images', '-q', '-f', 'dangling=true']), 'docker dangling -q'));
    const notDangling = await ok(ours(['images', '-f', 'dangling=false']), 'dangling=false');
    assert.doesNotMatch(notDangling, /<none>/);
    assert.match(notDangling, /busybox/);
    const byReference = await ok(ours(['images', '--filter', 'reference=lay*']), 'reference filter');
    assert.match(byReference, /^layered {6}1 /m);
    assert.doesNotMatch(byReference, /busybox/);
    assert.equal(await ok(ours(['images', 'busybox:latest', '-q']), 'images busybox:latest'), `${busyboxId.slice(7, 19)}\n`);
    assert.equal(await ok(ours(['images', 'nosuch']), 'images nosuch'), 'REPOSITORY   TAG       IMAGE ID   CREATED   SIZE\n');
    const bad = await ours(['images', '-f', 'nonsense']);
    assert.equal(bad.status, 125, 'a malformed filter is a usage error, as in docker');
    assert.match(bad.stderr, /bad format of filter \(expected name=value\)/);
    const unknown = await ours(['images', '-f', 'bogus=1']);
    assert.equal(unknown.status, 1);
    assert.equal(unknown.stderr, "Error response from daemon: invalid filter 'bogus'\n");
  });

  it('tags an image so that images lists both names, and refuses bad targets', async () => {
    assert.equal(await ok(ours(['tag', 'busybox', 'localhost:5000/tools/bb:2']), 'tag'), '');
    assert.equal(await ok(ours(['image', 'tag', busyboxId.slice(7, 19), 'other']), 'image tag'), '');
    const rows = await ok(ours(['images', '--format', '{{.Repository}}:{{.Tag}} {{.ID}}']), 'images');
    for (const name of ['busybox:latest', 'localhost:5000/tools/bb:2', 'other:latest']) assert.ok(rows.includes(`${name} ${busyboxId.slice(7, 19)}\n`), rows);
    const viaDocker = await ok(theirs(['image', 'inspect', '-f', '{{json .RepoTags}}', 'busybox']), 'docker inspect');
    assert.deepEqual((JSON.parse(viaDocker) as string[]).sort(), ['busybox:latest', 'localhost:5000/tools/bb:2', 'other:latest']);
    const bad = await ours(['tag', 'busybox', 'Bad/Name']);
    assert.equal(bad.status, 1);
    assert.match(bad.stderr, /must be lowercase/);
    const missing = await ours(['tag', 'nosuch', 'x']);
    assert.equal(missing.status, 1);
    assert.equal(missing.stderr, 'Error response from daemon: No such image: nosuch:latest\n');
  });

  it('removes images with Untagged/Deleted lines and docker exit codes', async () => {
    const conflict = await ours(['rmi', busyboxId.slice(7, 19)]);
    assert.equal(conflict.status, 1);
    assert.match(conflict.stderr, /^Error response from daemon: conflict: unable to delete [a-f0-9]{12} \(must be forced\) - image is referenced in multiple repositories\n$/);
    const two = await ours(['rmi', 'other', 'nosuch:9', 'localhost:5000/tools/bb:2']);
    assert.equal(two.status, 1, 'one missing image fails the command');
    assert.equal(two.stdout, 'Untagged: other:latest\nUntagged: localhost:5000/tools/bb:2\n');
    assert.equal(two.stderr, 'Error response from daemon: No such image: nosuch:9\n');
    const forced = await ours(['rmi', '-f', 'nosuch:9']);
    assert.equal(forced.status, 0, 'with --force a missing image is only reported');
    assert.equal(forced.stderr, 'Error response from daemon: No such image: nosuch:9\n');
    const extra = (await ok(ours(['import', '-', 'scratchpad:1'], await layerTar({ files: { x: randomBytes(8).toString('hex') } })), 'import')).trim();
    // The image, then its layers (by chain ID), as dockerd reports them.
    const removed = await ok(ours(['image', 'rm', 'scratchpad:1']), 'image rm');
    assert.ok(removed.startsWith(`Untagged: scratchpad:1\nDeleted: ${extra}\n`), removed);
    assert.match(removed, /^(Untagged: \S+\n|Deleted: sha256:[a-f0-9]{64}\n)+$/);
    assert.doesNotMatch(await ok(theirs(['images']), 'docker images'), /scratchpad/);
  });

  it('round-trips save -o → rmi → load -i with the same ID, and trades archives with the docker CLI', async () => {
    const file = join(work, 'ours.tar');
    assert.equal(await ok(ours(['save', '-o', file, 'busybox']), 'save -o'), '');
    assert.ok((await readFile(file)).length > busyboxTar.length / 2);
    const removed = await ok(ours(['rmi', 'busybox']), 'rmi busybox');
    assert.ok(removed.startsWith(`Untagged: busybox:latest\nDeleted: ${busyboxId}\n`), removed);
    assert.equal(await ok(ours(['load', '-i', file]), 'load -i'), 'Loaded image: busybox:latest\n');
    assert.equal((await ok(ours(['image', 'inspect', '-f', '{{.Id}}', 'busybox']), 'inspect')).trim(), busyboxId);

    await ok(ours(['rmi', 'busybox']), 'rmi busybox');
    assert.match(await ok(theirs(['load', '-i', file]), 'docker load of our save'), /Loaded image: busybox:latest/);
    assert.equal((await ok(ours(['image', 'inspect', '-f', '{{.Id}}', 'busybox']), 'inspect')).trim(), busyboxId);

    const theirFile = join(work, 'theirs.tar');
    await ok(theirs(['save', '-o', theirFile, 'busybox', 'layered:1']), 'docker save');
    await ok(ours(['rmi', 'busybox', 'layered:1']), 'rmi both');
    const loaded = await ok(ours(['load', '-q'], await readFile(theirFile)), 'load of docker save from stdin');
    assert.match(loaded, /^Loaded image: busybox:latest$/m);
    assert.match(loaded, /^Loaded image: layered:1$/m);
    assert.equal((await ok(ours(['images', '-q', '--no-trunc', 'busybox']), 'images')).trim(), busyboxId);

    const piped = await ours(['save', 'busybox']);
    assert.equal(piped.status, 0, piped.stderr);
    assert.ok(piped.stdout.length > 0, 'save without -o streams the archive to a redirected stdout');
    const missing = await ours(['save', '-o', join(work, 'none.tar'), 'nosuch:1']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /No such image: nosuch:1/);
    assert.equal(existsSync(join(work, 'none.tar')), false, 'a failed save leaves no file behind');
  });

  it('reports load errors with status 1 and refuses URL imports', async () => {
    const garbage = await ours(['load'], 'this is not a tar archive\n');
    assert.equal(garbage.status, 1);
    assert.match(garbage.stderr, /\S/);
    const missingFile = await ours(['load', '-i', join(work, 'does-not-exist.tar')]);
    assert.equal(missingFile.status, 1);
    assert.match(missingFile.stderr, /no such file or directory/);
    const url = await ours(['import', 'http://example.com/rootfs.tar']);
    assert.equal(url.status, 1);
    assert.match(url.stderr, /importing from a URL is not supported/);
  });

  it('prunes a dangling image after a y answer or with -f, and keeps it on no', async () => {
    const declined = await ours(['image', 'prune'], 'n\n');
    assert.equal(declined.status, 0);
    assert.equal(declined.stdout, 'WARNING! This will remove all dangling images.\nAre you sure you want to continue? [y/N] ');
    assert.match(await ok(ours(['images', '-f', 'dangling=true']), 'images'), /<none>/);
    const dangling = (await ok(ours(['images', '-q', '--no-trunc', '-f', 'dangling=true']), 'dangling ids')).trim().split('\n');
    const pruned = await ok(ours(['image', 'prune', '-f']), 'image prune -f');
    assert.match(pruned, /^Deleted Images:\n(deleted: sha256:[a-f0-9]{64}\n)+\nTotal reclaimed space: \d+(\.\d+)?[kMG]?B\n$/);
    for (const id of dangling) assert.ok(pruned.includes(`\ndeleted: ${id}\n`), pruned);
    assert.doesNotMatch(await ok(theirs(['images']), 'docker images'), /<none>/);
    await ok(ours(['import', '-'], await layerTar({ files: { again: randomBytes(8).toString('hex') } })), 'import');
    const accepted = await ours(['image', 'prune'], 'y\n');
    assert.equal(accepted.status, 0, accepted.stderr);
    assert.match(accepted.stdout, /\[y\/N\] Deleted Images:\ndeleted: sha256:[a-f0-9]{64}\n/);
    assert.equal(await ok(ours(['image', 'prune', '-f']), 'nothing to prune'), 'Total reclaimed space: 0B\n');
  });

  it('checks argument counts like docker (status 1) and prints help with status 0', async () => {
    for (const [args, rule] of [
      [['rmi'], "'tsengine rmi' requires at least 1 argument"],
      [['image', 'inspect'], "'tsengine image inspect' requires at least 1 argument"],
      [['history'], "'tsengine history' requires 1 argument"],
      [['tag', 'a'], "'tsengine tag' requires 2 arguments"],
      [['images', 'a', 'b'], "'tsengine images' requires at most 1 argument"],
      [['load', 'x'], "'tsengine load' accepts no arguments"],
      [['save'], "'tsengine save' requires at least 1 argument"],
      [['import'], "'tsengine import' requires at least 1 argument"],
    ] as const) {
      const r = await ours([...args]);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.ok(r.stderr.includes(rule), r.stderr);
      assert.match(r.stderr, /See 'tsengine [a-z ]+ --help'/);
    }
    const badFlag = await ours(['images', '--no-such-flag']);
    assert.equal(badFlag.status, 125);
    for (const command of [['images'], ['image', 'ls'], ['image', 'inspect'], ['history'], ['image', 'history'], ['tag'], ['rmi'], ['image', 'rm'], ['import'], ['load'], ['save'], ['image', 'prune'], ['image']]) {
      const help = await tsengine([...command, '--help']);
      assert.equal(help.status, 0, `${command.join(' ')} --help: ${help.stderr}`);
      assert.match(help.stdout, new RegExp(`^Usage: tsengine ${command.join(' ')}`));
    }
  });
});

describe('tsengine image commands without a daemon', () => {
  it('fails with the connection message and status 1', async () => {
    const r = await tsengine(['images'], { host: 'unix:///nonexistent/tsengine.sock' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /Cannot connect to the tsengine daemon at unix:\/\/\/nonexistent\/tsengine.sock/);
  });
});

// The busybox docker-archive fixture also loads through our CLI (one layer, Cmd sh).
describe('tsengine load of the busybox archive fixture', () => {
  let daemon: Daemon;
  before(async () => {
    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'vfs' }, logLevel: 'info' });
  });
  after(async () => {
    await daemon?.stop();
  });

  it('loads it with the fixture ID', async () => {
    const { archive, image } = await busyboxArchive({ repoTags: ['bbfixture:1'] });
    const r = await tsengine(['load'], { host: daemon, input: archive });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'Loaded image: bbfixture:1\n');
    const id = await tsengine(['images', '-q', '--no-trunc', 'bbfixture'], { host: daemon });
    assert.equal(id.stdout.trim(), image.id);
  });
});

// No daemon of ours reports a failure inside a load stream yet (errors come before the first byte),
// so this one case is served by a client that answers with dockerd's in-stream error line.
describe('tsengine load with an error inside the JSON stream', () => {
  let work: string;
  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'tsengine-cli-load-'));
  });
  after(async () => {
    await rm(work, { recursive: true, force: true });
  });

  it('prints what came before, then the error, and exits 1', async () => {
    const file = join(work, 'image.tar');
    await writeFile(file, 'tar bytes');
    const lines = ['{"stream":"Loaded image: first:1\\n"}', '{"errorDetail":{"message":"disk full"},"error":"disk full"}'];
    let sentBody = '';
    const client: DockerClient = {
      host: 'unix:///fake.sock',
      request: () => Promise.reject(new Error('unexpected request')),
      hijack: () => Promise.reject(new Error('unexpected hijack')),
      async stream(method, path, options) {
        assert.equal(method, 'POST');
        assert.equal(path, '/images/load');
        assert.deepEqual(options?.query, { quiet: true });
        for await (const chunk of options!.body as Readable) sentBody += String(chunk);
        return { status: 200, headers: {}, body: Readable.from(lines.map((l) => l + '\n')) };
      },
    };
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c: Buffer) => (out += c.toString()));
    stderr.on('data', (c: Buffer) => (err += c.toString()));
    const code = await runCli(['node', 'tsengine', 'load', '-i', file], { stdout, stderr, clientFactory: () => client });
    assert.equal(code, 1);
    assert.equal(sentBody, 'tar bytes');
    assert.equal(out, 'Loaded image: first:1\n');
    assert.equal(err, 'disk full\n');
  });
});
