import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, lstatSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, it } from 'node:test';
import { extract, type Header } from 'tar-stream';
import { readXattrs } from '@tsengine/archive';
import { packEntries } from './image-archives.js';
import { type Change, ChangeKind, type GraphDriver } from '@tsengine/core';

/** Builders of layer tars and image archives (docker-archive and OCI layouts) for image tests. */
export * from './image-archives.js';

export interface ConformanceOptions {
  /** The driver mounts a layer with parents on get (checked in /proc/self/mountinfo). */
  mounts?: boolean;
  /** Where to make the data roots (default: the OS temp dir). */
  baseDir?: string;
}

export type LayerEntry = Partial<Header> & { name: string; content?: string | Buffer };

/** A layer tar of the given entries (files 0644 and directories 0755 unless set, fixed mtime), as a stream. */
async function entriesTar(entries: LayerEntry[]): Promise<Readable> {
  const tar = await packEntries(
    entries.map(({ content, ...header }) => {
      const body = content === undefined ? Buffer.alloc(0) : Buffer.from(content);
      const mode = header.type === 'directory' ? 0o755 : 0o644;
      return { header: { mode, mtime: new Date(1_600_000_000_000), type: 'file' as const, ...header, size: body.length }, body };
    }),
  );
  return Readable.from([tar]);
}

export async function tarEntries(stream: Readable): Promise<Array<{ header: Header; content: Buffer }>> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  const ex = extract();
  ex.end(Buffer.concat(chunks));
  const out: Array<{ header: Header; content: Buffer }> = [];
  for await (const entry of ex) {
    const body: Buffer[] = [];
    for await (const c of entry) body.push(c as Buffer);
    out.push({ header: entry.header, content: Buffer.concat(body) });
  }
  return out;
}

function mountPoints(): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => line.split(' ')[4]!.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))));
}

function mountsUnder(dir: string): string[] {
  return mountPoints().filter((p) => p === dir || p.startsWith(`${dir}/`));
}

function listTree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const r = rel ? `${rel}/${name}` : name;
      out.push(r);
      if (lstatSync(join(dir, r)).isDirectory()) walk(r);
    }
  };
  walk('');
  return out;
}

function kindOf(changes: Change[], path: string): ChangeKind | undefined {
  return changes.find((c) => c.path === path)?.kind;
}

/**
 * The behaviour every GraphDriver must show, as node:test suites: layers and parents, tars in and
 * out with whiteouts, metadata, and get/put reference counting. makeDriver gets a fresh data root.
 */
