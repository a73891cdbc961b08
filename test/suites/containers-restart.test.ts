import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, it } from 'node:test';
import { CONTAINER_PLUGINS, type Daemon, docker, startDaemon } from '../helpers/daemon.js';
import { busyboxRootfsTar } from '../helpers/images.js';

const PLUGINS = CONTAINER_PLUGINS;

let daemon: Daemon | undefined;
let dataRoot = '';

after(async () => {
  if (daemon) {
    await docker(daemon, ['rm', '-f', 'a1', 'a2', 'u1', 'u2', 'n1']).catch(() => undefined);
    await daemon.stop();
  }
  if (dataRoot) await rm(dataRoot, { recursive: true, force: true });
});

async function ok(args: string[]): Promise<string> {
  const r = await docker(daemon!, args);
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

async function eventually(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe().catch(() => false))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('starts always and unless-stopped containers with the daemon, but not stopped ones', async () => {
  dataRoot = await mkdtemp(join(tmpdir(), 'tsengine-restart-data-'));
  daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' }, dataRoot });
  const imported = await docker(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], { input: await busyboxRootfsTar() });
  assert.equal(imported.status, 0, imported.stderr);
  await ok(['run', '-d', '--name', 'a1', '--restart', 'always', 'busybox', 'sleep', '3600']);
  await ok(['run', '-d', '--name', 'a2', '--restart', 'always', 'busybox', 'sleep', '3600']);
  await ok(['run', '-d', '--name', 'u1', '--restart', 'unless-stopped', 'busybox', 'sleep', '3600']);
  await ok(['run', '-d', '--name', 'u2', '--restart', 'unless-stopped', 'busybox', 'sleep', '3600']);
  await ok(['run', '-d', '--name', 'n1', 'busybox', 'sleep', '3600']);
  await ok(['stop', '-t', '1', 'a2']);
  await ok(['stop', '-t', '1', 'u2']);
  const first = await daemon.stop();
  assert.equal(first.code, 0);

  daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' }, dataRoot });
  const state = async (name: string) => (await ok(['inspect', '-f', '{{.State.Status}}', name])).trim();
  await eventually('a1 and u1 running again', async () => (await state('a1')) === 'running' && (await state('u1')) === 'running');
  assert.equal(await state('a2'), 'exited');
  assert.equal(await state('u2'), 'exited');
  assert.equal(await state('n1'), 'exited');
  // The restarted container works: exec reaches it.
  assert.equal((await ok(['exec', 'a1', 'echo', 'back'])).trim(), 'back');
});

it('removes a --rm container that outlived a killed daemon when the next one starts, as docker does', async () => {
  const root = await mkdtemp(join(tmpdir(), 'tsengine-restart-rm-data-'));
  let first: Daemon | undefined;
  let second: Daemon | undefined;
  try {
    first = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' }, dataRoot: root });
    const imported = await docker(first, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], { input: await busyboxRootfsTar() });
    assert.equal(imported.status, 0, imported.stderr);
    const run = await docker(first, ['run', '-d', '--rm', '--name', 'ephemeral', 'busybox', 'sleep', '3600']);
    assert.equal(run.status, 0, run.stderr);
    const kept = await docker(first, ['run', '-d', '--name', 'kept', 'busybox', 'sleep', '3600']);
    assert.equal(kept.status, 0, kept.stderr);
    process.kill(first.pid, 'SIGKILL');
    await first.exited;
    await first.stop();
    second = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' }, dataRoot: root });
    const names = await docker(second, ['ps', '-a', '--format', '{{.Names}} {{.Status}}']);
    assert.equal(names.status, 0, names.stderr);
    assert.match(names.stdout, /^kept Exited \(255\)/m);
    assert.doesNotMatch(names.stdout, /ephemeral/);
    await docker(second, ['rm', '-f', 'kept']);
  } finally {
    await second?.stop();
    await rm(root, { recursive: true, force: true });
  }
});
