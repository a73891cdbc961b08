import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { type BootedEngine, type GraphDriver, GraphDriverCapability, ImageServiceCapability, type ImageService, type PluginDefinition, bootEngine, errorKind } from '@tsengine/core';
import pino from 'pino';
import imagesPlugin, { familiarString, parseNormalized, parseTagged } from '../src/index.js';
import { digestOf, imageArchive, layerTar, makeImageArchive, readTar } from '@tsengine/test';

const logger = pino({ level: 'silent' });

async function loadDriverPlugin(name: string): Promise<PluginDefinition<unknown>> {
  const mod = (await import(`@tsengine/graphdriver-${name}`)) as { default: { default?: PluginDefinition<unknown> } & PluginDefinition<unknown> };
  return mod.default.default ?? mod.default;
}

async function boot(dataRoot: string, driver = 'vfs'): Promise<BootedEngine> {
  const driverPlugin = await loadDriverPlugin(driver);
  const builtins = new Map<string, PluginDefinition<unknown>>([
    [driverPlugin.name, driverPlugin],
    ['@tsengine/images', imagesPlugin as PluginDefinition<unknown>],
  ]);
  const booted = await bootEngine({
    config: { source: 'test', baseDir: dataRoot, plugins: [{ ref: driverPlugin.name, options: undefined }, { ref: '@tsengine/images', options: undefined }], selections: new Map([['graphdriver', driver]]), daemon: {} },
    settings: { dataRoot, execRoot: join(dataRoot, 'run'), hosts: [], logLevel: 'silent', pidfile: join(dataRoot, 'pid'), version: 'test' },
    logger,
    builtins,
  });
  const failed = booted.plugins.filter((p) => p.state !== 'loaded');
  if (failed.length) throw new Error(`plugins not loaded: ${failed.map((p) => `${p.name}: ${p.reason}`).join('; ')}`);
  return booted;
}

function stdinOf(data: Buffer): Readable {
  return Readable.from([data]);
}

function collect(): { stream: PassThrough; text: () => string; buffer: () => Buffer } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8'), buffer: () => Buffer.concat(chunks) };
}

describe('references', () => {
  it('normalises names like Docker', () => {
    assert.equal(familiarString(parseTagged('busybox')), 'busybox:latest');
    assert.deepEqual(parseTagged('busybox'), { name: 'docker.io/library/busybox', tag: 'latest' });
    assert.deepEqual(parseTagged('user/repo'), { name: 'docker.io/user/repo', tag: 'latest' });
    assert.deepEqual(parseTagged('localhost:5000/x:tag'), { name: 'localhost:5000/x', tag: 'tag' });
    const digest = 'sha256:' + 'a'.repeat(64);
    assert.deepEqual(parseNormalized(`127.0.0.1:5000/a/b@${digest}`), { name: '127.0.0.1:5000/a/b', digest });
    assert.equal(familiarString(parseTagged('docker.io/library/busybox:1')), 'busybox:1');
  });

  it('rejects bad references with Docker messages', () => {
    assert.throws(() => parseNormalized('Busybox'), /invalid reference format: repository name \(library\/Busybox\) must be lowercase$/);
    assert.throws(() => parseNormalized('busy box'), /invalid reference format$/);
    assert.throws(() => parseNormalized('a:b:c'), /invalid reference format/);
    assert.throws(() => parseNormalized('a'.repeat(64)), /cannot specify 64-byte hexadecimal strings/);
  });
});

