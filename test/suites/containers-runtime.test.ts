import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { CONTAINER_PLUGINS, type CommandResult, type Daemon, docker, runCommand, startDaemon } from '../helpers/daemon.js';
import { busyboxRootfsTar } from '../helpers/images.js';

const PLUGINS = CONTAINER_PLUGINS;

let daemon: Daemon;

async function ok(args: string[], input?: string): Promise<string> {
  const r = await docker(daemon, args, input !== undefined ? { input } : {});
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
  return r.stdout;
}

async function fails(args: string[]): Promise<CommandResult> {
  const r = await docker(daemon, args);
  assert.notEqual(r.status, 0, `docker ${args.join(' ')} should have failed: ${r.stdout}`);
  return r;
}

/** Polls `probe` until it returns a truthy value or the deadline passes. */
async function eventually<T>(what: string, probe: () => Promise<T | undefined | false>, timeoutMs = 30_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${String(last)})`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const inspectField = async (name: string, format: string) => (await ok(['inspect', '-f', format, name])).trim();

/** The v1 cgroup file of a container (these machines), or the v2 one. */
function cgroupFile(id: string, controller: string, v1: string, v2: string): string {
  const v1Path = `/sys/fs/cgroup/${controller}/tsengine/${id}/${v1}`;
  return existsSync(v1Path) ? v1Path : `/sys/fs/cgroup/tsengine/${id}/${v2}`;
}

/** Runs a docker command inside a pseudo-terminal with `script` and a fixed window size. */
function inPty(command: string): Promise<CommandResult> {
  return runCommand('script', ['-qec', `stty rows 30 cols 100; ${command}`, '/dev/null'], { env: { DOCKER_HOST: daemon.host }, timeoutMs: 60_000 });
}

before(async () => {
  daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' } });
  const import_ = await docker(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], { input: await busyboxRootfsTar() });
  assert.equal(import_.status, 0, import_.stderr);
});

after(async () => {
  if (!daemon) return;
  await docker(daemon, ['rm', '-f', ...(await ok(['ps', '-aq'])).split('\n').filter(Boolean)]).catch(() => undefined);
  const result = await daemon.stop();
  assert.equal(result.code, 0, `daemon exited with ${result.code ?? result.signal}:\n${daemon.logs().slice(-4000)}`);
});

describe('resources and security options', () => {
  it("runs containers under the default scheduling policy, not the daemon's helper threads' SCHED_BATCH", async () => {
    // Field 41 of stat (counted after the command's parentheses) is the policy: 0 SCHED_OTHER, 3 SCHED_BATCH.
    const policyOf = (stat: string) => stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38];
    // The image import in before() started the digest thread, which put the helper threads under SCHED_BATCH.
    const threads = readdirSync(`/proc/${daemon.pid}/task`).map((tid) => ({ tid, policy: policyOf(readFileSync(`/proc/${daemon.pid}/task/${tid}/stat`, 'utf8')) }));
    assert.ok(threads.some((t) => t.policy === '3'), 'no helper thread of the daemon is under SCHED_BATCH');
    assert.equal(threads.find((t) => t.tid === String(daemon.pid))?.policy, '0');
    assert.equal((await ok(['run', '--rm', 'busybox', 'sh', '-c', "cut -d' ' -f41 /proc/self/stat"])).trim(), '0');
  });

  it('writes memory, swap, cpu, cpuset and pids limits into the cgroup', async () => {
    const id = (await ok(['run', '-d', '--memory', '64m', '--memory-swap', '128m', '--cpus', '0.5', '--cpu-shares', '512', '--cpuset-cpus', '0', '--pids-limit', '42', 'busybox', 'sleep', '3600'])).trim();
    try {
      const read = (controller: string, v1: string, v2: string) => readFileSync(cgroupFile(id, controller, v1, v2), 'utf8').trim();
      if (existsSync(`/sys/fs/cgroup/memory/tsengine/${id}`)) {
        assert.equal(read('memory', 'memory.limit_in_bytes', ''), String(64 * 1024 * 1024));
        if (existsSync(cgroupFile(id, 'memory', 'memory.memsw.limit_in_bytes', ''))) assert.equal(read('memory', 'memory.memsw.limit_in_bytes', ''), String(128 * 1024 * 1024));
        assert.equal(read('cpu', 'cpu.cfs_quota_us', ''), '50000');
        assert.equal(read('cpu', 'cpu.cfs_period_us', ''), '100000');
        assert.equal(read('cpu', 'cpu.shares', ''), '512');
        assert.equal(read('cpuset', 'cpuset.cpus', ''), '0');
        assert.equal(read('pids', 'pids.max', ''), '42');
      } else {
        assert.equal(read('', '', 'memory.max'), String(64 * 1024 * 1024));
        assert.equal(read('', '', 'cpu.max'), '50000 100000');
        assert.equal(read('', '', 'pids.max'), '42');
      }
      const host = JSON.parse(await ok(['inspect', '-f', '{{json .HostConfig}}', id])) as Record<string, unknown>;
      assert.equal(host.Memory, 64 * 1024 * 1024);
      assert.equal(host.NanoCpus, 5e8);
      assert.equal(host.PidsLimit, 42);
    } finally {
      await ok(['rm', '-f', id]);
    }
    assert.equal(existsSync(`/sys/fs/cgroup/memory/tsengine/${id}`) || existsSync(`/sys/fs/cgroup/tsengine/${id}`), false, 'the cgroup is removed with the container');
  });

  it('reports an OOM kill as State.OOMKilled with exit code 137', async () => {
    const r = await docker(daemon, ['run', '--name', 'oomer', '--memory', '16m', '--memory-swap', '16m', 'busybox', 'sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\0" a); echo survived']);
    assert.equal(r.status, 137, r.stderr);
    assert.doesNotMatch(r.stdout, /survived/);
    assert.equal(await inspectField('oomer', '{{.State.OOMKilled}} {{.State.ExitCode}}'), 'true 137');
    await ok(['rm', 'oomer']);
  });

  it('stops a fork loop at the pids limit', async () => {
    const fork = ['sh', '-c', 'sleep 1; for i in 1 2 3 4 5 6 7 8 9 10; do sleep 1 & done; echo all-started; wait'];
    const limited = await docker(daemon, ['run', '--rm', '--pids-limit', '5', 'busybox', ...fork]);
    assert.notEqual(limited.status, 0);
    assert.doesNotMatch(limited.stdout, /all-started/);
    assert.match(limited.stderr, /can't fork: Resource temporarily unavailable/);
    assert.equal((await ok(['run', '--rm', '--pids-limit', '50', 'busybox', ...fork])).trim(), 'all-started');
    const id = (await ok(['run', '-d', '--pids-limit', '5', 'busybox', 'sleep', '3600'])).trim();
    const file = cgroupFile(id, 'pids', 'pids.max', 'pids.max');
    assert.equal(readFileSync(file, 'utf8').trim(), '5');
    // exec's helper must not count against the limit before it becomes the program.
    assert.equal(await ok(['exec', id, 'echo', 'inside']), 'inside\n');
    await ok(['rm', '-f', id]);
  });

  it('refuses limits docker refuses, with its messages', async () => {
    assert.match((await fails(['create', '--memory', '1m', 'busybox'])).stderr, /Minimum memory limit allowed is 6MB/);
    assert.match((await fails(['create', '--cpus', '64', 'busybox'])).stderr, /Range of CPUs is from 0.01 to/);
    assert.match((await fails(['create', '--security-opt', 'bogus', 'busybox'])).stderr, /invalid --security-opt/i);
  });

  it('applies no-new-privileges, cap-add, cap-drop and privileged', async () => {
    const status = async (...flags: string[]) => ok(['run', '--rm', ...flags, 'busybox', 'grep', '-E', '^(CapEff|NoNewPrivs)', '/proc/self/status']);
    assert.match(await status(), /CapEff:\s+00000000a80425fb/);
    assert.match(await status(), /NoNewPrivs:\s+0/);
    assert.match(await status('--security-opt', 'no-new-privileges'), /NoNewPrivs:\s+1/);
    assert.match(await status('--cap-drop', 'ALL'), /CapEff:\s+0000000000000000/);
    assert.match(await status('--cap-add', 'NET_ADMIN'), /CapEff:\s+00000000a80435fb/);
    assert.match(await status('--cap-drop', 'CHOWN'), /CapEff:\s+00000000a80425fa/);
    assert.doesNotMatch(await status('--privileged'), /CapEff:\s+00000000a80425fb/);
  });

  it('makes the rootfs read-only with --read-only and resolves -u and --group-add', async () => {
    const ro = await docker(daemon, ['run', '--rm', '--read-only', 'busybox', 'touch', '/x']);
    assert.notEqual(ro.status, 0);
    assert.match(ro.stderr, /Read-only file system/);
    assert.equal((await ok(['run', '--rm', '--read-only', 'busybox', 'touch', '/tmp/../dev/shm/x'])).trim(), '');
    assert.equal((await ok(['run', '--rm', '-u', 'tester', 'busybox', 'id'])).trim(), 'uid=1000(tester) gid=1000(tester) groups=2000(extra)');
    assert.equal((await ok(['run', '--rm', '-u', '1000:2000', 'busybox', 'id', '-G'])).trim(), '2000');
    assert.match(await ok(['run', '--rm', '-u', 'nobody', '--group-add', 'extra', '--group-add', '4242', 'busybox', 'id', '-G']), /\b2000\b.*\b4242\b/);
    assert.match((await fails(['run', '--rm', '-u', 'nosuchuser', 'busybox', 'true'])).stderr, /unable to find user nosuchuser/);
  });

  it('sizes /dev/shm, sets hostname, domainname and labels', async () => {
    const shm = await ok(['run', '--rm', '--shm-size', '8m', 'busybox', 'df', '-k', '/dev/shm']);
    assert.match(shm, /\s8192\s/);
    const names = await ok(['run', '--rm', '-h', 'box1', '--domainname', 'example.test', 'busybox', 'sh', '-c', 'hostname; cat /proc/sys/kernel/domainname']);
    assert.equal(names, 'box1\nexample.test\n');
    await ok(['create', '--name', 'labelled', '-l', 'tier=web', '-l', 'team=a', 'busybox', 'true']);
    assert.equal(await inspectField('labelled', '{{index .Config.Labels "tier"}} {{index .Config.Labels "team"}}'), 'web a');
    await ok(['rm', 'labelled']);
  });

  it('honours --stop-signal and --stop-timeout', async () => {
    await ok(['run', '-d', '--name', 'trapper', '--stop-signal', 'USR1', 'busybox', 'sh', '-c', 'trap "echo got-usr1; exit 7" USR1; while true; do sleep 0.1; done']);
    await eventually('trap installed', async () => (await inspectField('trapper', '{{.State.Running}}')) === 'true');
    await new Promise((r) => setTimeout(r, 300));
    await ok(['stop', 'trapper']);
    assert.equal(await inspectField('trapper', '{{.State.ExitCode}}'), '7');
    assert.match(await ok(['logs', 'trapper']), /got-usr1/);
    await ok(['rm', 'trapper']);

    await ok(['run', '-d', '--name', 'stubborn', '--stop-timeout', '1', 'busybox', 'sh', '-c', 'trap "" TERM; while true; do sleep 0.1; done']);
    const started = Date.now();
    await ok(['stop', 'stubborn']);
    assert.ok(Date.now() - started < 9_000, 'the stop timeout of 1 s is used instead of 10 s');
    assert.equal(await inspectField('stubborn', '{{.State.ExitCode}}'), '137');
    await ok(['rm', 'stubborn']);
  });
});

describe('logs through the json-file driver', () => {
  it('keeps the output of a detached container in Docker\'s json-file format', async () => {
    const id = (await ok(['run', '-d', '--name', 'logger', 'busybox', 'sh', '-c', 'echo one; echo two >&2; echo three; printf partial'])).trim();
    await ok(['wait', 'logger']);
    const logPath = await inspectField('logger', '{{.LogPath}}');
    assert.equal(logPath, `${daemon.dataRoot}/containers/${id}/${id}-json.log`);
    const lines = (await readFile(logPath, 'utf8')).trim().split('\n').map((l) => JSON.parse(l) as { log: string; stream: string; time: string });
    assert.deepEqual(
      lines.map((l) => [l.stream, l.log]).sort(),
      [
        ['stderr', 'two\n'],
        ['stdout', 'one\n'],
        ['stdout', 'partial'],
        ['stdout', 'three\n'],
      ],
    );
    for (const l of lines) assert.match(l.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$/);
    const r = await docker(daemon, ['logs', 'logger']);
    assert.equal(r.stdout, 'one\nthree\npartial');
    assert.equal(r.stderr, 'two\n');
    assert.equal((await docker(daemon, ['logs', '--tail', '1', 'logger'])).stdout, 'partial');
    const stamped = (await docker(daemon, ['logs', '-t', 'logger'])).stdout;
    assert.match(stamped, /^\d{4}-\d\d-\d\dT[\d:.]+Z one\n\d{4}-\d\d-\d\dT[\d:.]+Z three\n/);
    const future = Math.floor(Date.now() / 1000) + 3600;
    assert.equal((await docker(daemon, ['logs', '--since', String(future), 'logger'])).stdout, '');
    assert.equal((await docker(daemon, ['logs', '--until', '2000-01-01T00:00:00Z', 'logger'])).stdout, '');
    assert.equal((await docker(daemon, ['logs', '--since', '2000-01-01T00:00:00Z', 'logger'])).stdout, 'one\nthree\npartial');
    await ok(['rm', 'logger']);
    assert.equal(existsSync(logPath), false);
  });

  it('follows a running container until it exits', async () => {
    await ok(['run', '-d', '--name', 'follower', 'busybox', 'sh', '-c', 'echo first; sleep 2; echo second; sleep 1; echo third']);
    await eventually('first line', async () => (await docker(daemon, ['logs', 'follower'])).stdout.includes('first'));
    const r = await docker(daemon, ['logs', '-f', 'follower']);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, 'first\nsecond\nthird\n');
    await ok(['rm', 'follower']);
  });

  it('keeps TTY output', async () => {
    await ok(['run', '-d', '-t', '--name', 'ttylog', 'busybox', 'sh', '-c', 'echo on-tty; echo err-tty >&2']);
    await ok(['wait', 'ttylog']);
    const r = await docker(daemon, ['logs', 'ttylog']);
    assert.equal(r.stdout, 'on-tty\r\nerr-tty\r\n');
    await ok(['rm', 'ttylog']);
  });

  it('refuses logs for a container with --log-driver none', async () => {
    await ok(['create', '--name', 'nolog', '--log-driver', 'none', 'busybox', 'true']);
    assert.match((await fails(['logs', 'nolog'])).stderr, /configured logging driver does not support reading/);
    await ok(['rm', 'nolog']);
  });
});

describe('exec', () => {
  before(async () => {
    await ok(['run', '-d', '--name', 'host1', '-e', 'FROM_RUN=1', 'busybox', 'sleep', '3600']);
  });
  after(async () => {
    await docker(daemon, ['rm', '-f', 'host1']);
  });

  it('runs a command in the container with its exit code, -u, -w and -e', async () => {
    const r = await docker(daemon, ['exec', 'host1', 'sh', '-c', 'echo out; echo err >&2; exit 5']);
    assert.equal(r.status, 5);
    assert.equal(r.stdout, 'out\n');
    assert.equal(r.stderr, 'err\n');
    assert.equal(await ok(['exec', '-u', 'tester', '-w', '/tmp', '-e', 'EXTRA=x', 'host1', 'sh', '-c', 'id -u; pwd; echo $EXTRA $FROM_RUN']), '1000\n/tmp\nx 1\n');
    assert.equal(await ok(['exec', 'host1', 'cat', '/proc/1/cmdline']), 'sleep\u00003600\u0000');
  });

  it('delivers the whole output of concurrent fast execs', async () => {
    const runs = await Promise.all(
      Array.from({ length: 6 }, (_, i) => docker(daemon, i % 2 ? ['exec', 'host1', 'echo', `n${i}`] : ['exec', '-t', 'host1', 'echo', `n${i}`])),
    );
    runs.forEach((r, i) => {
      assert.equal(r.status, 0, r.stderr);
      assert.equal(r.stdout, i % 2 ? `n${i}\n` : `n${i}\r\n`);
    });
  });

  it('pipes stdin with -i and closes it at EOF', async () => {
    assert.equal(await ok(['exec', '-i', 'host1', 'sh', '-c', 'cat; echo end'], 'piped\n'), 'piped\nend\n');
  });

  it('reports a missing command with exit code 127 and lists exec IDs', async () => {
    const r = await docker(daemon, ['exec', 'host1', 'nosuchcmd']);
    assert.equal(r.status, 127);
    assert.match(r.stdout + r.stderr, /executable file not found in \$PATH/);
    const ids = JSON.parse(await ok(['inspect', '-f', '{{json .ExecIDs}}', 'host1'])) as string[];
    assert.ok(ids.length >= 3);
  });

  it('detaches with -d and refuses a stopped container', async () => {
    await ok(['exec', '-d', 'host1', 'sh', '-c', 'echo detached > /tmp/marker']);
    await eventually('the detached exec wrote its file', async () => (await docker(daemon, ['exec', 'host1', 'cat', '/tmp/marker'])).stdout === 'detached\n');
    await ok(['create', '--name', 'stopped1', 'busybox', 'true']);
    assert.match((await fails(['exec', 'stopped1', 'true'])).stderr, /is not running/);
    await ok(['rm', 'stopped1']);
  });

  it('gives -it a terminal with the console size', async () => {
    const r = await inPty(`docker exec -it host1 sh -c 'tty; stty size; exit 4'`);
    assert.equal(r.status, 4, r.stdout + r.stderr);
    assert.match(r.stdout, /\/dev\/pts\/\d+/);
    assert.match(r.stdout, /30 100/);
  });
});

describe('interactive run', () => {
  it('runs -it in a pty with its exit code', async () => {
    const r = await inPty(`docker run -it --rm busybox sh -c 'tty; stty size; exit 3'`);
    assert.equal(r.status, 3, r.stdout + r.stderr);
    assert.match(r.stdout, /\/dev\/pts\/0/);
    assert.match(r.stdout, /30 100/);
  });

  it('closes stdin for -i without -t at EOF', async () => {
    assert.equal(await ok(['run', '-i', '--rm', 'busybox', 'sh', '-c', 'cat; echo done'], 'hi\n'), 'hi\ndone\n');
  });
});

describe('lifecycle operations', () => {
  it('restarts on failure up to the maximum, with RestartCount', async () => {
    await ok(['run', '-d', '--name', 'flaky', '--restart', 'on-failure:2', 'busybox', 'sh', '-c', 'exit 3']);
    await eventually('two restarts then exited', async () => (await inspectField('flaky', '{{.State.Status}} {{.RestartCount}} {{.State.ExitCode}}')) === 'exited 2 3');
    assert.equal(await inspectField('flaky', '{{.HostConfig.RestartPolicy.Name}} {{.HostConfig.RestartPolicy.MaximumRetryCount}}'), 'on-failure 2');
    await ok(['rm', 'flaky']);
  });

  it('restarts "always" containers until stopped, and not after an explicit stop', async () => {
    await ok(['run', '-d', '--name', 'phoenix', '--restart', 'always', 'busybox', 'sh', '-c', 'sleep 0.2']);
    await eventually('restarted at least twice', async () => Number(await inspectField('phoenix', '{{.RestartCount}}')) >= 2);
    await ok(['stop', '-t', '1', 'phoenix']);
    const count = await inspectField('phoenix', '{{.RestartCount}}');
    assert.equal(await inspectField('phoenix', '{{.State.Running}} {{.State.Restarting}}'), 'false false');
    await new Promise((r) => setTimeout(r, 1500));
    assert.equal(await inspectField('phoenix', '{{.State.Running}} {{.RestartCount}}'), `false ${count}`);
    await ok(['rm', 'phoenix']);
  });

  it('refuses --restart with --rm and bad policies', async () => {
    assert.match((await fails(['create', '--restart', 'sometimes', 'busybox'])).stderr, /invalid restart policy|invalid/);
  });

  it('restarts, renames, pauses and unpauses', async () => {
    await ok(['run', '-d', '--name', 'worker', 'busybox', 'sleep', '3600']);
    const pid1 = await inspectField('worker', '{{.State.Pid}}');
    await ok(['restart', '-t', '1', 'worker']);
    const pid2 = await inspectField('worker', '{{.State.Pid}}');
    assert.notEqual(pid1, pid2);
    assert.equal(await inspectField('worker', '{{.State.Running}}'), 'true');

    await ok(['rename', 'worker', 'worker2']);
    assert.equal(await inspectField('worker2', '{{.Name}}'), '/worker2');
    assert.match((await fails(['inspect', 'worker'])).stderr, /No such object: worker/);

    await ok(['pause', 'worker2']);
    assert.equal(await inspectField('worker2', '{{.State.Status}} {{.State.Paused}}'), 'paused true');
    assert.match(await ok(['ps', '--filter', 'name=worker2', '--format', '{{.Status}}']), /^Up .* \(Paused\)$/m);
    const id = await inspectField('worker2', '{{.Id}}');
    const freezer = `/sys/fs/cgroup/freezer/tsengine/${id}/freezer.state`;
    if (existsSync(freezer)) assert.equal(readFileSync(freezer, 'utf8').trim(), 'FROZEN');
    assert.match((await fails(['pause', 'worker2'])).stderr, /already paused/);
    await ok(['unpause', 'worker2']);
    assert.equal(await inspectField('worker2', '{{.State.Status}} {{.State.Paused}}'), 'running false');
    assert.match((await fails(['unpause', 'worker2'])).stderr, /is not paused/);
    // A paused container still stops.
    await ok(['pause', 'worker2']);
    await ok(['stop', '-t', '1', 'worker2']);
    assert.equal(await inspectField('worker2', '{{.State.Status}}'), 'exited');
    await ok(['rm', 'worker2']);
    await ok(['run', '-d', '--name', 'frozen', 'busybox', 'sleep', '3600']);
    await ok(['pause', 'frozen']);
    await ok(['rm', '-f', 'frozen']);
    assert.match((await fails(['inspect', 'frozen'])).stderr, /No such object/);
  });

  it('shows top with ps columns and ps_args', async () => {
    await ok(['run', '-d', '--name', 'topper', 'busybox', 'sleep', '3600']);
    const ef = await ok(['top', 'topper']);
    assert.match(ef.split('\n')[0]!, /^UID\s+PID\s+PPID\s+C\s+STIME\s+TTY\s+TIME\s+CMD/);
    assert.match(ef, /sleep 3600/);
    const aux = await ok(['top', 'topper', 'aux']);
    assert.match(aux.split('\n')[0]!, /^USER\s+PID\s+%CPU\s+%MEM/);
    await ok(['rm', '-f', 'topper']);
  });

  it('reports stats from the cgroup, once and streaming', async () => {
    await ok(['run', '-d', '--name', 'statter', '--memory', '64m', 'busybox', 'sh', '-c', 'while true; do :; done']);
    const line = await ok(['stats', '--no-stream', '--format', '{{.Name}} {{.MemUsage}} {{.CPUPerc}} {{.PIDs}}', 'statter']);
    assert.match(line, /^statter \S+ \/ 64MiB [\d.]+% 1\n$/);
    const cpu = Number(/ ([\d.]+)% /.exec(line)?.[1]);
    assert.ok(cpu > 1, `a busy loop uses CPU: ${line}`);
    const raw = await runCommand('curl', ['-s', '--unix-socket', daemon.socket, `http://localhost/v1.45/containers/statter/stats?stream=0`]);
    const json = JSON.parse(raw.stdout) as { cpu_stats: { cpu_usage: { total_usage: number }; system_cpu_usage: number; online_cpus: number }; precpu_stats: { cpu_usage: { total_usage: number } }; memory_stats: { limit: number }; pids_stats: { current: number }; name: string };
    assert.equal(json.name, '/statter');
    assert.equal(json.memory_stats.limit, 64 * 1024 * 1024);
    assert.ok(json.cpu_stats.cpu_usage.total_usage > json.precpu_stats.cpu_usage.total_usage);
    assert.equal(json.pids_stats.current, 1);
    const streamed = await runCommand('curl', ['-s', '-N', '--max-time', '4', '--unix-socket', daemon.socket, `http://localhost/v1.45/containers/statter/stats`]);
    const samples = streamed.stdout.trim().split('\n').filter(Boolean);
    assert.ok(samples.length >= 2, `one sample a second while streaming: ${samples.length}`);
    await ok(['rm', '-f', 'statter']);
  });

  it('resizes a TTY container', async () => {
    await ok(['run', '-d', '-t', '--name', 'sizer', 'busybox', 'sh', '-c', 'trap "stty size; exit 0" WINCH; while true; do sleep 0.1; done']);
    await eventually('running', async () => (await inspectField('sizer', '{{.State.Running}}')) === 'true');
    await new Promise((r) => setTimeout(r, 300));
    const r = await runCommand('curl', ['-s', '-o', '/dev/null', '-w', '%{http_code}', '-X', 'POST', '--unix-socket', daemon.socket, 'http://localhost/v1.45/containers/sizer/resize?h=33&w=77']);
    assert.equal(r.stdout, '200');
    await eventually('the size reached the program', async () => (await docker(daemon, ['logs', 'sizer'])).stdout.includes('33 77'));
    await ok(['rm', '-f', 'sizer']);
  });

  it('filters ps, shows sizes, and prunes stopped containers', async () => {
    await ok(['create', '--name', 'f-created', '-l', 'group=x', 'busybox', 'true']);
    await docker(daemon, ['run', '--name', 'f-exited', '-l', 'group=y', 'busybox', 'sh', '-c', 'echo data > /file; exit 2']);
    await ok(['run', '-d', '--name', 'f-running', '-l', 'group=x', 'busybox', 'sleep', '3600']);
    const names = async (...args: string[]) => (await ok(['ps', ...args, '--format', '{{.Names}}'])).trim().split('\n').filter(Boolean).sort();
    assert.deepEqual(await names('--filter', 'status=exited'), ['f-exited']);
    assert.deepEqual(await names('--filter', 'status=created'), ['f-created']);
    assert.deepEqual(await names('-a', '--filter', 'label=group=x'), ['f-created', 'f-running']);
    assert.deepEqual(await names('-a', '--filter', 'exited=2'), ['f-exited']);
    assert.deepEqual(await names('-a', '--filter', 'name=f-ex'), ['f-exited']);
    assert.deepEqual(await names('-a', '--filter', 'ancestor=busybox', '--filter', 'name=^/f-'), ['f-created', 'f-exited', 'f-running']);
    assert.deepEqual(await names('-a', '--filter', 'since=f-created', '--filter', 'name=^/f-'), ['f-exited', 'f-running']);
    assert.deepEqual(await names('-a', '--filter', 'before=f-running', '--filter', 'name=^/f-'), ['f-created', 'f-exited']);
    assert.deepEqual(await names('-a', '-n', '1'), ['f-running']);
    const id = await inspectField('f-running', '{{.Id}}');
    assert.deepEqual(await names('--filter', `id=${id.slice(0, 8)}`), ['f-running']);
    assert.match((await fails(['ps', '--filter', 'bogus=1'])).stderr, /invalid filter 'bogus'/);
    const sizes = await ok(['ps', '-a', '-s', '--filter', 'name=f-exited', '--format', '{{.Size}}']);
    assert.match(sizes, /^\d+(\.\d+)?k?B \(virtual [\d.]+[kM]B\)$/m);
    assert.notEqual(sizes.trim().split(' ')[0], '0B', 'the written file counts');

    const pruned = await ok(['container', 'prune', '-f', '--filter', 'label=group=y']);
    assert.match(pruned, /Deleted Containers:/);
    assert.deepEqual(await names('-a', '--filter', 'name=^/f-'), ['f-created', 'f-running']);
    await ok(['container', 'prune', '-f']);
    assert.deepEqual(await names('-a', '--filter', 'name=^/f-'), ['f-running']);
    await ok(['rm', '-f', 'f-running']);
  });

  it('waits for each condition', async () => {
    await ok(['create', '--name', 'waiter', 'busybox', 'sh', '-c', 'exit 9']);
    const api = (path: string) => runCommand('curl', ['-s', '-X', 'POST', '--unix-socket', daemon.socket, `http://localhost/v1.45${path}`]);
    const nextExit = api('/containers/waiter/wait?condition=next-exit');
    const removed = api('/containers/waiter/wait?condition=removed');
    await new Promise((r) => setTimeout(r, 200));
    await ok(['start', 'waiter']);
    assert.equal(JSON.parse((await nextExit).stdout).StatusCode, 9);
    assert.equal((await ok(['wait', 'waiter'])).trim(), '9');
    await ok(['rm', 'waiter']);
    assert.equal(JSON.parse((await removed).stdout).StatusCode, 9);
    assert.match((await api('/containers/x/wait?condition=bogus')).stdout, /invalid condition/);
  });
});

