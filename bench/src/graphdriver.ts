import { pseudoRandom } from './harness.js';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { pack } from 'tar-stream';
import type { GraphDriver } from '@tsengine/core';
import { OverlayDriver } from '@tsengine/graphdriver-overlay';
import { VfsDriver } from '@tsengine/graphdriver-vfs';

const MB = 1024 * 1024;

/** Writes a layer tar of `files` files of `fileSize` bytes under `prefix/`. */
async function writeLayerTar(path: string, prefix: string, files: number, fileSize: number): Promise<void> {
  const p = pack();
  const writing = pipeline(p, createWriteStream(path));
  const body = pseudoRandom(fileSize, prefix);
  for (let i = 0; i < files; i++) {
    body.writeUInt32LE(i, 0); // every file differs
    await new Promise<void>((resolve, reject) =>
      p.entry({ name: `${prefix}/file${i}`, mode: 0o644, mtime: new Date(1_600_000_000_000) }, body, (err) => (err ? reject(err) : resolve())),
    );
  }
  p.finalize();
  await writing;
}

type DriverFactory = { name: string; make: (root: string) => Promise<GraphDriver> };

const drivers: DriverFactory[] = [
  {
    name: 'vfs',
    make: async (root) => {
      const d = new VfsDriver(join(root, 'vfs'));
      await d.init();
      return d;
    },
  },
  {
    name: 'overlay',
    make: async (root) => {
      const d = new OverlayDriver(join(root, 'overlay2'));
      await d.init();
      return d;
    },
  },
];

async function timed<T>(fn: () => Promise<T>): Promise<[T, number]> {
  const start = process.hrtime.bigint();
  const result = await fn();
  return [result, Number(process.hrtime.bigint() - start) / 1e6];
}

async function importImage(driver: GraphDriver, tars: string[], prefix: string): Promise<string> {
  let parent: string | null = null;
  for (const [i, tar] of tars.entries()) {
    const id: string = `${prefix}${i}`;
    await driver.create(id, parent);
    await driver.applyDiff(id, parent, createReadStream(tar));
    parent = id;
  }
  return parent!;
}

async function containerRootfs(driver: GraphDriver, id: string, parent: string): Promise<number> {
  const [, ms] = await timed(async () => {
    await driver.createReadWrite(id, parent);
    await driver.get(id);
  });
  await driver.put(id);
  await driver.remove(id);
  return ms;
}

/**
 * Graph driver figures: importing a 200 MB image of 4 layers, and creating + mounting a
 * container rootfs as the image grows from 1 to 64 layers (overlay should stay flat, vfs grows
 * with the image because it copies it).
 */
export async function benchGraphDrivers(options: { imageMB?: number; maxLayers?: number } = {}): Promise<void> {
  const imageMB = options.imageMB ?? 200;
  const maxLayers = options.maxLayers ?? 64;
  const work = await mkdtemp(join(tmpdir(), 'tsengine-bench-gd-'));
  try {
    const bigTars: string[] = [];
    const perLayer = Math.max(1, Math.floor((imageMB * MB) / 4 / (512 * 1024)));
    for (let i = 0; i < 4; i++) {
      const tar = join(work, `big${i}.tar`);
      await writeLayerTar(tar, `big${i}`, perLayer, 512 * 1024);
      bigTars.push(tar);
    }
    const smallTars: string[] = [];
    for (let i = 0; i < maxLayers; i++) {
      const tar = join(work, `small${i}.tar`);
      await writeLayerTar(tar, `layer${i}`, 20, 4096);
      smallTars.push(tar);
    }
    const checkpoints = [1, 2, 4, 8, 16, 32, 64].filter((n) => n <= maxLayers);

    const importRows: string[][] = [];
    const growth = new Map<string, number[]>();
    for (const factory of drivers) {
      const root = await mkdtemp(join(work, `${factory.name}-`));
      let driver: GraphDriver | undefined;
      try {
        driver = await factory.make(root);
        const [top, importMs] = await timed(() => importImage(driver!, bigTars, 'big'));
        const rootfsMs = await containerRootfs(driver, 'bigc', top);
        importRows.push([factory.name, `${imageMB} MB / 4 layers`, importMs.toFixed(0), ((imageMB / importMs) * 1000).toFixed(0), rootfsMs.toFixed(1)]);

        const times: number[] = [];
        let parent: string | null = null;
        for (let n = 1; n <= checkpoints[checkpoints.length - 1]!; n++) {
          const id: string = `small${n - 1}`;
          await driver.create(id, parent);
          await driver.applyDiff(id, parent, createReadStream(smallTars[n - 1]!));
          parent = id;
          if (checkpoints.includes(n)) times.push(await containerRootfs(driver, `c${n}`, id));
        }
        growth.set(factory.name, times);
      } catch (err) {
        importRows.push([factory.name, `failed: ${(err as Error).message}`, '', '', '']);
      } finally {
        await driver?.cleanup();
        await rm(root, { recursive: true, force: true });
      }
    }

    console.log('graph drivers: image import (create + applyDiff of each layer) and container rootfs (createReadWrite + get)');
    printTable(['driver', 'image', 'import ms', 'MB/s', 'rootfs ms'], importRows);
    console.log('\ncontainer rootfs (createReadWrite + get) by image depth, ms');
    printTable(
      ['layers', ...[...growth.keys()]],
      checkpoints.map((n, i) => [String(n), ...[...growth.values()].map((t) => (t[i] === undefined ? '' : t[i]!.toFixed(1)))]),
    );
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

function printTable(head: string[], rows: string[][]): void {
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i]!)).join('  ');
  console.log(line(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const r of rows) console.log(line(r));
}
