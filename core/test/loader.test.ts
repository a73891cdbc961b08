import assert from 'node:assert/strict';
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import {
  ConfigError,
  type DaemonSettings,
  GraphDriverCapability,
  PluginLoadError,
  bootEngine,
  defineCapability,
  loadConfig,
  parseConfig,
} from '../src/index.js';

const root = mkdtempSync(join(tmpdir(), 'tsengine-loader-'));
after(() => rmSync(root, { recursive: true, force: true }));

const settings: DaemonSettings = { dataRoot: '/nonexistent', execRoot: '/nonexistent', hosts: [], logLevel: 'silent', pidfile: '', version: '0.0.0' };

interface FakePlugin {
  name: string;
  provides?: Array<[string, string]>;
  requires?: string[];
  api?: string;
  /** JS statements run inside register(container, ctx). */
  register?: string;
  init?: string;
  extra?: string;
}

let counter = 0;
function writePlugin(p: FakePlugin): string {
  const dir = join(root, `p${counter++}-${p.name.replace(/\W/g, '_')}`);
  mkdirSync(dir);
  const provides = JSON.stringify((p.provides ?? []).map(([capability, name]) => ({ capability, name })));
  writeFileSync(
    join(dir, 'index.js'),
    `const { defineCapability } = require(${JSON.stringify(require.resolve('../src/index.js'))});
module.exports = {
  name: ${JSON.stringify(p.name)}, version: '1.2.3', api: ${JSON.stringify(p.api ?? '^1.0.0')},
  provides: ${provides}, requires: ${JSON.stringify(p.requires ?? [])},
  ${p.extra ?? ''}
  register(container, ctx) { ${p.register ?? ''} },
  ${p.init ? `async init(container, ctx) { ${p.init} },` : ''}
};`,
  );
  return dir;
}

/** A plugin that provides `capability` "name" as an object { name, by }. */
function provider(name: string, capability: string, providerName: string, more: Partial<FakePlugin> = {}): string {
  return writePlugin({
    name,
    provides: [[capability, providerName]],
    register: `ctx.provide(defineCapability(${JSON.stringify(capability)}, { mode: 'one' }), ${JSON.stringify(providerName)}, () => ({ name: ${JSON.stringify(providerName)}, by: ${JSON.stringify(name)} }));`,
    ...more,
  });
}

async function boot(raw: Record<string, unknown>, source = join(root, 'config.json')) {
  const logs: Array<Record<string, unknown>> = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const booted = await bootEngine({ config: parseConfig(raw, source), settings, logger });
  return { ...booted, logs };
}

