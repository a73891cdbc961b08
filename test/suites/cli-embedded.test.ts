import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_PLUGINS } from '@tsengine/cli';
import { BASE_PLUGINS, type CommandResult, runCommand, startDaemon, tsengine } from '../helpers/daemon.js';
import { busyboxRootfsTar } from '../helpers/images.js';
import { freeSubnets } from '../helpers/network.js';

/** Processes running exactly `argv` (a container's command line, seen from the host). */
function processesRunning(argv: string[]): number[] {
  const wanted = argv.join('\0') + '\0';
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8') === wanted) found.push(Number(entry));
    } catch {
      // gone
    }
  }
  return found;
}

function embeddedExecRoots(): string[] {
  return readdirSync(tmpdir()).filter((name) => name.startsWith('tsengine-embedded-')).sort();
}

describe('tsengine --embedded (no daemon)', () => {
  let work: string;
  let dataRoot: string;
  let bridge: string;
  let execRootsBefore: string[];

  /** Runs the CLI in `work`, whose config gives the engine its own bridge name and subnet. */
  const embedded = (args: string[], input?: Buffer): Promise<CommandResult> =>
    tsengine(['--embedded', '--data-root', dataRoot, ...args], { cwd: work, input, timeoutMs: 120_000, env: { DOCKER_HOST: '' } });

  before(async () => {
    work = await mkdtemp(join(tmpdir(), 'tsengine-embedded-test-'));
    dataRoot = join(work, 'data');
    bridge = `tsm${process.pid % 100000}`;
    const block = freeSubnets(4)[0]!;
    const plugins = DEFAULT_PLUGINS.map((ref) => (ref === '@tsengine/networks' ? { plugin: ref, options: { bip: `${block}.1/24`, 'bridge-name': bridge } } : ref));
    await writeFile(join(work, '.tsenginerc.json'), JSON.stringify({ plugins }, null, 2));
    execRootsBefore = embeddedExecRoots();
  });

  after(async () => {
    await runCommand('ip', ['link', 'delete', bridge]).catch(() => undefined);
    await rm(work, { recursive: true, force: true });
  });

  it('imports busybox, then runs it in a later call: output, exit codes, images persisted', async () => {
    const imported = await embedded(['import', '-', 'busybox'], await busyboxRootfsTar());
    assert.equal(imported.status, 0, imported.stderr);
    assert.match(imported.stdout, /^sha256:[0-9a-f]{64}$/m);

    const hi = await embedded(['run', '--rm', 'busybox', 'echo', 'hi']);
    assert.equal(hi.status, 0, hi.stderr);
    assert.equal(hi.stdout, 'hi\n');
    assert.equal(hi.stderr, '');

    const failed = await embedded(['run', '--rm', 'busybox', 'sh', '-c', 'echo oops >&2; exit 3']);
    assert.equal(failed.status, 3, failed.stderr);
    assert.equal(failed.stderr, 'oops\n');

    const images = await embedded(['images', '--format', '{{.Repository}}:{{.Tag}}']);
    assert.equal(images.status, 0, images.stderr);
    assert.equal(images.stdout, 'busybox:latest\n');

    const started = Date.now();
    const quick = await embedded(['run', '--rm', 'busybox', 'true']);
    assert.equal(quick.status, 0, quick.stderr);
    console.log(`# embedded \`run --rm busybox true\`: ${Date.now() - started} ms, engine start-up and shutdown included`);
  });

  it('stops the containers of the engine with the command and leaves nothing behind', async () => {
    const sleeper = ['sleep', String(900_000 + (process.pid % 99_999))];
    const detached = await embedded(['run', '-d', '--name', 'left-running', 'busybox', ...sleeper]);
    assert.equal(detached.status, 0, detached.stderr);
    const id = detached.stdout.trim();
    assert.match(id, /^[0-9a-f]{64}$/);
    assert.match(detached.stderr, /embedded engine stops with this command; stopping container left-running/);

    const listed = await embedded(['ps', '-a', '--format', '{{.Names}} {{.State}}']);
    assert.equal(listed.status, 0, listed.stderr);
    assert.match(listed.stdout, /^left-running exited$/m);
    const removed = await embedded(['rm', 'left-running']);
    assert.equal(removed.status, 0, removed.stderr);

    assert.deepEqual(processesRunning(sleeper), [], 'no container process outlives the command');
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((line) => line.includes(dataRoot) || line.includes('tsengine-embedded-'));
    assert.deepEqual(mounts, [], 'no mount of the engine stays');
    const cgroups = await runCommand('find', ['/sys/fs/cgroup', '-maxdepth', '4', '-name', `*${id.slice(0, 12)}*`]);
    assert.equal(cgroups.stdout.trim(), '', 'no cgroup of the container stays');
    assert.equal(existsSync(`/sys/class/net/${bridge}`), false, 'the bridge is taken down');
    assert.deepEqual(embeddedExecRoots(), execRootsBefore, 'the private exec root and its socket are removed');
    assert.equal(existsSync(join(dataRoot, 'tsengine.pid')), false, 'the data root is free again');
  });

  it('refuses a data root that a running daemon holds, and says so', async () => {
    const daemon = await startDaemon({ plugins: BASE_PLUGINS, dataRoot });
    try {
      const refused = await embedded(['images']);
      assert.equal(refused.status, 1);
      assert.match(refused.stderr, new RegExp(`cannot start an embedded engine: a tsengine daemon is already running with pid ${daemon.pid} on this data root`));
      assert.equal(refused.stdout, '');
      if (!existsSync('/run/tsengine/tsengine.sock')) {
        // No --embedded and no host: the default socket does not answer, and the fallback engine must not share the data root either.
        const fallback = await tsengine(['--data-root', dataRoot, 'images'], { cwd: work, env: { DOCKER_HOST: '' } });
        assert.equal(fallback.status, 1);
        assert.match(fallback.stderr, /^Cannot connect to the tsengine daemon at unix:\/\/\/run\/tsengine\/tsengine\.sock\. Is the daemon running\?\ncannot start an embedded engine: a tsengine daemon is already running with pid \d+/);
      }
      const version = await tsengine(['version', '--format', '{{.Server.Version}}'], { host: daemon });
      assert.equal(version.status, 0, 'the daemon keeps running: ' + version.stderr);
    } finally {
      await daemon.stop();
    }
    const again = await embedded(['images', '-q']);
    assert.equal(again.status, 0, again.stderr);
  });
});
