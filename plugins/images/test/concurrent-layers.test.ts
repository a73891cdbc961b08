import assert from 'node:assert/strict';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough, Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { type BootedEngine, type PluginDefinition, ImageServiceCapability, bootEngine } from '@tsengine/core';
import pino from 'pino';
import imagesPlugin, { type LocalImageService, chainIds } from '../src/index.js';
import { digestOf, imageConfigFor, layerTar } from '@tsengine/test';

const logger = pino({ level: 'silent' });
const DEADLINE_MS = 20_000;

async function boot(dataRoot: string): Promise<BootedEngine> {
  const driver = 'overlay';
  const mod = (await import(`@tsengine/graphdriver-${driver}`)) as { default: { default?: PluginDefinition<unknown> } & PluginDefinition<unknown> };
  const overlay = mod.default.default ?? mod.default;
  const booted = await bootEngine({
    config: { source: 'test', baseDir: dataRoot, plugins: [{ ref: overlay.name, options: undefined }, { ref: '@tsengine/images', options: undefined }], selections: new Map([['graphdriver', 'overlay']]), daemon: {} },
    settings: { dataRoot, execRoot: join(dataRoot, 'run'), hosts: [], logLevel: 'silent', pidfile: join(dataRoot, 'pid'), version: 'test' },
    logger,
    builtins: new Map<string, PluginDefinition<unknown>>([
      [overlay.name, overlay],
      ['@tsengine/images', imagesPlugin as PluginDefinition<unknown>],
    ]),
  });
  const failed = booted.plugins.filter((p) => p.state !== 'loaded');
  if (failed.length) throw new Error(`plugins not loaded: ${failed.map((p) => `${p.name}: ${p.reason}`).join('; ')}`);
  return booted;
}

/**
 * A layer stream that sends nothing until `release` is called (or the deadline passes, so a sequential
 * apply cannot hang the test). Like a download, it can be destroyed while it waits.
 */
function gated(data: Buffer): { stream: Readable; release: () => void; ended: Promise<void> } {
  const stream = new PassThrough();
  let released = false;
  const release = () => {
    if (released || stream.destroyed) return;
    released = true;
    for (let offset = 0; offset < data.length; offset += 4096) stream.write(data.subarray(offset, offset + 4096));
    stream.end();
  };
  setTimeout(release, DEADLINE_MS).unref();
  const ended = new Promise<void>((resolve) => stream.once('close', () => resolve()));
  return { stream, release, ended };
}