describe('plugin loader', () => {
  it('loads plugins by path, orders them by requires and selects the configured provider', async () => {
    const order: string[] = [];
    (globalThis as Record<string, unknown>).__loadOrder = order;
    const consumer = writePlugin({
      name: 'consumer',
      requires: ['graphdriver'],
      register: `globalThis.__loadOrder.push('consumer'); ctx.handle('consumer.which', async () => container.resolve(Symbol.for('tsengine.capability.graphdriver')).name);`,
    });
    const fast = provider('fast-driver', 'graphdriver', 'fast', { init: `globalThis.__loadOrder.push('fast');` });
    const slow = provider('slow-driver', 'graphdriver', 'slow', { init: `globalThis.__loadOrder.push('slow');` });
    const { engine, plugins, container } = await boot({ plugins: [consumer, fast, slow], graphdriver: 'slow' });
    assert.deepEqual(order, ['fast', 'slow', 'consumer']);
    assert.deepEqual(
      plugins.map((p) => [p.name, p.state]),
      [
        ['fast-driver', 'loaded'],
        ['slow-driver', 'loaded'],
        ['consumer', 'loaded'],
      ],
    );
    assert.equal(await engine.run('consumer.which' as never, {} as never), 'slow');
    const providers = container.resolve<{ names(): string[] }>(GraphDriverCapability.providersToken);
    assert.deepEqual(providers.names().sort(), ['fast', 'slow']);
  });

  it('loads a plugin after the providers of what it uses, and without them when none is configured', async () => {
    const user = writePlugin({
      name: 'user',
      extra: `uses: ['networks'],`,
      register: `const nets = ctx.use(defineCapability('networks', { mode: 'one' })); ctx.handle('user.which', async () => (nets ? nets.name : 'none'));`,
    });
    const nets = provider('nets', 'networks', 'local');
    const withNets = await boot({ plugins: [user, nets] });
    assert.deepEqual(withNets.plugins.map((p) => p.name), ['nets', 'user']);
    assert.equal(await withNets.engine.run('user.which' as never, {} as never), 'local');
    const alone = await boot({ plugins: [user] });
    assert.equal(alone.plugins[0]!.state, 'loaded');
    assert.equal(await alone.engine.run('user.which' as never, {} as never), 'none');
  });

  it('picks a provider by the capability preference when the config names none', async () => {
    const overlay = provider('ovl', 'graphdriver', 'overlay');
    const vfs = provider('vfs', 'graphdriver', 'vfs');
    const { container } = await boot({ plugins: [vfs, overlay] });
    // defineCapability() in the plugin has no preference; the kernel's GraphDriverCapability does, and both share the token.
    assert.ok(['overlay', 'vfs'].includes(container.resolve<{ name: string }>(GraphDriverCapability.token).name));
  });

  it('passes each plugin its own options and a child logger that names it', async () => {
    const p = writePlugin({
      name: 'opts',
      extra: `parseOptions(raw) { if (typeof raw?.greeting !== 'string') throw new Error('greeting must be a string'); return raw; },`,
      register: `ctx.logger.info('hello'); ctx.handle('opts.greeting', async () => ctx.options.greeting);`,
    });
    const { engine, logs } = await boot({ plugins: [{ plugin: p, options: { greeting: 'hi' } }] });
    assert.equal(await engine.run('opts.greeting' as never, {} as never), 'hi');
    assert.ok(logs.some((l) => l.plugin === 'opts' && l.msg === 'hello'));
  });

  it('rejects bad options, naming the plugin', async () => {
    const p = writePlugin({ name: 'picky', extra: `parseOptions(raw) { throw new Error('greeting must be a string'); },` });
    await assert.rejects(boot({ plugins: [{ plugin: p, options: { greeting: 1 } }] }), (err: unknown) => err instanceof PluginLoadError && /plugin picky: bad options: greeting must be a string/.test(err.message));
  });

  it('reports a package that cannot be found', async () => {
    await assert.rejects(boot({ plugins: ['@nobody/no-such-plugin'] }), /plugin @nobody\/no-such-plugin: package not found/);
    await assert.rejects(boot({ plugins: ['./missing-dir'] }), /plugin \.\/missing-dir: no plugin at/);
  });

  it('reports a module with the wrong export shape', async () => {
    const dir = join(root, 'shapeless');
    mkdirSync(dir);
    writeFileSync(join(dir, 'index.js'), 'module.exports = { name: "shapeless", version: "1.0.0", api: "^1.0.0" };');
    await assert.rejects(boot({ plugins: [dir] }), /bad export shape: "register" is not a function/);
  });

  it('reports an incompatible plugin API range', async () => {
    const p = writePlugin({ name: 'future', api: '^2.0.0' });
    await assert.rejects(boot({ plugins: [p] }), /plugin future: incompatible plugin API: it supports \^2.0.0, this kernel implements 1.0.0/);
  });

  it('reports a requirement that no configured plugin provides', async () => {
    const p = writePlugin({ name: 'needy', requires: ['execdriver'] });
    await assert.rejects(boot({ plugins: [p] }), /plugin needy: requires capability "execdriver", which no configured plugin provides/);
  });

  it('reports a dependency cycle with its path', async () => {
    const a = writePlugin({ name: 'a', provides: [['cap-a', 'a']], requires: ['cap-b'] });
    const b = writePlugin({ name: 'b', provides: [['cap-b', 'b']], requires: ['cap-a'] });
    await assert.rejects(boot({ plugins: [a, b] }), /dependency cycle: a → b → a/);
  });

  it('reports two plugins that provide the same name', async () => {
    const one = provider('one', 'graphdriver', 'overlay');
    const two = provider('two', 'graphdriver', 'overlay');
    await assert.rejects(boot({ plugins: [one, two] }), /plugin two: provides graphdriver "overlay", which one already provides/);
  });

  it('marks a plugin skipped with its reason, and fails a config that selects it', async () => {
    const picky = provider('overlay-driver', 'graphdriver', 'overlay', { init: `const e = new Error('overlay is not supported on tmpfs'); e.name = 'PluginSkip'; throw e;` });
    const vfs = provider('vfs-driver', 'graphdriver', 'vfs');
    const { plugins } = await boot({ plugins: [picky, vfs] });
    assert.deepEqual(
      plugins.map((p) => [p.name, p.state, p.reason]),
      [
        ['overlay-driver', 'skipped', 'overlay is not supported on tmpfs'],
        ['vfs-driver', 'loaded', undefined],
      ],
    );
    await assert.rejects(
      boot({ plugins: [picky, vfs], graphdriver: 'overlay' }),
      (err: unknown) => err instanceof ConfigError && /key "graphdriver": selected graphdriver "overlay" is not available: plugin overlay-driver was skipped: overlay is not supported on tmpfs/.test(err.message),
    );
  });

  it('records a plugin that throws while registering as failed and drops its jobs', async () => {
    const broken = writePlugin({ name: 'broken', register: `ctx.handle('broken.job', async () => 1); throw new Error('kaboom');` });
    const { engine, plugins } = await boot({ plugins: [broken] });
    assert.equal(plugins[0]!.state, 'failed');
    assert.equal(plugins[0]!.reason, 'kaboom');
    assert.equal(engine.has('broken.job'), false);
    const description = await engine.run('engine.describe', {});
    assert.equal(description.plugins[0]!.state, 'failed');
  });

  it('skips a plugin whose only required provider did not load', async () => {
    const driver = provider('drv', 'graphdriver', 'overlay', { init: `throw new Error('no kernel support');` });
    const consumer = writePlugin({ name: 'images', requires: ['graphdriver'] });
    const { plugins } = await boot({ plugins: [driver, consumer] });
    assert.deepEqual(plugins.map((p) => p.state), ['failed', 'skipped']);
    assert.match(plugins[1]!.reason!, /requires graphdriver/);
  });

  it('makes a provider offered in init usable by later plugins, and withdraws one from a plugin that failed', async () => {
    const late = writePlugin({
      name: 'late-driver',
      provides: [['graphdriver', 'late']],
      init: `ctx.provide(defineCapability('graphdriver', { mode: 'one' }), 'late', () => ({ name: 'late' }));`,
    });
    const broken = writePlugin({
      name: 'broken-driver',
      provides: [['graphdriver', 'broken']],
      register: `ctx.provide(defineCapability('graphdriver', { mode: 'one' }), 'broken', () => ({ name: 'broken' }));`,
      init: `throw new Error('probe failed');`,
    });
    const consumer = writePlugin({
      name: 'user',
      requires: ['graphdriver'],
      register: `ctx.handle('user.drivers', async () => container.resolve(Symbol.for('tsengine.capability.graphdriver.providers')).names());`,
    });
    const { engine } = await boot({ plugins: [late, broken, consumer] });
    assert.deepEqual(await engine.run('user.drivers' as never, {} as never), ['late']);
  });

  it('lets a plugin use a capability it provides itself while it initialises', async () => {
    const self = writePlugin({
      name: 'self-user',
      provides: [['greeter', 'plain']],
      register: `ctx.provide(defineCapability('greeter', { mode: 'one' }), 'plain', () => ({ greet: (who) => 'hello ' + who }));`,
      init: `const greeting = container.resolve(Symbol.for('tsengine.capability.greeter')).greet('init'); ctx.handle('self.greeting', async () => greeting);`,
    });
    const { engine, plugins } = await boot({ plugins: [self] });
    assert.equal(plugins[0]!.state, 'loaded', plugins[0]!.reason);
    assert.equal(await engine.run('self.greeting' as never, {} as never), 'hello init');
  });

  it('rejects a selection key that no plugin provides', async () => {
    await assert.rejects(boot({ plugins: [], graphdriverr: 'overlay' }), (err: unknown) => err instanceof ConfigError && err.key === 'graphdriverr' && /unknown key/.test(err.message));
  });

  it('supports capabilities defined by plugins themselves', () => {
    const cap = defineCapability<{ greet(): string }>('greeter', { mode: 'many' });
    assert.equal(cap.token, Symbol.for('tsengine.capability.greeter'));
  });
});