export function runGraphDriverConformance(name: string, makeDriver: (root: string) => Promise<GraphDriver>, options: ConformanceOptions = {}): void {
  describe(`graphdriver conformance: ${name}`, () => {
    let root = '';
    let driver: GraphDriver;
    let seq = 0;
    const id = (label: string) => `${label}${++seq}`;

    before(async () => {
      root = mkdtempSync(join(options.baseDir ?? tmpdir(), `tsengine-gd-${name}-`));
      driver = await makeDriver(root);
    });

    after(async () => {
      try {
        await driver?.cleanup();
      } finally {
        // A failing driver must not leave mounts behind the test.
        for (const m of mountsUnder(root).reverse()) execFileSync('umount', ['-l', m]);
        rmSync(root, { recursive: true, force: true });
      }
      assert.deepEqual(mountsUnder(root), [], 'cleanup left mounts behind');
    });

    /** Creates an image layer and applies the tar. */
    async function layer(parent: string | null, entries: LayerEntry[]): Promise<string> {
      const l = id('layer');
      await driver.create(l, parent);
      await driver.applyDiff(l, parent, await entriesTar(entries));
      return l;
    }

    /** Reads a container (rw) view over parent, then releases it. */
    async function withView<T>(parent: string, fn: (path: string, container: string) => Promise<T> | T): Promise<T> {
      const c = id('container');
      await driver.createReadWrite(c, parent);
      const path = await driver.get(c);
      try {
        return await fn(path, c);
      } finally {
        await driver.put(c);
        await driver.remove(c);
      }
    }

    it('creates, gets, puts, removes and reports status', async () => {
      const l = id('base');
      assert.equal(await driver.exists(l), false);
      await driver.create(l, null);
      assert.equal(await driver.exists(l), true);
      await assert.rejects(driver.create(l, null), 'creating an existing layer fails');
      const path = await driver.get(l);
      assert.ok(lstatSync(path).isDirectory());
      await driver.put(l);
      const status = await driver.status();
      assert.ok(Array.isArray(status) && status.every((p) => p.length === 2 && typeof p[0] === 'string' && typeof p[1] === 'string'));
      assert.ok(status.some(([k]) => k === 'Backing Filesystem'));
      await driver.remove(l);
      assert.equal(await driver.exists(l), false);
      await assert.rejects(driver.get(l));
    });

    it('stacks nested parents (3+ levels) and counts applied bytes', async () => {
      const l1 = id('l');
      await driver.create(l1, null);
      assert.equal(await driver.applyDiff(l1, null, await entriesTar([{ name: 'etc/', type: 'directory' }, { name: 'etc/a', content: 'one' }, { name: 'dir/x', content: 'x' }])), 4);
      const l2 = await layer(l1, [{ name: 'etc/a', content: 'two!' }, { name: 'etc/b', content: 'b' }]);
      const l3 = await layer(l2, [{ name: 'new/c', content: 'c' }]);
      const l4 = await layer(l3, [{ name: 'deep', content: 'four' }]);
      await withView(l4, (path) => {
        assert.equal(readFileSync(join(path, 'etc/a'), 'utf8'), 'two!');
        assert.equal(readFileSync(join(path, 'etc/b'), 'utf8'), 'b');
        assert.equal(readFileSync(join(path, 'dir/x'), 'utf8'), 'x');
        assert.equal(readFileSync(join(path, 'new/c'), 'utf8'), 'c');
        assert.equal(readFileSync(join(path, 'deep'), 'utf8'), 'four');
      });
      // The lower layers are untouched by their children.
      await withView(l2, (path) => {
        assert.equal(existsSync(join(path, 'new')), false);
        assert.equal(readFileSync(join(path, 'etc/a'), 'utf8'), 'two!');
      });
    });

    it('honours whiteouts and opaque directories from lower layers', async () => {
      const l1 = await layer(null, [
        { name: 'gone', content: 'g' },
        { name: 'keep', content: 'k' },
        { name: 'tree/', type: 'directory' },
        { name: 'tree/leaf', content: 'l' },
        { name: 'opq/', type: 'directory' },
        { name: 'opq/old', content: 'o' },
        { name: 'opq/sub/old2', content: 'o2' },
      ]);
      const l2 = await layer(l1, [{ name: '.wh.gone' }, { name: '.wh.tree' }, { name: 'opq/', type: 'directory' }, { name: 'opq/.wh..wh..opq' }, { name: 'opq/new', content: 'n' }]);
      const l3 = await layer(l2, [{ name: 'later', content: 'later' }]);
      await withView(l3, (path) => {
        assert.deepEqual(listTree(path), ['keep', 'later', 'opq', 'opq/new']);
      });
      // A layer added later can bring a whited-out name back.
      const l4 = await layer(l3, [{ name: 'gone', content: 'back' }]);
      await withView(l4, (path) => assert.equal(readFileSync(join(path, 'gone'), 'utf8'), 'back'));
    });

    it('reports changes, exports a diff and its size, and the diff reproduces the layer', async () => {
      const base = await layer(null, [
        { name: 'etc/', type: 'directory' },
        { name: 'etc/a', content: 'a' },
        { name: 'etc/b', content: 'b' },
        { name: 'etc/c', content: 'c' },
      ]);
      const c = id('container');
      await driver.createReadWrite(c, base);
      const path = await driver.get(c);
      let changes: Change[];
      try {
        const { writeFileSync, rmSync: rm, chmodSync } = await import('node:fs');
        writeFileSync(join(path, 'new'), 'brand new');
        writeFileSync(join(path, 'etc/a'), 'modified');
        rm(join(path, 'etc/b'));
        chmodSync(join(path, 'etc/c'), 0o600);
        changes = await driver.changes(c, base);
        assert.equal(kindOf(changes, '/new'), ChangeKind.Added);
        assert.equal(kindOf(changes, '/etc/a'), ChangeKind.Modified);
        assert.equal(kindOf(changes, '/etc/b'), ChangeKind.Deleted);
        assert.equal(kindOf(changes, '/etc/c'), ChangeKind.Modified);
        assert.equal(kindOf(changes, '/etc'), ChangeKind.Modified);
        assert.equal(changes.length, 5, JSON.stringify(changes));
        assert.equal(await driver.diffSize(c, base), 'brand new'.length + 'modified'.length + 'c'.length);
      } finally {
        await driver.put(c);
      }
      const entries = await tarEntries(await driver.diff(c, base));
      const names = entries.map((e) => e.header.name);
      assert.ok(names.includes('new') && names.includes('etc/a') && names.includes('etc/.wh.b') && names.includes('etc/c'), names.join(','));
      assert.equal(names.includes('etc/b'), false);
      assert.equal(entries.find((e) => e.header.name === 'etc/a')?.content.toString(), 'modified');
      // Same content, same bytes.
      const again = await tarEntries(await driver.diff(c, base));
      assert.deepEqual(
        again.map((e) => [e.header.name, e.header.mtime?.getTime()]),
        entries.map((e) => [e.header.name, e.header.mtime?.getTime()]),
      );

      const replay = id('replay');
      await driver.create(replay, base);
      await driver.applyDiff(replay, base, await driver.diff(c, base));
      await withView(replay, (view) => {
        assert.deepEqual(listTree(view), ['etc', 'etc/a', 'etc/c', 'new']);
        assert.equal(readFileSync(join(view, 'etc/a'), 'utf8'), 'modified');
        assert.equal(lstatSync(join(view, 'etc/c')).mode & 0o7777, 0o600);
      });
      await driver.remove(c);
    });

    it('keeps hard links, symlinks, modes, ownership, xattrs, devices and fifos', async () => {
      const l = await layer(null, [
        { name: 'bin/', type: 'directory' },
        { name: 'bin/su', content: 'su', mode: 0o4755, uid: 0, gid: 0 },
        { name: 'bin/sh', type: 'link', linkname: 'bin/su' },
        { name: 'bin/link', type: 'symlink', linkname: 'su' },
        { name: 'tmp/', type: 'directory', mode: 0o1777 },
        { name: 'home/user/', type: 'directory', mode: 0o2750, uid: 1000, gid: 1001 },
        { name: 'home/user/file', content: 'mine', mode: 0o600, uid: 1000, gid: 1001, pax: { 'SCHILY.xattr.user.tsengine': 'labelled' } },
        { name: 'dev/', type: 'directory' },
        { name: 'dev/null', type: 'character-device', devmajor: 1, devminor: 3, mode: 0o666 },
        { name: 'dev/loop9', type: 'block-device', devmajor: 7, devminor: 9, mode: 0o660 },
        { name: 'dev/pipe', type: 'fifo', mode: 0o620 },
      ]);
      const check = (path: string) => {
        const su = lstatSync(join(path, 'bin/su'));
        assert.equal(su.mode & 0o7777, 0o4755);
        assert.equal(lstatSync(join(path, 'bin/sh')).ino, su.ino, 'hard link shares the inode');
        assert.equal(readlinkSync(join(path, 'bin/link')), 'su');
        assert.equal(lstatSync(join(path, 'tmp')).mode & 0o7777, 0o1777);
        const home = lstatSync(join(path, 'home/user'));
        assert.deepEqual([home.mode & 0o7777, home.uid, home.gid], [0o2750, 1000, 1001]);
        const file = lstatSync(join(path, 'home/user/file'));
        assert.deepEqual([file.mode & 0o7777, file.uid, file.gid], [0o600, 1000, 1001]);
        assert.equal(file.mtimeMs, 1_600_000_000_000);
        const xattrs = new Map(readXattrs(join(path, 'home/user/file')));
        assert.equal(xattrs.get('user.tsengine')?.toString(), 'labelled');
        const nul = lstatSync(join(path, 'dev/null'));
        assert.ok(nul.isCharacterDevice());
        assert.equal(nul.rdev, 0x103);
        assert.equal(nul.mode & 0o7777, 0o666);
        assert.ok(lstatSync(join(path, 'dev/loop9')).isBlockDevice());
        assert.ok(lstatSync(join(path, 'dev/pipe')).isFIFO());
      };
      const image = await driver.get(l);
      try {
        check(image);
      } finally {
        await driver.put(l);
      }
      await withView(l, check);
      const entries = await tarEntries(await driver.diff(l, null));
      const byName = new Map(entries.map((e) => [e.header.name, e.header]));
      const links = [byName.get('bin/sh'), byName.get('bin/su')].map((h) => h?.type).sort();
      assert.deepEqual(links, ['file', 'link']);
      assert.equal((byName.get('home/user/file')?.pax as Record<string, string> | undefined)?.['SCHILY.xattr.user.tsengine'], 'labelled');
      assert.equal(byName.get('dev/null')?.type, 'character-device');
      assert.equal(byName.get('bin/su')?.mode, 0o4755);
    });

    it('reference-counts get/put: mounted twice stays mounted until both put', async () => {
      const base = await layer(null, [{ name: 'f', content: 'f' }]);
      const child = await layer(base, [{ name: 'g', content: 'g' }]);
      const c = id('container');
      await driver.createReadWrite(c, child);
      const first = await driver.get(c);
      const second = await driver.get(c);
      assert.equal(second, first);
      if (options.mounts) assert.ok(mountPoints().includes(first), `${first} is mounted`);
      await driver.put(c);
      assert.equal(readFileSync(join(first, 'g'), 'utf8'), 'g', 'still usable after one put');
      if (options.mounts) assert.ok(mountPoints().includes(first), 'still mounted after one put');
      await driver.put(c);
      if (options.mounts) assert.equal(mountPoints().includes(first), false, 'unmounted after both puts');
      // A read-only image view over parents refcounts the same way.
      const a = await driver.get(child);
      const b = await driver.get(child);
      assert.equal(a, b);
      assert.equal(readFileSync(join(a, 'f'), 'utf8'), 'f');
      await driver.put(child);
      assert.equal(readFileSync(join(a, 'g'), 'utf8'), 'g');
      await driver.put(child);
      if (options.mounts) assert.equal(mountPoints().includes(a), false);
      await driver.remove(c);
    });

    it('releases every mount on cleanup', async () => {
      const base = await layer(null, [{ name: 'f', content: 'f' }]);
      const c = id('container');
      await driver.createReadWrite(c, base);
      await driver.get(c);
      await driver.get(c);
      await driver.cleanup();
      assert.deepEqual(mountsUnder(root), []);
      await driver.remove(c);
    });
  });
}
