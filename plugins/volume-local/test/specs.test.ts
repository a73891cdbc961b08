import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseApiMount, parseBind, parseTmpfs, parseVolumesFrom } from '../src/index.js';
import { validMountMode } from '../src/specs.js';

describe('-v / Binds parsing', () => {
  it('tells binds, named and anonymous volumes apart', () => {
    assert.deepEqual(parseBind('/host/dir/:/data:ro', ''), { Type: 'bind', Source: '/host/dir', Destination: '/data', RW: false, Mode: 'ro', Propagation: 'rprivate' });
    assert.equal(parseBind('/h:/d:rw,rslave', '').Propagation, 'rslave');
    const named = parseBind('cache:/var/cache', '');
    assert.equal(named.Type, 'volume');
    assert.equal(named.Name, 'cache');
    assert.equal(named.Driver, 'local');
    assert.equal(named.CopyData, true);
    assert.equal(named.RW, true);
    assert.equal(parseBind('cache:/c:nocopy', '').CopyData, false);
    assert.equal(parseBind('cache:/c', 'other').Driver, 'other');
    const anonymous = parseBind('/only/target', '');
    assert.equal(anonymous.Type, 'volume');
    assert.equal(anonymous.Anonymous, true);
    assert.equal(anonymous.Name, undefined);
    assert.equal(anonymous.Destination, '/only/target');
  });

  it("refuses bad specs with docker's messages", () => {
    assert.throws(() => parseBind('', ''), /invalid volume specification: ''/);
    assert.throws(() => parseBind('a:b:c:d', ''), /invalid volume specification: 'a:b:c:d'/);
    assert.throws(() => parseBind('/data:ro', ''), /invalid volume specification: '\/data:ro'/);
    assert.throws(() => parseBind('/h:/d:bogus', ''), /invalid mode: bogus/);
    assert.throws(() => parseBind('/h:/d:ro,rw', ''), /invalid mode: ro,rw/);
    assert.throws(() => parseBind('/h:relative', ''), /invalid volume specification: '\/h:relative': invalid mount path: 'relative' mount path must be absolute/);
    assert.throws(() => parseBind('/h:/', ''), /destination can't be '\/'/);
    assert.throws(() => parseBind('vol:/d:rshared', ''), /invalid mode/);
  });

  it('knows docker mount modes, one of each kind', () => {
    for (const mode of ['', 'ro', 'rw', 'z', 'Z', 'ro,z', 'rprivate', 'nocopy', 'cached', 'ro,rslave,nocopy']) assert.ok(validMountMode(mode), mode);
    for (const mode of ['x', 'ro,rw', 'z,Z', 'shared,slave', 'ro,']) assert.ok(!validMountMode(mode), mode);
  });
});

describe('--mount / HostConfig.Mounts parsing', () => {
  const exists = (p: string) => p === '/there';

  it("refuses a missing bind source with docker's message unless asked to create it", () => {
    assert.throws(() => parseApiMount({ Type: 'bind', Source: '/x', Target: '/y' }, '', exists), (err: Error) => {
      assert.equal(err.message, 'invalid mount config for type "bind": bind source path does not exist: /x');
      assert.equal((err as { kind?: string }).kind, 'invalid');
      return true;
    });
    assert.equal(parseApiMount({ Type: 'bind', Source: '/x', Target: '/y', BindOptions: { CreateMountpoint: true } }, '', exists).Source, '/x');
    const bind = parseApiMount({ Type: 'bind', Source: '/there', Target: '/y/', ReadOnly: true, BindOptions: { Propagation: 'rshared', NonRecursive: true } }, '', exists);
    assert.deepEqual(bind, { Type: 'bind', Source: '/there', Destination: '/y', RW: false, Mode: '', Propagation: 'rshared', NonRecursive: true });
  });

  it('checks fields per type', () => {
    assert.throws(() => parseApiMount({ Type: 'bind', Target: '/y' }, '', exists), /invalid mount config for type "bind": field Source must not be empty/);
    assert.throws(() => parseApiMount({ Type: 'volume', Source: 'v' }, '', exists), /field Target must not be empty/);
    assert.throws(() => parseApiMount({ Type: 'volume', Target: 'rel' }, '', exists), /invalid mount path: 'rel' mount path must be absolute/);
    assert.throws(() => parseApiMount({ Type: 'volume', Target: '/a', BindOptions: {} }, '', exists), /field BindOptions must not be specified/);
    assert.throws(() => parseApiMount({ Type: 'volume', Target: '/a', ReadOnly: true }, '', exists), /must not set ReadOnly mode when using anonymous volumes/);
    assert.throws(() => parseApiMount({ Type: 'tmpfs', Source: 'x', Target: '/a' }, '', exists), /field Source must not be specified/);
    assert.throws(() => parseApiMount({ Type: 'npipe', Target: '/a' }, '', exists), /invalid mount config for type "npipe": mount type unknown/);
    assert.throws(() => parseApiMount({ Type: 'bind', Source: '/there', Target: '/a', BindOptions: { Propagation: 'weird' } }, '', exists), /invalid propagation mode: weird/);
  });

  it('carries volume options, labels, nocopy and the driver', () => {
    const v = parseApiMount({ Type: 'volume', Source: 'db', Target: '/db', VolumeOptions: { NoCopy: true, Labels: { a: 'b' }, DriverConfig: { Name: 'local', Options: { type: 'tmpfs', device: 'tmpfs' } } } }, '', exists);
    assert.equal(v.Name, 'db');
    assert.equal(v.CopyData, false);
    assert.deepEqual(v.VolumeLabels, { a: 'b' });
    assert.deepEqual(v.VolumeOptions, { type: 'tmpfs', device: 'tmpfs' });
    assert.equal(parseApiMount({ Type: 'volume', Target: '/anon' }, '', exists).Anonymous, true);
  });

  it('converts tmpfs options as docker does', () => {
    const t = parseApiMount({ Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 3 * 2 ** 20, Mode: 0o1770, Options: [['exec']] } }, '', exists);
    assert.deepEqual(t.TmpfsOptions, ['nosuid', 'nodev', 'noexec', 'mode=1770', 'size=3m', 'exec']);
    assert.deepEqual(parseApiMount({ Type: 'tmpfs', Target: '/t', TmpfsOptions: { SizeBytes: 1000 } }, '', exists).TmpfsOptions, ['nosuid', 'nodev', 'noexec', 'size=1000']);
    assert.throws(() => parseApiMount({ Type: 'tmpfs', Target: '/t', TmpfsOptions: { Options: [['uid', '1']] } }, '', exists), /invalid option: uid/);
  });
});

describe('--tmpfs and --volumes-from', () => {
  it('parses --tmpfs, hidden from inspect like docker', () => {
    const t = parseTmpfs('/run', 'size=64m,ro');
    assert.equal(t.RW, false);
    assert.equal(t.Hidden, true);
    assert.deepEqual(t.TmpfsOptions, ['nosuid', 'nodev', 'noexec', 'size=64m']);
    assert.throws(() => parseTmpfs('run', ''), /must be absolute/);
  });

  it('parses volumes-from modes', () => {
    assert.deepEqual(parseVolumesFrom('abc'), { id: 'abc', mode: '' });
    assert.deepEqual(parseVolumesFrom('abc:ro'), { id: 'abc', mode: 'ro' });
    assert.deepEqual(parseVolumesFrom('abc:rw'), { id: 'abc', mode: 'rw' });
    assert.throws(() => parseVolumesFrom('abc:rshared'), /invalid mode: rshared/);
    assert.throws(() => parseVolumesFrom(''), /cannot be an empty string/);
  });
});
