import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, readdir, readlink, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CONTAINER_PLUGINS, CLI_MAIN, type CommandResult, type Daemon, runCommand, startDaemon, tsengine } from '../helpers/daemon.js';
import { busyboxRootfsTar, readTar } from '../helpers/images.js';

const PLUGINS = CONTAINER_PLUGINS;

/** Polls until `check` holds, failing with `what` after a generous deadline. */
async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('tsengine container commands against a real daemon', () => {
  let daemon: Daemon | undefined;
  let work = '';

  const cli = (args: string[], input?: string | Buffer): Promise<CommandResult> => tsengine(args, { host: daemon!, ...(input !== undefined ? { input } : {}) });
  const ok = async (args: string[], input?: string | Buffer): Promise<string> => {
    const r = await cli(args, input);
    assert.equal(r.status, 0, `tsengine ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' } });
    work = await mkdtemp(join(tmpdir(), 'tsengine-cli-containers-'));
    const tar = join(work, 'busybox.tar');
    await writeFile(tar, await busyboxRootfsTar());
    await ok(['import', '-c', 'CMD ["sh"]', tar, 'busybox:latest']);
  });

  after(async () => {
    if (work) await rm(work, { recursive: true, force: true });
    if (daemon) {
      const result = await daemon.stop();
      assert.equal(result.code, 0, `daemon exited with ${result.code ?? result.signal}:\n${daemon.logs()}`);
    }
  });

  it('run --rm prints the output, keeps stdout and stderr apart and exits with the status', async () => {
    const r = await cli(['run', '--rm', 'busybox', 'sh', '-c', 'echo out; echo err >&2; exit 3']);
    assert.equal(r.status, 3, r.stderr);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.equal((await ok(['ps', '-aq'])).trim(), '');
  });

  it('run passes -e, --env-file, -w, -u, --hostname and --entrypoint into the container', async () => {
    const envFile = join(work, 'env');
    await writeFile(envFile, '# a comment\nFROM_FILE=yes\n');
    const r = await cli(['run', '--rm', '-e', 'A=1', '--env-file', envFile, '-w', '/tmp', '-u', '1000:2000', '-h', 'boxname', '--entrypoint', 'sh', 'busybox', '-c', 'echo $A $FROM_FILE $(pwd) $(id -u):$(id -g) $(hostname)']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, '1 yes /tmp 1000:2000 boxname\n');
  });

  it('run -i pipes stdin into the container', async () => {
    const r = await cli(['run', '--rm', '-i', 'busybox', 'sh', '-c', 'tr a-z A-Z'], 'piped text\n');
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'PIPED TEXT\n');
  });

  it('run -it and exec -it get a terminal of the local size and pass the exit status', { skip: !existsSync('/usr/bin/script') && 'util-linux script is missing' }, async () => {
    // script(1) gives the CLI a pseudo-terminal of its own; the container must see a tty of the same size.
    const command = (args: string) => `stty rows 33 cols 101; ${process.execPath} ${CLI_MAIN} ${args}`;
    const run = await runCommand('script', ['-qec', command("run -it --rm busybox sh -c 'stty size; tty; exit 3'"), '/dev/null'], { env: { DOCKER_HOST: daemon!.host } });
    assert.equal(run.status, 3, run.stdout + run.stderr);
    // script(1) may forward a NUL once its own stdin ends; the container's tty echoes it as ^@.
    assert.match(run.stdout, /33 101\r\r?\n(?:\^@)*\/dev\/pts\/0/);
    await ok(['run', '-d', '--name', 'term', 'busybox', 'sleep', '60']);
    try {
      const exec = await runCommand('script', ['-qec', command("exec -it term sh -c 'stty size; exit 6'"), '/dev/null'], { env: { DOCKER_HOST: daemon!.host } });
      assert.equal(exec.status, 6, exec.stdout + exec.stderr);
      assert.match(exec.stdout, /33 101/);
    } finally {
      await cli(['rm', '-f', 'term']);
    }
  });

  it('run failures exit 125 (engine), 127 (command not found) with docker-style messages', async () => {
    const missing = await cli(['run', '--rm', '--pull', 'never', 'nosuchimage']);
    assert.equal(missing.status, 125);
    assert.match(missing.stderr, /^tsengine: Error response from daemon: No such image: nosuchimage:latest/);
    assert.match(missing.stderr, /Run 'tsengine run --help' for more information/);
    const notFound = await cli(['run', '--rm', 'busybox', 'nosuchcmd']);
    assert.equal(notFound.status, 127, notFound.stderr);
    assert.match(notFound.stderr, /executable file not found/);
    const badFlag = await cli(['run', '--restart', 'sometimes', 'busybox', 'true']);
    assert.equal(badFlag.status, 125);
    assert.match(badFlag.stderr, /invalid restart policy/);
  });

  it('run -d, ps, logs, exec, stop, wait, rm', async () => {
    const id = (await ok(['run', '-d', '--name', 'web', '-l', 'role=test', 'busybox', 'sh', '-c', 'echo started; echo oops >&2; while true; do sleep 1; done'])).trim();
    assert.match(id, /^[a-f0-9]{64}$/);
    try {
      const ps = await ok(['ps', '--no-trunc']);
      const [header, row] = ps.split('\n');
      assert.match(header!, /^CONTAINER ID\s+IMAGE\s+COMMAND\s+CREATED\s+STATUS\s+PORTS\s+NAMES$/);
      assert.ok(row!.startsWith(id), ps);
      assert.match(row!, /\s+Up .*\s+web$/);
      assert.equal((await ok(['ps', '-q'])).trim(), id.slice(0, 12));
      assert.equal((await ok(['ps', '--format', '{{.Names}} {{.State}} {{.Labels}}'])).trim(), 'web running role=test');
      assert.equal((await ok(['ps', '-a', '-f', 'name=nomatch', '-q'])).trim(), '');

      await eventually('the log line', async () => (await cli(['logs', 'web'])).stdout === 'started\n');
      const logs = await cli(['logs', 'web']);
      assert.equal(logs.stderr, 'oops\n');
      const stamped = await ok(['logs', '-t', '--tail', '1', 'web']);
      assert.equal(stamped, '');
      const stampedErr = (await cli(['logs', '-t', '--tail', '1', 'web'])).stderr;
      assert.match(stampedErr, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d+Z oops\n$/);

      const exec = await cli(['exec', '-e', 'X=7', '-w', '/etc', 'web', 'sh', '-c', 'echo $X $(pwd); exit 4']);
      assert.equal(exec.status, 4, exec.stderr);
      assert.equal(exec.stdout, '7 /etc\n');
      const execIn = await cli(['exec', '-i', 'web', 'cat'], 'to exec\n');
      assert.equal(execIn.stdout, 'to exec\n', execIn.stderr);

      const busy = await cli(['rm', 'web']);
      assert.equal(busy.status, 1);
      assert.match(busy.stderr, /container is running: stop the container before removing or force remove/);
      assert.equal((await ok(['stop', '-t', '1', 'web'])).trim(), 'web');
      assert.equal((await ok(['wait', 'web'])).trim(), '137');
      assert.equal((await ok(['inspect', '-f', '{{.State.Status}} {{.State.ExitCode}}', 'web'])).trim(), 'exited 137');
    } finally {
      await cli(['rm', '-f', 'web']);
    }
    assert.equal((await ok(['ps', '-aq'])).trim(), '');
  });

  it('reports unknown containers like docker and exits 1', async () => {
    for (const args of [['stop', 'ghost'], ['rm', 'ghost'], ['logs', 'ghost'], ['exec', 'ghost', 'true'], ['diff', 'ghost']]) {
      const r = await cli(args);
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, /No such container: ghost/, args.join(' '));
    }
    const inspect = await cli(['inspect', 'ghost']);
    assert.equal(inspect.status, 1);
    assert.equal(inspect.stdout, '[]\n');
    assert.match(inspect.stderr, /Error: No such object: ghost/);
  });

  it('create, start -a, and the container aliases', async () => {
    const id = (await ok(['container', 'create', '--name', 'later', 'busybox', 'sh', '-c', 'echo from start; exit 2'])).trim();
    const started = await cli(['start', '-a', 'later']);
    assert.equal(started.status, 2, started.stderr);
    assert.equal(started.stdout, 'from start\n');
    assert.equal((await ok(['container', 'ls', '-a', '-q', '--no-trunc'])).trim(), id);
    assert.equal((await ok(['container', 'rm', 'later'])).trim(), 'later');
  });

  it('diff, cp both ways, commit and export', async () => {
    await ok(['run', '--name', 'files', 'busybox', 'sh', '-c', 'echo data > /tmp/data.txt; rm /etc/group; mkdir -p /srv/sub; echo deep > /srv/sub/f']);
    try {
      assert.deepEqual((await ok(['diff', 'files'])).trim().split('\n'), ['C /etc', 'D /etc/group', 'A /srv', 'A /srv/sub', 'A /srv/sub/f', 'C /tmp', 'A /tmp/data.txt']);

      await ok(['cp', 'files:/tmp/data.txt', join(work, 'data.txt')]);
      assert.equal(await readFile(join(work, 'data.txt'), 'utf8'), 'data\n');
      await ok(['cp', 'files:/srv', join(work, 'srv-copy')]);
      assert.equal(await readFile(join(work, 'srv-copy', 'sub', 'f'), 'utf8'), 'deep\n');
      await mkdir(join(work, 'into'));
      await ok(['cp', 'files:/srv/.', join(work, 'into')]);
      assert.deepEqual(await readdir(join(work, 'into')), ['sub']);
      await ok(['cp', 'files:/bin/sh', join(work, 'sh-link')]);
      assert.equal(await readlink(join(work, 'sh-link')), '/bin/busybox');

      await mkdir(join(work, 'up', 'nested'), { recursive: true });
      await writeFile(join(work, 'up', 'nested', 'n.txt'), 'nested\n');
      await writeFile(join(work, 'up.txt'), 'uploaded\n');
      await ok(['cp', join(work, 'up.txt'), 'files:/tmp/']);
      await ok(['cp', join(work, 'up.txt'), 'files:/tmp/renamed.txt']);
      await ok(['cp', join(work, 'up'), 'files:/srv/']);
      const missing = await cli(['cp', 'files:/nope', join(work, 'nope')]);
      assert.equal(missing.status, 1);
      assert.match(missing.stderr, /Could not find the file \/nope in container files/);
      const both = await cli(['cp', 'a:/x', 'b:/y']);
      assert.equal(both.status, 1);
      assert.match(both.stderr, /copying between containers is not supported/);

      const imageId = (await ok(['commit', '-c', 'ENV STAGE=committed', '-m', 'via cli', 'files', 'cli-committed:v1'])).trim();
      assert.match(imageId, /^sha256:[a-f0-9]{64}$/);
      const r = await cli(['run', '--rm', 'cli-committed:v1', 'sh', '-c', 'cat /tmp/data.txt /tmp/up.txt /tmp/renamed.txt /srv/up/nested/n.txt; echo $STAGE']);
      assert.equal(r.stdout, 'data\nuploaded\nuploaded\nnested\ncommitted\n', r.stderr);

      const exported = join(work, 'files.tar');
      await ok(['export', '-o', exported, 'files']);
      const entries = await readTar(await readFile(exported));
      assert.equal(entries.get('tmp/data.txt')?.toString(), 'data\n');
      assert.equal(entries.get('srv/up/nested/n.txt')?.toString(), 'nested\n');
      assert.ok(!entries.has('etc/group'));
    } finally {
      await cli(['rm', '-f', 'files']);
    }
  });

  it('pause, unpause, rename, top, restart, stats --no-stream, port and container prune', async () => {
    await ok(['run', '-d', '--name', 'svc', 'busybox', 'sleep', '300']);
    try {
      assert.equal((await ok(['pause', 'svc'])).trim(), 'svc');
      assert.match(await ok(['ps', '--format', '{{.Status}}']), /\(Paused\)/);
      assert.equal((await ok(['unpause', 'svc'])).trim(), 'svc');
      await ok(['rename', 'svc', 'svc2']);
      const top = await ok(['top', 'svc2']);
      assert.match(top.split('\n')[0]!, /^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD$/);
      assert.match(top, /sleep 300/);
      const stats = await ok(['stats', '--no-stream', 'svc2']);
      assert.match(stats.split('\n')[0]!, /^CONTAINER ID\s+NAME\s+CPU %\s+MEM USAGE \/ LIMIT\s+MEM %\s+NET I\/O\s+BLOCK I\/O\s+PIDS$/);
      assert.match(stats.split('\n')[1]!, /^[a-f0-9]{12}\s+svc2\s+\d+\.\d\d%\s+\S+ \/ \S+\s+\d+\.\d\d%/);
      assert.equal(await ok(['port', 'svc2']), '');
      const before = (await ok(['inspect', '-f', '{{.State.StartedAt}}', 'svc2'])).trim();
      assert.equal((await ok(['restart', '-t', '1', 'svc2'])).trim(), 'svc2');
      const afterStart = (await ok(['inspect', '-f', '{{.State.StartedAt}} {{.State.Running}}', 'svc2'])).trim();
      assert.notEqual(afterStart.split(' ')[0], before);
      assert.equal(afterStart.split(' ')[1], 'true');
    } finally {
      await cli(['rm', '-f', 'svc2']);
      await cli(['rm', '-f', 'svc']);
    }
    const stopped = (await ok(['create', 'busybox', 'true'])).trim();
    const declined = await cli(['container', 'prune'], 'n\n');
    assert.equal(declined.status, 0);
    assert.match(declined.stdout, /WARNING! This will remove all stopped containers\.\nAre you sure you want to continue\? \[y\/N\] $/);
    const pruned = await ok(['container', 'prune', '-f']);
    assert.match(pruned, new RegExp(`^Deleted Containers:\\n${stopped}\\n\\nTotal reclaimed space: `));
    assert.equal((await ok(['ps', '-aq'])).trim(), '');
  });
});