describe('events', () => {
  it('streams lifecycle events with filters and ends at until', async () => {
    const since = Math.floor(Date.now() / 1000) - 1;
    assert.equal((await docker(daemon, ['run', '--name', 'evented', '-l', 'watch=me', 'busybox', 'sh', '-c', 'exit 4'])).status, 4);
    await ok(['start', 'evented']);
    await ok(['wait', 'evented']);
    await ok(['rename', 'evented', 'evented2']);
    await ok(['rm', 'evented2']);
    const until = Math.floor(Date.now() / 1000) + 1;
    const r = await docker(daemon, ['events', '--since', String(since), '--until', String(until), '--filter', 'label=watch=me', '--format', '{{json .}}']);
    assert.equal(r.status, 0, r.stderr);
    const events = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { Type: string; Action: string; status: string; id: string; from: string; scope: string; time: number; timeNano: number; Actor: { ID: string; Attributes: Record<string, string> } });
    const actions = events.map((e) => e.Action);
    for (const wanted of ['create', 'attach', 'start', 'die', 'rename', 'destroy']) assert.ok(actions.includes(wanted), `${wanted} in ${actions.join(',')}`);
    const die = events.find((e) => e.Action === 'die')!;
    assert.equal(die.Type, 'container');
    assert.equal(die.Actor.Attributes.exitCode, '4');
    assert.equal(die.Actor.Attributes.name, 'evented');
    assert.equal(die.Actor.Attributes.image, 'busybox');
    assert.equal(die.from, 'busybox');
    assert.equal(die.status, 'die');
    assert.equal(die.scope, 'local');
    assert.equal(Math.floor(die.timeNano / 1e9), die.time);
    assert.equal(events.find((e) => e.Action === 'rename')!.Actor.Attributes.oldName, '/evented');

    const onlyDie = await docker(daemon, ['events', '--since', String(since), '--until', String(until), '--filter', 'event=die', '--filter', 'container=evented', '--format', '{{.Action}}']);
    assert.equal(onlyDie.stdout.trim().split('\n').filter(Boolean).every((a) => a === 'die'), true, onlyDie.stdout);
  });

  it('delivers live events to a subscriber, including exec and pause', async () => {
    await ok(['run', '-d', '--name', 'live', 'busybox', 'sleep', '3600']);
    const until = Math.floor(Date.now() / 1000) + 6;
    const stream = docker(daemon, ['events', '--until', String(until), '--filter', 'container=live', '--format', '{{.Action}}']);
    await new Promise((r) => setTimeout(r, 500));
    await ok(['exec', 'live', 'true']);
    await ok(['pause', 'live']);
    await ok(['unpause', 'live']);
    await ok(['kill', 'live']);
    const r = await stream;
    assert.equal(r.status, 0, r.stderr);
    const actions = r.stdout.trim().split('\n');
    for (const wanted of ['exec_create: true', 'exec_start: true', 'exec_die', 'pause', 'unpause', 'kill', 'die']) assert.ok(actions.includes(wanted), `${wanted} in ${actions.join(',')}`);
    await ok(['rm', 'live']);
  });
});
