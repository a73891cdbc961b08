import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, it } from 'node:test';
import { pack } from 'tar-stream';
import { PluginSkip } from '@tsengine/core';
import { MNT, backingFilesystem, mount, umount } from '@tsengine/linux';
import plugin, { MOUNT_DATA_LIMIT, OverlayDriver, type OverlayOptions, mountsUnder } from '../src/index.js';

const base = mkdtempSync(join(tmpdir(), 'tsengine-overlay-'));
after(async () => {
  for (const m of await mountsUnder(base)) umount(m, MNT.DETACH);
  rmSync(base, { recursive: true, force: true });
});

async function oneFileTar(name: string, content: string): Promise<Readable> {
  const p = pack();
  const chunks: Buffer[] = [];
  const reading = (async () => {
    for await (const c of p) chunks.push(c as Buffer);
  })();
  p.entry({ name, mode: 0o644, mtime: new Date(0) }, content);
  p.finalize();
  await reading;
  return Readable.from([Buffer.concat(chunks)]);
}

/** The filesystem's own options of the mount at `path` (newer kernels show volatile as fsync=volatile); "" when not mounted. */
function superOptionsAt(path: string): string {
  const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === path);
  return line?.split(' - ')[1]?.split(' ')[2] ?? '';
}

/** A driver under `root` with one image layer "img" and a container layer "c1" on it; cleaned up after `body`. */
async function withContainerLayer(root: string, options: OverlayOptions | undefined, body: (driver: OverlayDriver) => Promise<void>): Promise<void> {
  const driver = new OverlayDriver(root, options);
  await driver.init();
  try {
    await driver.create('img', null);
    await driver.applyDiff('img', null, await oneFileTar('a', 'a'));
    await driver.createReadWrite('c1', 'img');
    await body(driver);
  } finally {
    await driver.cleanup();
  }
}

