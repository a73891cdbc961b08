import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Daemon, docker, startDaemon } from '../helpers/daemon.js';
import { busyboxRootfsTar } from '../helpers/images.js';

const PLUGINS = ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', '@tsengine/exec-native', '@tsengine/containers'];

async function ok(daemon: Daemon, args: string[], input?: Buffer): Promise<string> {
  const r = await docker(daemon, args, input ? { input } : {});
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

/** Mount points under the daemon's temp folder that are still mounted (overlay rootfs left behind). */
async function mountsUnder(dir: string): Promise<string[]> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  return lines.map((l) => l.split(' ')[4] ?? '').filter((mountPoint) => mountPoint.startsWith(dir + '/'));
}

describe('containers through the docker CLI', () => {
  let daemon: Daemon | undefined;
  let daemonDir = '';
  let dataRoot = '';

  before(async () => {
    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' } });
    daemonDir = daemon.dir;
    dataRoot = daemon.dataRoot;
    await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
  });

  after(async () => {
    if (daemon) {
      const result = await daemon.stop();
      assert.equal(result.code, 0, `daemon exited with ${result.code ?? result.signal}:\n${daemon.logs()}`);
    }
    // The daemon's shutdown must have put every rootfs, even of containers still running.
    if (daemonDir) assert.deepEqual(await mountsUnder(daemonDir), []);
  });

  it('runs echo with --rm: prints its output, exits 0 and leaves no container', async () => {
    const r = await docker(daemon!, ['run', '--rm', 'busybox', 'echo', 'hello']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'hello\n');
    assert.equal(r.stderr, '');
    assert.equal((await ok(daemon!, ['ps', '-aq'])).trim(), '');
    assert.deepEqual(await readdir(join(dataRoot, 'containers')), []);
  });

  it("passes the program's exit code through", async () => {
    const r = await docker(daemon!, ['run', '--rm', 'busybox', 'sh', '-c', 'exit 3']);
    assert.equal(r.status, 3, r.stderr);
  });

  it('keeps stdout and stderr apart', async () => {
    const r = await docker(daemon!, ['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
  });

  it('exits 127 with docker\'s message when the command does not exist', async () => {
    const r = await docker(daemon!, ['run', '--rm', 'busybox', 'nosuchcmd']);
    assert.equal(r.status, 127, `${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /executable file not found in \$PATH/);
    assert.equal((await ok(daemon!, ['ps', '-aq'])).trim(), '');
  });

  it('reports a missing image as not found', async () => {
    const r = await docker(daemon!, ['create', '--pull', 'never', 'nosuchimage']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /No such image: nosuchimage:latest/);
  });

  it('creates, lists, inspects, starts and removes a named container', async () => {
    const id = (await ok(daemon!, ['create', '--name', 'first', 'busybox', 'sh', '-c', 'exit 4'])).trim();
    assert.match(id, /^[a-f0-9]{64}$/);
    const ps = await ok(daemon!, ['ps', '-a', '--no-trunc']);
    assert.match(ps, new RegExp(`${id}\\s+busybox\\s+"sh -c exit 4"\\s+.*Created\\s+first`));
    assert.equal((await ok(daemon!, ['ps', '-q'])).trim(), '', 'a created container is not running');

    const dup = await docker(daemon!, ['create', '--name', 'first', 'busybox', 'true']);
    assert.notEqual(dup.status, 0);
    assert.match(dup.stderr, new RegExp(`Conflict. The container name "/first" is already in use by container "${id}"`));

    const inspect = JSON.parse(await ok(daemon!, ['inspect', 'first'])) as Array<{ Id: string; Name: string; Path: string; Args: string[]; State: { Status: string }; Config: { Hostname: string } }>;
    assert.equal(inspect[0]!.Id, id);
    assert.equal(inspect[0]!.Name, '/first');
    assert.equal(inspect[0]!.Path, 'sh');
    assert.deepEqual(inspect[0]!.Args, ['-c', 'exit 4']);
    assert.equal(inspect[0]!.State.Status, 'created');
    assert.equal(inspect[0]!.Config.Hostname, id.slice(0, 12));

    await ok(daemon!, ['start', id.slice(0, 10)]);
    assert.equal((await ok(daemon!, ['wait', 'first'])).trim(), '4');
    const state = (await ok(daemon!, ['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}} {{.State.Running}}', 'first'])).trim();
    assert.equal(state, 'exited 4 false');
    assert.match(await ok(daemon!, ['ps', '-a']), /Exited \(4\) .* ago\s+first/);
    const stored = JSON.parse(await readFile(join(dataRoot, 'containers', id, 'config.v2.json'), 'utf8')) as { State: { ExitCode: number } };
    assert.equal(stored.State.ExitCode, 4);

    assert.equal((await ok(daemon!, ['rm', 'first'])).trim(), 'first');
    const gone = await docker(daemon!, ['inspect', 'first']);
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /No such object: first|No such container: first/);
  });

  it('start -a streams the output and exits with the status; rmi refuses an image in use', async () => {
    await ok(daemon!, ['create', '--name', 'attached', 'busybox', 'sh', '-c', 'echo from-start; exit 6']);
    const r = await docker(daemon!, ['start', '-a', 'attached']);
    assert.equal(r.status, 6, r.stderr);
    assert.equal(r.stdout, 'from-start\n');
    const rmi = await docker(daemon!, ['rmi', 'busybox']);
    assert.equal(rmi.status, 1);
    assert.match(rmi.stderr, /container [a-f0-9]{12} is using its referenced image/);
    await ok(daemon!, ['rm', 'attached']);
  });

  it('refuses to remove a running container, stops and kills it', async () => {
    const id = (await ok(daemon!, ['run', '-d', '--name', 'sleeper', 'busybox', 'sleep', '300'])).trim();
    assert.match(await ok(daemon!, ['ps']), /Up .*sleeper/);
    const refused = await docker(daemon!, ['rm', 'sleeper']);
    assert.equal(refused.status, 1);
    assert.match(refused.stderr, /cannot remove container "\/sleeper": container is running/);
    await ok(daemon!, ['kill', 'sleeper']);
    assert.equal((await ok(daemon!, ['wait', id])).trim(), '137');
    const kill = await docker(daemon!, ['kill', 'sleeper']);
    assert.equal(kill.status, 1);
    assert.match(kill.stderr, /is not running/);

    await ok(daemon!, ['start', 'sleeper']);
    const started = Date.now();
    await ok(daemon!, ['stop', '-t', '1', 'sleeper']);
    assert.ok(Date.now() - started < 10_000, 'stop -t 1 gives up waiting after about a second');
    assert.equal((await ok(daemon!, ['inspect', '-f', '{{.State.ExitCode}}', 'sleeper'])).trim(), '137');
    await ok(daemon!, ['rm', 'sleeper']);
  });

  it('force-removes a running container', async () => {
    await ok(daemon!, ['run', '-d', '--name', 'doomed', 'busybox', 'sleep', '300']);
    await ok(daemon!, ['rm', '-f', 'doomed']);
    const gone = await docker(daemon!, ['inspect', 'doomed']);
    assert.equal(gone.status, 1);
  });

  it('reports unknown containers with docker\'s message', async () => {
    const r = await docker(daemon!, ['start', 'nosuchcontainer']);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /No such container: nosuchcontainer/);
  });

  it('leaves a running container for the daemon shutdown to stop', async () => {
    await ok(daemon!, ['run', '-d', '--name', 'survivor', 'busybox', 'sleep', '300']);
    assert.ok((await mountsUnder(daemonDir)).length > 0, 'the running container has its rootfs mounted');
  });
});
