import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type CommandResult, type Daemon, docker, runCommand, startDaemon, tsengine } from '../helpers/daemon.js';
import { busyboxRootfsTar } from '../helpers/images.js';
import { type TestRegistry, startRegistry } from '../helpers/registry.js';

const PLUGINS = ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', '@tsengine/exec-native', '@tsengine/containers', '@tsengine/builder'];
const LEGACY = { DOCKER_BUILDKIT: '0' };

async function ok(daemon: Daemon, args: string[], input?: Buffer): Promise<string> {
  const r = await docker(daemon, args, input ? { input, env: LEGACY } : { env: LEGACY });
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

/** Writes a build context: file name → content. */
async function context(files: Record<string, string | Buffer>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'tsengine-build-ctx-'));
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content);
  }
  return dir;
}

async function mountsUnder(dir: string): Promise<string[]> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  return lines.map((l) => l.split(' ')[4] ?? '').filter((mountPoint) => mountPoint.startsWith(dir + '/'));
}

async function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs: number, message: () => string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) assert.fail(message());
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Processes whose command line is exactly `args` (a number no other test uses keeps this unambiguous). */
async function countProcesses(args: string): Promise<number> {
  const ps = await runCommand('ps', ['-eo', 'args']);
  return ps.stdout.split('\n').filter((l) => l.trim() === args).length;
}

function steps(r: CommandResult): string[] {
  return r.stdout.split('\n').filter((l) => l.startsWith('Step '));
}

function builtId(r: CommandResult): string {
  const m = /Successfully built ([a-f0-9]{12})/.exec(r.stdout);
  assert.ok(m, `no "Successfully built" line in:\n${r.stdout}\n${r.stderr}`);
  return m[1]!;
}