describe('config', () => {
  it('fails fast on a missing file, naming it', async () => {
    await assert.rejects(loadConfig({ file: join(root, 'nope.json') }), /config .*nope\.json: file not found/);
  });

  it('fails fast on malformed JSON, naming the file', async () => {
    const file = join(root, 'bad.json');
    writeFileSync(file, '{ "plugins": [ ');
    await assert.rejects(loadConfig({ file }), /config .*bad\.json: cannot be parsed/);
  });

  it('names the key and the reason for a wrong value', () => {
    assert.throws(() => parseConfig({ hosts: 'unix:///x' }, '/etc/x.json'), /config \/etc\/x.json: key "hosts": must be an array of strings/);
    assert.throws(() => parseConfig({ plugins: [{ plugin: 'x', option: {} }] }, '/etc/x.json'), /key "plugins\[0\].option": unknown key/);
    assert.throws(() => parseConfig({ colour: 3 }, '/etc/x.json'), /key "colour": unknown key/);
  });

  it('reads plugins, daemon settings and selections', async () => {
    const file = join(root, 'good.json');
    writeFileSync(file, JSON.stringify({ plugins: ['a', { plugin: './b', options: { x: 1 } }], 'data-root': '/d', graphdriver: 'vfs' }));
    const config = await loadConfig({ file });
    assert.ok(config);
    assert.deepEqual(config.plugins, [
      { ref: 'a', options: undefined },
      { ref: './b', options: { x: 1 } },
    ]);
    assert.equal(config.daemon['data-root'], '/d');
    assert.equal(config.selections.get('graphdriver'), 'vfs');
    assert.equal(config.baseDir, root);
  });

  it('finds a tsengine config by search', async () => {
    const dir = join(root, 'search');
    mkdirSync(dir);
    writeFileSync(join(dir, '.tsenginerc.json'), JSON.stringify({ plugins: [] }));
    const config = await loadConfig({ searchFrom: dir });
    assert.equal(config?.source, join(dir, '.tsenginerc.json'));
  });
});