describe('overlay driver', () => {
  it('mounts a 120-layer image with the lowerdir under the page limit', async () => {
    const root = join(base, 'deep');
    const driver = new OverlayDriver(root);
    await driver.init();
    try {
      let parent: string | null = null;
      for (let i = 0; i < 120; i++) {
        const id = `layer${i.toString().padStart(3, '0')}${'0'.repeat(40)}`;
        await driver.create(id, parent);
        await driver.applyDiff(id, parent, await oneFileTar(`f${i}`, `content ${i}`));
        parent = id;
      }
      // With absolute paths the lowerdir option alone would not fit in a page.
      assert.ok(120 * join(root, parent!, 'diff').length > MOUNT_DATA_LIMIT);
      const lower = readFileSync(join(root, parent!, 'lower'), 'utf8').split(':');
      assert.equal(lower.length, 119);
      assert.match(lower[0]!, /^l\/[A-Z2-7]{26}$/);
      assert.equal(readlinkSync(join(root, lower[0]!)), `../layer118${'0'.repeat(40)}/diff`);
      await driver.createReadWrite('container', parent);
      const path = await driver.get('container');
      assert.deepEqual(await mountsUnder(path), [path]);
      const names = readdirSync(path);
      assert.equal(names.length, 120);
      assert.equal(readFileSync(join(path, 'f0'), 'utf8'), 'content 0');
      assert.equal(readFileSync(join(path, 'f119'), 'utf8'), 'content 119');
      const image = await driver.get(parent!);
      assert.equal(readdirSync(image).length, 120);
      await driver.put(parent!);
      await driver.put('container');
      assert.deepEqual(await mountsUnder(root), []);
    } finally {
      await driver.cleanup();
    }
    assert.deepEqual(await mountsUnder(root), []);
  });

  it('is skipped, with the reason, where overlay cannot work (a data root on overlayfs)', async () => {
    const outer = join(base, 'outer');
    for (const d of ['lower', 'upper', 'work', 'merged']) mkdirSync(join(outer, d), { recursive: true });
    mount('overlay', join(outer, 'merged'), 'overlay', 0, `lowerdir=${outer}/lower,upperdir=${outer}/upper,workdir=${outer}/work`);
    try {
      const dataRoot = join(outer, 'merged', 'data');
      await assert.rejects(new OverlayDriver(join(dataRoot, 'overlay2')).init(), (err: Error) => {
        assert.ok(err instanceof PluginSkip);
        assert.match(err.message, /overlay is not supported on overlayfs .*EINVAL/);
        return true;
      });
      // The plugin itself reports the skip, so the loader marks it skipped with this reason.
      const ctx = { settings: { dataRoot }, provide: () => undefined, onShutdown: () => undefined };
      await assert.rejects(Promise.resolve(plugin.register({} as never, ctx as never)), (err: Error) => err instanceof PluginSkip && /overlayfs/.test(err.message));
      assert.deepEqual(await mountsUnder(join(outer, 'merged', 'data')), [], 'the probe left no mount');
    } finally {
      umount(join(outer, 'merged'), MNT.DETACH);
    }
  });

  it('unmounts a mounted layer on remove and leaves nothing after cleanup', async () => {
    const root = join(base, 'rm');
    const driver = new OverlayDriver(root);
    await driver.init();
    try {
      await driver.create('img', null);
      await driver.applyDiff('img', null, await oneFileTar('a', 'a'));
      await driver.createReadWrite('c1', 'img');
      await driver.createReadWrite('c2', 'img');
      const p1 = await driver.get('c1');
      await driver.get('c2');
      assert.equal((await mountsUnder(root)).length, 2);
      await driver.remove('c1');
      assert.equal((await mountsUnder(p1)).length, 0);
      assert.deepEqual(readdirSync(join(root, 'l')).length, 2, 'the removed layer\'s short link is gone');
      await driver.cleanup();
      assert.deepEqual(await mountsUnder(root), []);
      const status = await driver.status();
      assert.deepEqual(status.map(([k]) => k), ['Backing Filesystem', 'Supports d_type', 'Native Overlay Diff', 'userxattr']);
      assert.deepEqual(status.slice(1).map(([, v]) => v), ['true', 'true', 'false']);
      assert.notEqual(status[0]![1], '');
    } finally {
      await driver.cleanup();
    }
  });

  it('mounts container layers volatile, mounts them again after the marker it leaves, and keeps the writes', async () => {
    const root = join(base, 'volatile');
    await withContainerLayer(root, undefined, async (driver) => {
      for (let round = 0; round < 2; round++) {
        const merged = await driver.get('c1');
        assert.match(superOptionsAt(merged), /(^|,)(fsync=)?volatile(,|$)/, 'a read-write layer is mounted with volatile');
        writeFileSync(join(merged, `written-${round}`), 'kept');
        await driver.put('c1');
        assert.equal((await mountsUnder(merged)).length, 0);
      }
      assert.deepEqual(readdirSync(join(root, 'c1', 'diff')).sort(), ['written-0', 'written-1']);
    });
  });

  it('mounts container layers with a sync at unmount when volatile is off', async () => {
    await withContainerLayer(join(base, 'not-volatile'), { volatile: false }, async (driver) => {
      const merged = await driver.get('c1');
      const options = superOptionsAt(merged);
      assert.notEqual(options, '', 'mounted');
      assert.doesNotMatch(options, /volatile/);
      await driver.put('c1');
    });
  });

  it('marks its home on ext4 so that each layer directory goes to a block group of its own (chattr +T)', async (t) => {
    if ((await backingFilesystem(base)) !== 'extfs') return t.skip(`${base} is not on ext4`);
    const root = join(base, 'spread');
    const driver = new OverlayDriver(root);
    await driver.init();
    try {
      assert.match(execFileSync('lsattr', ['-d', root], { encoding: 'utf8' }).split(' ')[0]!, /T/);
    } finally {
      await driver.cleanup();
    }
  });

  it('takes a removed layer out of its place at once and deletes its files in the background', async () => {
    const root = join(base, 'trash');
    await withContainerLayer(root, undefined, async (driver) => {
      writeFileSync(join(await driver.get('c1'), 'f'), 'data');
      await driver.remove('c1');
      assert.equal(existsSync(join(root, 'c1')), false);
      await driver.cleanup();
      assert.deepEqual(readdirSync(join(root, '.trash')), [], 'the trash is empty once the driver has settled');
    });
  });
});