describe('docker build (legacy builder) and tsengine build', () => {
  let daemon: Daemon | undefined;
  let daemonDir = '';
  const contexts: string[] = [];
  const ctx = async (files: Record<string, string | Buffer>) => {
    const dir = await context(files);
    contexts.push(dir);
    return dir;
  };
  const build = (args: string[], input?: Buffer) => docker(daemon!, ['build', ...args], { env: LEGACY, ...(input ? { input } : {}), timeoutMs: 120_000 });

  before(async () => {
    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' } });
    daemonDir = daemon.dir;
    await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
  });

  after(async () => {
    for (const dir of contexts) await rm(dir, { recursive: true, force: true });
    if (daemon) {
      const dataRoot = daemon.dataRoot;
      // Nothing of a build is left behind: no scratch layers mounted, no extracted contexts.
      assert.deepEqual(await mountsUnder(daemonDir), []);
      assert.deepEqual(await readdir(join(dataRoot, 'builder', 'tmp')).catch(() => []), []);
      const result = await daemon.stop();
      assert.equal(result.code, 0, `daemon exited with ${result.code ?? result.signal}:\n${daemon.logs()}`);
    }
  });

  it('builds a multi-stage Dockerfile with tags, build args and labels, and the image runs', async () => {
    const dir = await ctx({
      'Dockerfile': [
        'ARG BASE=busybox',
        'FROM ${BASE} AS compile',
        'ARG GREETING=hello',
        'WORKDIR /work',
        'COPY src/ ./',
        'RUN cat a.txt b.txt > joined.txt && echo "$GREETING from RUN" >> joined.txt',
        '',
        'FROM busybox',
        'COPY --from=compile /work/joined.txt /app/joined.txt',
        'ENV MODE=prod',
        'CMD ["cat", "/app/joined.txt"]',
      ].join('\n'),
      'src/a.txt': 'A\n',
      'src/b.txt': 'B\n',
    });
    const r = await build(['-t', 'multi:latest', '-t', 'multi:v2', '--build-arg', 'GREETING=hi', '--label', 'org.test=yes', dir]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    const s = steps(r);
    assert.equal(s[0], 'Step 1/11 : ARG BASE=busybox');
    assert.equal(s[1], 'Step 2/11 : FROM ${BASE} AS compile');
    assert.equal(s.at(-1), 'Step 11/11 : LABEL "org.test"="yes"');
    assert.match(r.stdout, /^ ---> Running in [a-f0-9]{12}$/m);
    assert.match(r.stdout, /Successfully tagged multi:latest\nSuccessfully tagged multi:v2\n/);
    const id = builtId(r);
    const run = await docker(daemon!, ['run', '--rm', 'multi:v2']);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, 'A\nB\nhi from RUN\n');
    const config = JSON.parse(await ok(daemon!, ['image', 'inspect', '--format', '{{json .Config}}', 'multi:latest'])) as { Env: string[]; Cmd: string[]; Labels: Record<string, string> };
    assert.ok(config.Env.includes('MODE=prod'));
    assert.ok(config.Env.some((e) => e.startsWith('PATH=')));
    assert.deepEqual(config.Cmd, ['cat', '/app/joined.txt']);
    assert.deepEqual(config.Labels, { 'org.test': 'yes' });
    assert.equal((await ok(daemon!, ['image', 'inspect', '--format', '{{.Id}}', 'multi:latest'])).trim().slice(7, 19), id);
    // Intermediate images stay untagged and hidden: docker images shows the two tags and busybox only.
    const listed = (await ok(daemon!, ['images', '--format', '{{.Repository}}:{{.Tag}}'])).trim().split('\n').sort();
    assert.deepEqual(listed.filter((n) => n !== '<none>:<none>'), ['busybox:latest', 'multi:latest', 'multi:v2']);
  });

  it('reuses the cache on a second build and invalidates it when a copied file changes', async () => {
    const dir = await ctx({
      'Dockerfile': 'FROM busybox\nENV STAGE=one\nCOPY data.txt /data.txt\nRUN wc -c /data.txt > /size\nCMD ["cat", "/size"]\n',
      'data.txt': 'first\n',
    });
    const first = await build(['-t', 'cached', dir]);
    assert.equal(first.status, 0, first.stderr);
    assert.doesNotMatch(first.stdout, /Using cache/);
    const second = await build(['-t', 'cached', dir]);
    assert.equal(second.status, 0, second.stderr);
    assert.equal((second.stdout.match(/ ---> Using cache/g) ?? []).length, 4, second.stdout);
    assert.doesNotMatch(second.stdout, /Running in/);
    assert.equal(builtId(second), builtId(first));

    await writeFile(join(dir, 'data.txt'), 'second, longer\n');
    const third = await build(['-t', 'cached', dir]);
    assert.equal(third.status, 0, third.stderr);
    // ENV still hits; COPY and everything after it are rebuilt.
    assert.equal((third.stdout.match(/ ---> Using cache/g) ?? []).length, 1, third.stdout);
    assert.match(third.stdout, /Step 3\/5 : COPY data.txt \/data.txt\n ---> [a-f0-9]{12}\n/);
    // As docker's legacy builder prints them: config-only steps "run" a container, COPY does not.
    assert.match(first.stdout, /Step 2\/5 : ENV STAGE=one\n ---> Running in ([a-f0-9]{12})\nRemoving intermediate container \1\n ---> [a-f0-9]{12}\n/);
    assert.notEqual(builtId(third), builtId(first));
    const run = await docker(daemon!, ['run', '--rm', 'cached']);
    assert.equal(run.stdout.trim(), '15 /data.txt');

    const noCache = await build(['--no-cache', '-t', 'cached', dir]);
    assert.equal(noCache.status, 0, noCache.stderr);
    assert.doesNotMatch(noCache.stdout, /Using cache/);
  });

  it('leaves out what .dockerignore excludes, keeping ! exceptions', async () => {
    const dir = await ctx({
      'Dockerfile': 'FROM busybox\nCOPY . /ctx/\nCMD ["sh", "-c", "cd /ctx && find . -type f | sort"]\n',
      '.dockerignore': '# comment\n*.log\nsecrets/\n**/tmp-*\n!keep.log\n',
      'app.txt': 'app',
      'debug.log': 'no',
      'keep.log': 'yes',
      'secrets/key': 'no',
      'deep/dir/tmp-x': 'no',
      'deep/dir/real': 'yes',
    });
    const r = await build(['-t', 'ignored', dir]);
    assert.equal(r.status, 0, r.stderr);
    const run = await docker(daemon!, ['run', '--rm', 'ignored']);
    assert.deepEqual(run.stdout.trim().split('\n'), ['./.dockerignore', './Dockerfile', './app.txt', './deep/dir/real', './keep.log']);
  });

  it("reports a failing RUN with docker's message and exits with its code", async () => {
    const dir = await ctx({ 'Dockerfile': 'FROM busybox\nRUN echo before-failing\nRUN exit 3\nRUN echo never\n' });
    const imageIds = async () => new Set((await ok(daemon!, ['images', '-aq', '--no-trunc'])).trim().split('\n'));
    const before = (await imageIds()).size;
    const r = await build(['-t', 'broken', dir]);
    // docker v28's CLI exits with errorDetail.code, the RUN's own status.
    assert.equal(r.status, 3, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stderr, /The command '\/bin\/sh -c exit 3' returned a non-zero code: 3/);
    assert.match(r.stdout, /before-failing/);
    assert.doesNotMatch(r.stdout, /never|Successfully/);
    const inspect = await docker(daemon!, ['image', 'inspect', 'broken']);
    assert.notEqual(inspect.status, 0);
    // Only the step that succeeded became an image.
    assert.equal((await imageIds()).size, before + 1);
  });

  it('expands variables, honours the escape directive, SHELL, ENTRYPOINT, ONBUILD, ADD archives, --chown, globs and --target', async () => {
    const tarDir = await ctx({ 'inner/one.txt': 'one\n', 'inner/two.txt': 'two\n' });
    const archive = (await runCommand('sh', ['-c', `tar -C ${tarDir} -czf - inner | base64 -w0`])).stdout;
    const dir = await ctx({
      'Dockerfile': [
        '# escape=`',
        'FROM busybox AS base',
        'ONBUILD RUN echo triggered > /onbuild.txt',
        '',
        'FROM base AS final',
        'ENV NAME=world EMPTY=',
        'ARG UNSET',
        'ENV SUMMARY="${NAME:-x} ${EMPTY:-fallback} ${NAME:+set} [${UNSET:+y}] `$NAME"',
        'RUN echo "$SUMMARY" `',
        '    > /expanded.txt',
        'ADD bundle.tgz /opt/',
        'COPY --chown=tester:extra *.cfg /etc/app/',
        'SHELL ["/bin/sh", "-c"]',
        'WORKDIR /opt/inner',
        'ENTRYPOINT ["sh", "-c", "cat /onbuild.txt /expanded.txt one.txt two.txt; stat -c %U:%G /etc/app/a.cfg; ls /etc/app"]',
        '',
        'FROM busybox AS unused',
        'RUN exit 9',
      ].join('\n'),
      'bundle.tgz': Buffer.from(archive, 'base64'),
      'a.cfg': 'a',
      'b.cfg': 'b',
      'c.txt': 'not copied',
    });
    const r = await build(['--target', 'final', '-t', 'features', dir]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /# Executing 1 build trigger/);
    assert.doesNotMatch(r.stdout, /exit 9/);
    const run = await docker(daemon!, ['run', '--rm', 'features']);
    assert.equal(run.status, 0, run.stderr);
    assert.equal(run.stdout, 'triggered\nworld fallback set [] $NAME\none\ntwo\ntester:extra\na.cfg\nb.cfg\n');
  });

  it('records metadata instructions in the image config; -q prints only the ID; a Dockerfile from stdin builds', async () => {
    const dir = await ctx({
      'Dockerfile': [
        'FROM busybox',
        'MAINTAINER someone',
        'USER tester',
        'RUN id -un > /tmp/who && echo "$http_proxy" > /tmp/proxy',
        'EXPOSE 80 53/udp 8000-8001',
        'VOLUME ["/data"]',
        'STOPSIGNAL SIGUSR1',
        'HEALTHCHECK --interval=5s --retries=2 CMD true',
        'ONBUILD RUN echo later',
        'ENTRYPOINT ["cat"]',
        'CMD ["/tmp/who"]',
      ].join('\n'),
    });
    // A predefined proxy arg reaches RUN without an ARG line, and stays out of the history.
    const r = await build(['-q', '-t', 'meta', '--build-arg', 'http_proxy=http://127.0.0.1:3128', dir]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /^sha256:[a-f0-9]{64}\n$/);
    const inspect = JSON.parse(await ok(daemon!, ['image', 'inspect', 'meta']))[0] as { Id: string; Author: string; Config: Record<string, unknown> };
    assert.equal(inspect.Id, r.stdout.trim());
    assert.equal(inspect.Author, 'someone');
    const c = inspect.Config;
    assert.equal(c.User, 'tester');
    assert.deepEqual(Object.keys(c.ExposedPorts as object).sort(), ['53/udp', '80/tcp', '8000/tcp', '8001/tcp']);
    assert.deepEqual(c.Volumes, { '/data': {} });
    assert.equal(c.StopSignal, 'SIGUSR1');
    assert.deepEqual(c.Healthcheck, { Test: ['CMD-SHELL', 'true'], Interval: 5e9, Retries: 2 });
    assert.deepEqual(c.OnBuild, ['RUN echo later']);
    assert.deepEqual(c.Entrypoint, ['cat']);
    const run = await docker(daemon!, ['run', '--rm', 'meta']);
    assert.equal(run.stdout, 'tester\n');
    assert.equal((await docker(daemon!, ['run', '--rm', 'meta', '/tmp/proxy'])).stdout, 'http://127.0.0.1:3128\n');
    assert.doesNotMatch(await ok(daemon!, ['history', '--no-trunc', 'meta']), /3128/);

    const piped = await build(['-t', 'stdin-built', '-'], Buffer.from('FROM busybox\nRUN echo from-stdin > /s\nCMD ["cat", "/s"]\n'));
    assert.equal(piped.status, 0, `${piped.stdout}\n${piped.stderr}`);
    assert.equal((await docker(daemon!, ['run', '--rm', 'stdin-built'])).stdout, 'from-stdin\n');
  });

  it('builds FROM scratch with COPY --from a stage and an image', async () => {
    // WORKDIR creates its directory in the image (so another stage can copy it), as docker does.
    const dir = await ctx({
      'Dockerfile': 'FROM busybox AS w\nWORKDIR /made/here\nFROM scratch\nCOPY --from=w /made /made\nCOPY --from=busybox /bin/busybox /busybox\nENTRYPOINT ["/busybox", "ls", "-d", "/made/here"]\n',
    });
    const r = await build(['-t', 'from-scratch', dir]);
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /Step 3\/6 : FROM scratch\n ---> \n/);
    const layers = JSON.parse(await ok(daemon!, ['image', 'inspect', '--format', '{{json .RootFS.Layers}}', 'from-scratch'])) as string[];
    assert.equal(layers.length, 2);
    const run = await docker(daemon!, ['run', '--rm', 'from-scratch']);
    assert.equal(run.stdout, '/made/here\n', run.stderr);
  });

  it('stops a RUN and removes its layer when the client goes away', async () => {
    const dir = await ctx({ 'Dockerfile': 'FROM busybox\nRUN echo started; sleep 3131\n' });
    const child = spawn('docker', ['build', dir], { env: { ...process.env, ...LEGACY, DOCKER_HOST: daemon!.host }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise((r) => child.once('exit', r));
    try {
      await waitFor(() => /^started$/m.test(out), 60_000, () => `the RUN never started:\n${out}`);
      const during = await mountsUnder(daemon!.dir);
      assert.ok(during.length > 0, 'the RUN step has its rootfs mounted');
    } finally {
      child.kill('SIGKILL');
      await exited;
    }
    await waitFor(async () => (await mountsUnder(daemon!.dir)).length === 0, 30_000, () => 'the build layer is still mounted');
    await waitFor(async () => (await readdir(join(daemon!.dataRoot, 'builder', 'tmp')).catch(() => [])).length === 0, 30_000, () => 'the build context is still there');
    await waitFor(async () => (await countProcesses('sleep 3131')) === 0, 30_000, () => 'the RUN process still runs');
  });

  it('refuses a missing COPY source and a missing target with docker\'s messages', async () => {
    const dir = await ctx({ 'Dockerfile': 'FROM busybox\nCOPY nosuch.txt /\n' });
    const r = await build([dir]);
    assert.equal(r.status, 1);
    assert.match(r.stderr, /COPY failed: file not found in build context or excluded by .dockerignore: stat nosuch.txt: file does not exist/);
    const t = await build(['--target', 'nope', dir]);
    assert.notEqual(t.status, 0);
    assert.match(t.stderr, /failed to reach build target nope in Dockerfile/);
    const bad = await ctx({ 'Dockerfile': 'FROM busybox\nFROBNICATE x\n' });
    const p = await build([bad]);
    assert.notEqual(p.status, 0);
    assert.match(p.stderr, /unknown instruction: FROBNICATE/);
  });

  it('tsengine build: tags, -f outside the context, -q, .dockerignore, cache and a failing RUN', async () => {
    const longName = `.deep/${'d'.repeat(60)}/${'f'.repeat(80)}.txt`;
    const dir = await ctx({ 'msg.txt': 'from tsengine\n', 'skip.me': 'x', 'big/blob': Buffer.alloc(2_000_000), '.dockerignore': 'skip.me\nbig\n', [longName]: 'long' });
    const dockerfileDir = await ctx({ 'Build.dockerfile': `FROM busybox\nCOPY . /c/\nRUN ls /c > /listing && test -f /c/${longName}\nCMD ["cat", "/c/msg.txt", "/listing"]\n` });
    const host = daemon!;
    const first = await tsengine(['build', '-t', 'tse:1', '-f', join(dockerfileDir, 'Build.dockerfile'), dir], { host });
    assert.equal(first.status, 0, `${first.stdout}\n${first.stderr}`);
    // Ignored files are not even sent (the 2 MB blob), as with docker.
    assert.match(first.stdout, /^Sending build context to Docker daemon {2}\d+(\.\d+)?kB\n/);
    assert.match(first.stdout, /Step 1\/4 : FROM busybox\n ---> [a-f0-9]{12}\n/);
    assert.match(first.stdout, /Successfully tagged tse:1\n$/);
    const run = await docker(daemon!, ['run', '--rm', 'tse:1']);
    assert.equal(run.stdout, 'from tsengine\nmsg.txt\n');

    const quiet = await tsengine(['build', '-q', '-t', 'tse:1', '-f', join(dockerfileDir, 'Build.dockerfile'), dir], { host });
    assert.equal(quiet.status, 0, quiet.stderr);
    const id = (await ok(daemon!, ['image', 'inspect', '--format', '{{.Id}}', 'tse:1'])).trim();
    assert.equal(quiet.stdout, `${id}\n`);

    const failing = await ctx({ 'Dockerfile': 'FROM busybox\nRUN echo out; exit 7\n' });
    const f = await tsengine(['build', failing], { host });
    assert.equal(f.status, 7, `${f.stdout}\n${f.stderr}`);
    assert.match(f.stderr, /The command '\/bin\/sh -c echo out; exit 7' returned a non-zero code: 7/);

    // A Dockerfile on stdin with an empty context.
    const piped = await tsengine(['build', '-t', 'piped', '-'], { host, input: 'FROM busybox\nRUN echo piped > /p\nCMD ["cat", "/p"]\n' });
    assert.equal(piped.status, 0, `${piped.stdout}\n${piped.stderr}`);
    assert.equal((await docker(daemon!, ['run', '--rm', 'piped'])).stdout, 'piped\n');
  });
});

describe('docker build pulls a missing base image through the registry plugin', () => {
  let registry: TestRegistry | undefined;
  let daemon: Daemon | undefined;
  let dir = '';

  before(async () => {
    registry = await startRegistry();
    daemon = await startDaemon({ plugins: [...PLUGINS, '@tsengine/registry-v2'], config: { graphdriver: 'overlay' } });
    await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
  });

  after(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
    await daemon?.stop();
    await registry?.stop();
  });

  it('pulls FROM an image that is only in the registry, then builds on it', async () => {
    const image = `${registry!.host}/test/base:1`;
    await ok(daemon!, ['tag', 'busybox', image]);
    await ok(daemon!, ['push', image]);
    await ok(daemon!, ['rmi', image]);
    await ok(daemon!, ['rmi', 'busybox']);
    assert.notEqual((await docker(daemon!, ['image', 'inspect', image])).status, 0);
    dir = await context({ 'Dockerfile': `FROM ${image}\nRUN echo pulled > /p\nCMD ["cat", "/p"]\n` });
    const r = await docker(daemon!, ['build', '-t', 'on-pulled', dir], { env: LEGACY, timeoutMs: 120_000 });
    assert.equal(r.status, 0, `${r.stdout}\n${r.stderr}`);
    assert.match(r.stdout, /Pulling from test\/base/);
    assert.match(r.stdout, /Successfully tagged on-pulled:latest/);
    assert.equal((await docker(daemon!, ['run', '--rm', 'on-pulled'])).stdout, 'pulled\n');
  });
});

describe('a daemon stopping in the middle of a build', () => {
  it('kills the RUN, removes the build layer and exits cleanly', async () => {
    const daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' } });
    const dir = await context({ 'Dockerfile': 'FROM busybox\nRUN echo started; sleep 3132\n' });
    let child: ReturnType<typeof spawn> | undefined;
    try {
      await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
      child = spawn('docker', ['build', dir], { env: { ...process.env, ...LEGACY, DOCKER_HOST: daemon.host }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
      await waitFor(() => /^started$/m.test(out), 60_000, () => `the RUN never started:\n${out}`);
      const result = await daemon.stop();
      assert.equal(result.code, 0, daemon.logs());
      assert.equal(await countProcesses('sleep 3132'), 0);
      assert.deepEqual(await mountsUnder(daemon.dir), []);
    } finally {
      child?.kill('SIGKILL');
      await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    }
  });
});