describe('images plugin (vfs)', () => {
  let dataRoot: string;
  let booted: BootedEngine;

  before(async () => {
    dataRoot = await mkdtemp(join(tmpdir(), 'tsengine-images-'));
    booted = await boot(dataRoot);
  });
  after(async () => {
    await booted?.engine.shutdown(5000);
    await rm(dataRoot, { recursive: true, force: true });
  });

  const engine = () => booted.engine;
  const driver = () => booted.container.resolve<GraphDriver>(GraphDriverCapability.token);
  const service = () => booted.container.resolve<ImageService>(ImageServiceCapability.token);

  /** The driver directory of a layer, from its record. */
  async function cacheIdOf(chainId: string): Promise<string> {
    return (JSON.parse(await readFile(join(dataRoot, 'image', 'vfs', 'layerdb', 'sha256', `${chainId.slice(7)}.json`), 'utf8')) as { cacheId: string }).cacheId;
  }

  async function importTar(data: Buffer, input: { repo?: string; changes?: string[]; message?: string } = {}): Promise<string> {
    const { id } = await engine().run('image.import', input, { stdin: stdinOf(data) });
    return id;
  }

  it('imports a rootfs tar with changes and lists, inspects and shows its history', async () => {
    const tarball = await layerTar({ files: { 'bin/hello': 'hi', 'etc/motd': 'welcome' } });
    const id = await importTar(tarball, { repo: 'imp:1', changes: ['CMD ["sh"]', 'ENV A=1 B="two words"', 'WORKDIR /srv', 'EXPOSE 80', 'LABEL x=y', 'USER nobody', 'VOLUME /data', 'STOPSIGNAL SIGKILL'] });
    assert.match(id, /^sha256:[a-f0-9]{64}$/);
    const list = await engine().run('image.list', {});
    const item = list.find((i) => i.Id === id);
    assert.ok(item);
    assert.deepEqual(item.RepoTags, ['imp:1']);
    assert.ok(item.Size > 0);
    const info = await engine().run('image.inspect', { name: 'imp:1' });
    assert.equal(info.Id, id);
    assert.deepEqual(info.Config.Cmd, ['sh']);
    assert.deepEqual(info.Config.Env, ['A=1', 'B=two words']);
    assert.equal(info.Config.WorkingDir, '/srv');
    assert.deepEqual(info.Config.ExposedPorts, { '80/tcp': {} });
    assert.deepEqual(info.Config.Labels, { x: 'y' });
    assert.equal(info.Config.User, 'nobody');
    assert.equal(info.Config.StopSignal, 'SIGKILL');
    assert.equal(info.Comment, 'Imported from -');
    assert.deepEqual(info.RootFS.Layers, [digestOf(tarball)]);
    const hist = await engine().run('image.history', { name: id.slice(7, 19) });
    assert.equal(hist.length, 1);
    assert.equal(hist[0]!.Comment, 'Imported from -');
    assert.deepEqual(hist[0]!.Tags, ['imp:1']);
    // The layer's files are in the driver under the cache ID its record names.
    const cacheId = await cacheIdOf(digestOf(tarball));
    const path = await driver().get(cacheId);
    try {
      assert.equal(await readFile(join(path, 'etc/motd'), 'utf8'), 'welcome');
    } finally {
      await driver().put(cacheId);
    }
  });

  it('rejects an unknown change command and a bad repository name', async () => {
    const tarball = await layerTar({ files: { a: 'a' } });
    await assert.rejects(importTar(tarball, { changes: ['RUN echo'] }), /RUN is not a valid change command/);
    await assert.rejects(importTar(tarball, { repo: 'Bad' }), /must be lowercase/);
  });

  it('tags, untags one of several tags, refuses rmi by ID with several repos, then forces it and drops its layers', async () => {
    const tarball = await layerTar({ files: { 'rmi-test': 'x' } });
    const id = await importTar(tarball, { repo: 'first:1' });
    await engine().run('image.tag', { source: 'first:1', repo: 'docker.io/library/second', tag: 't2' });
    await engine().run('image.tag', { source: id, repo: 'localhost:5000/third:3' });
    assert.deepEqual((await engine().run('image.inspect', { name: id })).RepoTags.sort(), ['first:1', 'localhost:5000/third:3', 'second:t2']);
    assert.deepEqual(await engine().run('image.remove', { name: 'second:t2' }), [{ Untagged: 'second:t2' }]);
    await assert.rejects(engine().run('image.remove', { name: id.slice(7, 19) }), (err: Error) => {
      assert.equal(err.message, `conflict: unable to delete ${id.slice(7, 19)} (must be forced) - image is referenced in multiple repositories`);
      assert.equal(errorKind(err), 'conflict');
      return true;
    });
    const cacheId = await cacheIdOf(digestOf(tarball));
    assert.equal(await driver().exists(cacheId), true);
    const result = await engine().run('image.remove', { name: id.slice(7, 19), force: true });
    assert.deepEqual(result, [{ Untagged: 'first:1' }, { Untagged: 'localhost:5000/third:3' }, { Deleted: id }, { Deleted: digestOf(tarball) }]);
    assert.equal(await driver().exists(cacheId), false);
    await assert.rejects(engine().run('image.inspect', { name: id }), /No such image/);
    // Made again, the layer gets a directory of a new name (random, like Docker's cache IDs).
    await importTar(tarball, { repo: 'first:again' });
    const again = await cacheIdOf(digestOf(tarball));
    assert.match(again, /^[0-9a-f]{64}$/);
    assert.notEqual(again, cacheId);
    assert.equal(await driver().exists(again), true);
    await engine().run('image.remove', { name: 'first:again' });
  });

  it('refuses to delete an image a container uses, unless forced for a stopped one', async () => {
    const users = new Map<string, Array<{ kind: string; id: string; running: boolean }>>();
    service().addUsageChecker(async (imageId) => users.get(imageId) ?? []);
    const tarball = await layerTar({ files: { used: 'yes' } });
    const id = await importTar(tarball, { repo: 'used:1' });
    users.set(id, [{ kind: 'container', id: 'c'.repeat(64), running: true }]);
    await assert.rejects(engine().run('image.remove', { name: 'used:1' }), /unable to remove repository reference "used:1" \(must force\) - container cccccccccccc is using its referenced image/);
    await assert.rejects(engine().run('image.remove', { name: id, force: true }), /\(cannot be forced\) - image is being used by running container cccccccccccc/);
    users.set(id, [{ kind: 'container', id: 'd'.repeat(64), running: false }]);
    await assert.rejects(engine().run('image.remove', { name: id }), /\(must be forced\) - image is being used by stopped container dddddddddddd/);
    const result = await engine().run('image.remove', { name: id, force: true });
    assert.deepEqual(result.slice(0, 2), [{ Untagged: 'used:1' }, { Deleted: id }]);
    users.delete(id);
  });

  it('keeps layers a holder retains after the image is deleted', async () => {
    const tarball = await layerTar({ files: { held: 'yes' } });
    const id = await importTar(tarball, { repo: 'held:1' });
    const resolved = await engine().run('image.resolve', { name: 'held:1' });
    assert.equal(resolved.id, id);
    assert.equal(resolved.topLayer, await cacheIdOf(digestOf(tarball)));
    await service().retainLayer(resolved.chain[0]!, 'container-1');
    const result = await engine().run('image.remove', { name: 'held:1' });
    assert.deepEqual(result, [{ Untagged: 'held:1' }, { Deleted: id }]);
    assert.equal(await driver().exists(resolved.topLayer!), true);
    await service().releaseLayers('container-1');
    assert.equal(await driver().exists(resolved.topLayer!), false);
  });

  for (const layout of ['blobs', 'legacy', 'oci'] as const) {
    it(`loads a multi-layer image with whiteouts (${layout} layout) and reuses shared layers`, async () => {
      const { archive, image } = await makeImageArchive(
        [{ files: { 'a/keep': 'keep', 'a/gone': 'bye', 'b/x': 'x', 'c/old': 'old' } }, { deletes: ['a/gone'], opaque: ['c'], files: { 'c/new': 'new' } }, { files: { 'top.txt': layout } }],
        { repoTags: [`multi-${layout}:1`], layout, gzipLayers: layout === 'oci' },
      );
      const out = collect();
      const result = await engine().run('image.load', { quiet: false }, { stdin: stdinOf(archive), stdout: out.stream });
      assert.deepEqual(result.loaded, [`multi-${layout}:1`]);
      assert.match(out.text(), /"status":"Loading layer"/);
      assert.match(out.text(), new RegExp(`\\{"stream":"Loaded image: multi-${layout}:1\\\\n"\\}`));
      const info = await engine().run('image.inspect', { name: `multi-${layout}:1` });
      assert.equal(info.Id, image.id);
      assert.deepEqual(info.RootFS.Layers, image.diffIds);
      const resolved = await engine().run('image.resolve', { name: image.id });
      const root = await driver().get(resolved.topLayer!);
      try {
        assert.equal(await readFile(join(root, 'a/keep'), 'utf8'), 'keep');
        assert.equal(existsSync(join(root, 'a/gone')), false);
        assert.equal(existsSync(join(root, 'c/old')), false);
        assert.equal(await readFile(join(root, 'c/new'), 'utf8'), 'new');
        assert.equal(await readFile(join(root, 'top.txt'), 'utf8'), layout);
      } finally {
        await driver().put(resolved.topLayer!);
      }
    });
  }

  it('saves images to a docker-archive with OCI index, and loads them back with the same IDs', async () => {
    const { archive, image } = await makeImageArchive([{ files: { 'etc/one': '1' } }, { files: { 'etc/two': '2' }, deletes: ['etc/one'] }], { repoTags: ['roundtrip:1'] });
    await engine().run('image.load', { quiet: true }, { stdin: stdinOf(archive) });
    await engine().run('image.tag', { source: 'roundtrip:1', repo: 'roundtrip', tag: '2' });
    const out = collect();
    await engine().run('image.save', { names: ['roundtrip:1', 'roundtrip:2'] }, { stdout: out.stream });
    const files = await readTar(out.buffer());
    const manifest = JSON.parse(files.get('manifest.json')!.toString()) as Array<{ Config: string; RepoTags: string[]; Layers: string[] }>;
    assert.equal(manifest.length, 1);
    assert.deepEqual(manifest[0]!.RepoTags, ['roundtrip:1', 'roundtrip:2']);
    assert.equal(digestOf(files.get(manifest[0]!.Config)!), image.id);
    for (const [i, layer] of manifest[0]!.Layers.entries()) assert.equal(digestOf(files.get(layer)!), image.diffIds[i]);
    assert.ok(files.has('index.json') && files.has('oci-layout'));
    await engine().run('image.remove', { name: 'roundtrip:1' });
    await engine().run('image.remove', { name: 'roundtrip:2' });
    await assert.rejects(engine().run('image.inspect', { name: image.id }), /No such image/);
    const loadOut = collect();
    await engine().run('image.load', { quiet: true }, { stdin: stdinOf(out.buffer()), stdout: loadOut.stream });
    assert.equal(loadOut.text(), '{"stream":"Loaded image: roundtrip:1\\n"}\n{"stream":"Loaded image: roundtrip:2\\n"}\n');
    assert.equal((await engine().run('image.inspect', { name: 'roundtrip:2' })).Id, image.id);
  });

  it('rejects hostile layers and registers nothing', async () => {
    const before = await readdir(join(dataRoot, 'image', 'vfs', 'layerdb', 'sha256'));
    const escape = await layerTar({ raw: [{ header: { name: '../escape', type: 'file', size: 3, mode: 0o644 }, body: Buffer.from('bad') }] });
    const through = await layerTar({ files: { link: { symlink: '/tmp' } }, raw: [{ header: { name: 'link/pwned', type: 'file', size: 3, mode: 0o644 }, body: Buffer.from('bad') }] });
    for (const [name, layer] of [['escape', escape], ['symlink', through]] as const) {
      const { archive, image } = await imageArchive([await layerTar({ files: { base: 'ok' } }), layer], { repoTags: [`hostile-${name}:1`] });
      await assert.rejects(engine().run('image.load', {}, { stdin: stdinOf(archive) }), (err: Error) => {
        assert.notEqual(errorKind(err), 'system', `expected a clear rejection, got: ${err.message}`);
        return true;
      });
      await assert.rejects(engine().run('image.inspect', { name: `hostile-${name}:1` }), /No such image/);
      await assert.rejects(engine().run('image.inspect', { name: image.id }), /No such image/);
    }
    assert.equal(existsSync('/tmp/pwned'), false);
    assert.equal(existsSync(join(dataRoot, 'image', 'vfs', 'escape')), false);
    assert.deepEqual((await readdir(join(dataRoot, 'image', 'vfs', 'layerdb', 'sha256'))).sort(), before.sort());
  });

  it('rejects a layer whose digest does not match the config', async () => {
    const layer = await layerTar({ files: { f: 'f' } });
    const { archive } = await imageArchive([layer], { repoTags: ['mismatch:1'], diffIds: [digestOf(Buffer.from('other'))] });
    await assert.rejects(engine().run('image.load', {}, { stdin: stdinOf(archive) }), /digest mismatch/);
    await assert.rejects(engine().run('image.inspect', { name: 'mismatch:1' }), /No such image/);
  });

  it('prunes dangling images and reports reclaimed space', async () => {
    const a = await importTar(await layerTar({ files: { p: 'dangling' } }));
    const b = await importTar(await layerTar({ files: { p: 'tagged' } }), { repo: 'keepme:1' });
    const dangling = await engine().run('image.list', { filters: { dangling: { true: true } } });
    assert.ok(dangling.some((i) => i.Id === a && i.RepoTags?.[0] === '<none>:<none>'));
    assert.ok(!dangling.some((i) => i.Id === b));
    const result = await engine().run('image.prune', { filters: { dangling: ['true'] } });
    assert.ok(result.ImagesDeleted?.some((d) => 'Deleted' in d && d.Deleted === a));
    assert.ok(result.SpaceReclaimed > 0);
    assert.ok((await engine().run('image.list', {})).some((i) => i.Id === b));
    const df = await engine().run('image.df', {});
    assert.ok(df.LayersSize > 0);
    assert.ok(df.Images.some((i) => i.Id === b && i.Containers === 0));
  });

  it('builds a child image on a parent (commit-style) and protects the parent', async () => {
    const parent = await importTar(await layerTar({ files: { base: 'b' } }), { repo: 'parent:1' });
    const child = await service().createImage({
      parent: 'parent:1',
      layer: Readable.from([await layerTar({ files: { added: 'a' } })]),
      config: { Cmd: ['true'] },
      history: { created_by: '/bin/sh -c touch added' },
      tags: ['child:1'],
    });
    const hist = await engine().run('image.history', { name: 'child:1' });
    assert.equal(hist.length, 2);
    assert.equal(hist[0]!.Id, child);
    assert.equal(hist[1]!.Id, parent);
    assert.equal((await engine().run('image.inspect', { name: child })).Parent, parent);
    await assert.rejects(engine().run('image.remove', { name: parent, force: true }), /cannot be forced\) - image has dependent child images/);
    const ambiguous = await engine().run('image.list', { filters: { reference: { 'child*': true } } });
    assert.deepEqual(ambiguous.map((i) => i.Id), [child]);
  });

  it('keeps the record of a failed layer whose directory would not go, and removes that directory when it makes the layer again', async () => {
    const layer = await layerTar({ files: { stuck: 'yes' } });
    const wrong = digestOf(Buffer.from('not this layer'));
    const { archive } = await imageArchive([layer], { repoTags: ['stuck:1'], diffIds: [wrong] });
    const recordFile = join(dataRoot, 'image', 'vfs', 'layerdb', 'sha256', `${wrong.slice(7)}.json`);
    const graph = driver();
    const remove = graph.remove.bind(graph);
    graph.remove = () => Promise.reject(new Error('device or resource busy'));
    try {
      await assert.rejects(engine().run('image.load', {}, { stdin: stdinOf(archive) }), /digest mismatch/);
    } finally {
      graph.remove = remove;
    }
    const left = JSON.parse(await readFile(recordFile, 'utf8')) as { state: string; cacheId: string };
    assert.equal(left.state, 'incomplete');
    assert.equal(await graph.exists(left.cacheId), true);
    // Made again (and failing again), the layer first takes away what its record names.
    await assert.rejects(engine().run('image.load', {}, { stdin: stdinOf(archive) }), /digest mismatch/);
    assert.equal(await graph.exists(left.cacheId), false);
    assert.equal(existsSync(recordFile), false);
  });

  it('restores its state after a restart and discards a crash-incomplete layer', async () => {
    const id = await importTar(await layerTar({ files: { survive: 'yes' } }), { repo: 'survivor:1' });
    // A crash mid-apply: an incomplete record and a half-written driver layer.
    const fake = 'f'.repeat(64);
    await driver().create(fake, null);
    await writeFile(join(dataRoot, 'image', 'vfs', 'layerdb', 'sha256', `${fake}.json`), JSON.stringify({ chainId: `sha256:${fake}`, diffId: `sha256:${fake}`, parent: null, size: 0, cacheId: fake, state: 'incomplete' }));
    await booted.engine.shutdown(5000);
    booted = await boot(dataRoot);
    assert.equal((await engine().run('image.inspect', { name: 'survivor:1' })).Id, id);
    assert.equal(await driver().exists(fake), false);
    assert.equal(existsSync(join(dataRoot, 'image', 'vfs', 'layerdb', 'sha256', `${fake}.json`)), false);
  });
});
