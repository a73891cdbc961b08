import { type Figure, findPeer, postBody, printFigures, pseudoRandom, request } from './harness.js';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { type PluginDefinition, bootEngine } from '@tsengine/core';
import overlayPlugin from '@tsengine/graphdriver-overlay';
import vfsPlugin from '@tsengine/graphdriver-vfs';
import imagesPlugin from '@tsengine/images';
import { imageArchive, layerTar } from '@tsengine/test';
import pino from 'pino';

const MB = 1024 * 1024;

/** A layer of `files` files of 1 MB each. */
async function layer(seed: string, files: number): Promise<Buffer> {
  const spec: Record<string, Buffer> = {};
  for (let i = 0; i < files; i++) spec[`${seed}/f${i}`] = pseudoRandom(MB, `${seed}-${i}`);
  return layerTar({ files: spec });
}

/**
 * Import of a 200 MB rootfs tar and load of a 200 MB 4-layer image, with each graph driver; with
 * dockerd reachable, the same bytes loaded and imported through its API.
 */
export async function benchImages(): Promise<void> {
  const layers = [];
  for (let i = 0; i < 4; i++) layers.push(await layer(`l${i}`, 50));
  const { archive } = await imageArchive(layers, { repoTags: ['bench:1'] });
  const rootfs = await layer('rootfs', 200);
  const peer = await findPeer();
  const peerMs = peer ? await timePeer(peer, archive, rootfs) : undefined;
  for (const driverPlugin of [overlayPlugin, vfsPlugin] as Array<PluginDefinition<unknown>>) {
    const dataRoot = await mkdtemp(join(tmpdir(), 'tsengine-bench-images-'));
    const driverName = driverPlugin.name.replace('@tsengine/graphdriver-', '');
    try {
      const { engine } = await bootEngine({
        config: { source: 'bench', baseDir: dataRoot, plugins: [{ ref: driverPlugin.name, options: undefined }, { ref: '@tsengine/images', options: undefined }], selections: new Map([['graphdriver', driverName]]), daemon: {} },
        settings: { dataRoot, execRoot: join(dataRoot, 'run'), hosts: [], logLevel: 'silent', pidfile: join(dataRoot, 'pid'), version: 'bench' },
        logger: pino({ level: 'silent' }),
        builtins: new Map([
          [driverPlugin.name, driverPlugin],
          ['@tsengine/images', imagesPlugin as PluginDefinition<unknown>],
        ]),
      });
      try {
        let t = performance.now();
        await engine.run('image.import', { repo: 'imported:1' }, { stdin: Readable.from([rootfs]) });
        const importMs = performance.now() - t;
        t = performance.now();
        await engine.run('image.load', { quiet: true }, { stdin: Readable.from([archive]) });
        const loadMs = performance.now() - t;
        const figures: Figure[] = [
          { name: 'import of a 200 MB rootfs tar', unit: 'ms', ours: importMs, peer: peerMs?.importMs, lowerIsBetter: true },
          { name: 'load of a 4×50 MB image', unit: 'ms', ours: loadMs, peer: peerMs?.loadMs, lowerIsBetter: true },
        ];
        printFigures(`images (${driverName})`, figures);
      } finally {
        await engine.shutdown(10_000);
      }
    } finally {
      await rm(dataRoot, { recursive: true, force: true });
    }
  }
}

async function timePeer(socket: string, archive: Buffer, rootfs: Buffer): Promise<{ importMs: number; loadMs: number }> {
  let t = performance.now();
  await postBody(socket, '/images/create?fromSrc=-&repo=tsengine-bench-import&tag=1', rootfs);
  const importMs = performance.now() - t;
  t = performance.now();
  await postBody(socket, '/images/load?quiet=1', archive);
  const loadMs = performance.now() - t;
  for (const name of ['tsengine-bench-import:1', 'bench:1']) await request(socket, 'DELETE', `/images/${name}?force=1`).catch(() => undefined);
  return { importMs, loadMs };
}
