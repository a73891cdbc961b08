import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { PassThrough } from 'node:stream';
import { after, describe, it } from 'node:test';
import pino from 'pino';
import { bootEngine, loadConfig, type DaemonSettings } from '@tsengine/core';

const repoRoot = resolve(__dirname, '..', '..', '..');
const dir = mkdtempSync(join(tmpdir(), 'tsengine-third-party-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const settings: DaemonSettings = { dataRoot: join(dir, 'data'), execRoot: join(dir, 'run'), hosts: [], logLevel: 'silent', pidfile: '', version: 'test' };

async function bootFrom(config: object) {
  const file = join(dir, `config-${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(config));
  const loaded = await loadConfig({ file });
  assert.ok(loaded);
  return bootEngine({ config: loaded, settings, logger: pino({ level: 'silent' }), searchPaths: [repoRoot] });
}

describe('a third-party plugin package (test/fixtures/hello-plugin)', () => {
  it('loads by npm package name from a config file, with its options, job and capability', async () => {
    const { engine, plugins } = await bootFrom({ plugins: [{ plugin: 'tsengine-plugin-hello', options: { greeting: 'Hallo' } }], greeter: 'hello' });
    assert.deepEqual(
      plugins.map((p) => [p.name, p.state, p.provides]),
      [['tsengine-plugin-hello', 'loaded', [{ capability: 'greeter', name: 'hello' }]]],
    );
    const out = new PassThrough();
    let printed = '';
    out.on('data', (c) => (printed += c));
    const result = await engine.run('hello.greet' as never, { who: 'Ada' } as never, { stdout: out });
    assert.equal(result, 'Hallo, Ada!');
    assert.equal(printed, 'Hallo, Ada!\n');
    const description = await engine.run('engine.describe', {});
    assert.ok(description.jobs.some((j) => j.name === 'hello.greet' && j.owner === 'tsengine-plugin-hello'));
  });

  it('loads by path relative to the config file', async () => {
    const { engine } = await bootFrom({ plugins: [join(repoRoot, 'test', 'fixtures', 'hello-plugin')] });
    assert.equal(await engine.run('hello.greet' as never, { who: 'Linus' } as never), 'Hello, Linus!');
  });

  it('rejects its bad options with the plugin named', async () => {
    await assert.rejects(bootFrom({ plugins: [{ plugin: 'tsengine-plugin-hello', options: { greeting: 7 } }] }), /plugin tsengine-plugin-hello: bad options: "greeting" must be a non-empty string/);
  });
});