describe('layers applied concurrently (overlay)', () => {
  let dataRoot: string;
  let booted: BootedEngine;
  const service = () => booted.container.resolve(ImageServiceCapability.token) as unknown as LocalImageService;
  const layerdb = () => join(dataRoot, 'image', 'overlay', 'layerdb', 'sha256');
  const records = async () => (await readdir(layerdb())).filter((n) => n.endsWith('.json')).sort();
  const driverDirs = async () => (await readdir(join(dataRoot, 'overlay2'))).filter((n) => /^[a-f0-9]{64}$/.test(n)).sort();

  before(async () => {
    dataRoot = await mkdtemp(join(tmpdir(), 'tsengine-images-concurrent-'));
    booted = await boot(dataRoot);
  });
  after(async () => {
    await booted?.engine.shutdown(5000);
    await rm(dataRoot, { recursive: true, force: true });
  });

  it('applies several layers of one image at once and registers every one, in chain order', async () => {
    const tars = await Promise.all([0, 1, 2, 3].map((i) => layerTar({ files: { [`layer${i}/file`]: `content ${i}`, shared: `from ${i}` } })));
    const { configBytes, diffIds } = imageConfigFor(tars);
    const streams = tars.map(gated);
    const opened: number[] = [];
    const applied: number[] = [];
    let secondOpenedBeforeFirstEnded = false;
    const id = await service().registerImage(
      configBytes,
      async (index) => {
        opened.push(index);
        // Layer 0 sends its bytes only once layer 1 was asked for: proof that they overlap.
        if (index === 1) {
          secondOpenedBeforeFirstEnded = !streams[0]!.stream.readableEnded;
          streams[0]!.release();
        }
        if (index !== 0) streams[index]!.release();
        return streams[index]!.stream;
      },
      (index, state) => {
        assert.equal(state, 'applied');
        applied.push(index);
      },
    );
    assert.equal(id, digestOf(configBytes));
    assert.ok(secondOpenedBeforeFirstEnded, 'layer 1 was opened while layer 0 was still being applied');
    assert.deepEqual([...opened].sort(), [0, 1, 2, 3]);
    assert.deepEqual([...applied].sort(), [0, 1, 2, 3]);

    const chain = chainIds(diffIds);
    const resolved = await service().resolve(id);
    assert.deepEqual(resolved.chain, chain);
    for (const [index, chainId] of chain.entries()) {
      const record = JSON.parse(await readFile(join(layerdb(), `${chainId.slice(7)}.json`), 'utf8')) as { state: string; parent: string | null; diffId: string };
      assert.equal(record.state, 'complete');
      assert.equal(record.diffId, diffIds[index]);
      assert.equal(record.parent, index === 0 ? null : chain[index - 1]);
    }
    const root = await service().driver.get(resolved.topLayer!);
    try {
      for (let i = 0; i < 4; i++) assert.equal(await readFile(join(root, `layer${i}/file`), 'utf8'), `content ${i}`);
      assert.equal(await readFile(join(root, 'shared'), 'utf8'), 'from 3', 'the top layer wins, as the chain order says');
    } finally {
      await service().driver.put(resolved.topLayer!);
    }
    // Every layer's tar comes back byte for byte.
    for (const [index, chainId] of chain.entries()) {
      const chunks: Buffer[] = [];
      for await (const chunk of await service().layerTar(chainId)) chunks.push(chunk as Buffer);
      assert.equal(digestOf(Buffer.concat(chunks)), diffIds[index]);
    }
    await booted.engine.run('image.remove', { name: id });
  });

  it('a failing layer stops the others and leaves nothing registered', async () => {
    const recordsBefore = await records();
    const dirsBefore = await driverDirs();
    const tars = await Promise.all([0, 1, 2, 3].map((i) => layerTar({ files: { [`fail${i}`]: Buffer.alloc(256 * 1024, i) } })));
    // Layer 2's config digest is wrong; layer 3 waits until the failure has happened.
    const diffIds = tars.map(digestOf);
    diffIds[2] = digestOf(Buffer.from('something else'));
    const { configBytes } = imageConfigFor(tars, { diffIds });
    const last = gated(tars[3]!);
    const registering = service().registerImage(configBytes, async (index) => {
      if (index === 3) return last.stream;
      return Readable.from([tars[index]!]);
    });
    await assert.rejects(registering, /digest mismatch/);
    last.release();
    assert.deepEqual(await records(), recordsBefore, 'no layer record is left behind');
    assert.deepEqual(await driverDirs(), dirsBefore, 'no driver layer is left behind');
    assert.deepEqual(service().layers.all().filter((l) => !recordsBefore.includes(`${l.chainId.slice(7)}.json`)), []);
    await assert.rejects(service().resolve(digestOf(configBytes)), /No such image/);
  });

  it('a download error in a lower layer wins over the layers it stopped', async () => {
    const recordsBefore = await records();
    const tars = await Promise.all([0, 1, 2].map((i) => layerTar({ files: { [`err${i}`]: `e${i}` } })));
    const { configBytes } = imageConfigFor(tars);
    const upper = [gated(tars[1]!), gated(tars[2]!)];
    const registering = service().registerImage(configBytes, async (index) => {
      if (index === 0) {
        return new Readable({
          read() {
            this.destroy(new Error('connection reset by the registry'));
          },
        });
      }
      return upper[index - 1]!.stream;
    });
    await assert.rejects(registering, /connection reset by the registry/);
    for (const u of upper) u.release();
    assert.deepEqual(await records(), recordsBefore);
  });

  it('two registrations of the same image at once share its layers', async () => {
    const tars = await Promise.all([0, 1, 2].map((i) => layerTar({ files: { [`twin${i}`]: `t${i}` } })));
    const { configBytes, diffIds } = imageConfigFor(tars);
    const states: string[] = [];
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        service().registerImage(
          configBytes,
          async (index) => Readable.from([tars[index]!]),
          (_index, state) => states.push(state),
        ),
      ),
    );
    assert.equal(a, b);
    assert.equal(states.filter((s) => s === 'applied').length, 3, 'each layer was applied once');
    assert.equal(states.filter((s) => s === 'exists').length, 3);
    for (const chainId of chainIds(diffIds)) assert.equal(service().layers.get(chainId)?.state, 'complete');
    await booted.engine.run('image.remove', { name: a });
  });
});
