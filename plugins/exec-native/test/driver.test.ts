import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ContainerStartError, type ContainerProcess, type ContainerSpec, type ProcessSpec } from '@tsengine/core';
import { NativeExecDriver } from '../src/index.js';
import { loadBusyboxHelper } from './busybox.js';

const parent = `tsengine-test-${process.pid}`;
const dir = mkdtempSync(join(tmpdir(), 'tsengine-exec-'));
const rootfs = join(dir, 'rootfs');
let driver: NativeExecDriver;
let counter = 0;
const started = new Set<string>();

before(() => {
  mkdirSync(rootfs);
  loadBusyboxHelper().makeBusyboxRootfs(rootfs);
  mkdirSync(join(rootfs, 'mnt'));
  writeFileSync(join(rootfs, 'not-executable'), 'echo no\n');
  driver = new NativeExecDriver({ cgroupParent: parent });
});

after(async () => {
  for (const id of started) await driver.destroy(id).catch(() => undefined);
  await driver.close();
  // Groups a failed test left (a stand-in daemon's parking group) must not keep the parent.
  for (const hierarchy of readdirSync('/sys/fs/cgroup')) {
    const groupDir = `/sys/fs/cgroup/${hierarchy}/${parent}`;
    if (!existsSync(groupDir)) continue;
    for (const child of readdirSync(groupDir, { withFileTypes: true })) if (child.isDirectory()) rmdirQuietly(join(groupDir, child.name));
  }
  driver.removeCgroupParent();
  rmSync(dir, { recursive: true, force: true });
});

function rmdirQuietly(path: string): void {
  try {
    rmdirSync(path);
  } catch {
    // still in use: reported by the test that left it
  }
}

function spec(args: string[], overrides: Partial<ContainerSpec> = {}, proc: Partial<ProcessSpec> = {}): ContainerSpec {
  const id = `t${process.pid}-${++counter}`;
  started.add(id);
  return {
    id,
    rootfs,
    process: { args, env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'], cwd: '/', user: '', terminal: false, ...proc },
    hostname: 'box',
    readonlyRootfs: false,
    privileged: false,
    capAdd: [],
    capDrop: [],
    noNewPrivileges: false,
    mounts: [],
    network: { mode: 'none' },
    resources: {},
    ...overrides,
  };
}

function collect(stream: Readable | undefined): Promise<string> {
  if (!stream) return Promise.resolve('');
  return new Promise((resolve) => {
    let text = '';
    stream.on('data', (chunk: Buffer) => (text += chunk.toString('utf8')));
    stream.once('close', () => resolve(text));
    stream.once('end', () => resolve(text));
  });
}

async function run(args: string[], overrides: Partial<ContainerSpec> = {}, proc: Partial<ProcessSpec> = {}) {
  const s = spec(args, overrides, proc);
  const p = await driver.start(s, { stdin: false });
  const [stdout, stderr, status] = await Promise.all([collect(p.stdout), collect(p.stderr), p.exited]);
  await driver.destroy(s.id);
  return { stdout, stderr, ...status, pid: p.pid };
}

async function startLong(args: string[], overrides: Partial<ContainerSpec> = {}): Promise<{ id: string; p: ContainerProcess; out: Promise<string> }> {
  const s = spec(args, overrides);
  const p = await driver.start(s, { stdin: false });
  return { id: s.id, p, out: collect(p.stdout) };
}

async function execOut(id: string, args: string[], proc: Partial<ProcessSpec> = {}) {
  const p = await driver.exec(id, { args, env: ['PATH=/bin:/usr/bin:/sbin:/usr/sbin'], cwd: '/', user: '', terminal: false, ...proc }, { stdin: false });
  const [stdout, stderr, status] = await Promise.all([collect(p.stdout), collect(p.stderr), p.exited]);
  return { stdout, stderr, ...status };
}

describe('process and namespaces', () => {
  it('returns output and the exit code', async () => {
    const r = await run(['sh', '-c', 'echo hi; echo oops >&2; exit 3']);
    assert.equal(r.stdout, 'hi\n');
    assert.equal(r.stderr, 'oops\n');
    assert.equal(r.exitCode, 3);
    assert.equal(r.oomKilled, false);
  });

  it('runs as PID 1, a direct child of the daemon, in its own PID namespace', async () => {
    const { id, p, out } = await startLong(['sh', '-c', 'echo $$; ps -o pid,comm; sleep 30']);
    await sleep(300);
    const status = readFileSync(`/proc/${p.pid}/status`, 'utf8');
    assert.equal(/^PPid:\s+(\d+)/m.exec(status)?.[1], String(process.pid));
    assert.match(status, /^NSpid:\s+\d+\s+1$/m);
    await driver.destroy(id);
    const text = await out;
    const lines = text.trim().split('\n');
    assert.equal(lines[0], '1');
    // Only the container's own processes: sh (1), ps.
    assert.deepEqual(lines.slice(2).map((l) => l.trim().split(/\s+/)[0]), ['1', lines.slice(2)[1]!.trim().split(/\s+/)[0]]);
    assert.equal(lines.length, 4);
  });

  it('sets the hostname and domain name', async () => {
    const r = await run(['sh', '-c', 'hostname; cat /proc/sys/kernel/domainname'], { hostname: 'web1', domainname: 'example.org' });
    assert.equal(r.stdout, 'web1\nexample.org\n');
  });

  it('passes env and cwd, adds HOME, creates a missing cwd', async () => {
    const r = await run(['sh', '-c', 'echo $FOO; pwd; echo $HOME'], {}, { env: ['PATH=/bin', 'FOO=bar baz'], cwd: '/work/dir' });
    assert.equal(r.stdout, 'bar baz\n/work/dir\n/root\n');
  });

  it('resolves users by name and uid:gid with supplementary groups', async () => {
    // runc's rules: a named user gets the groups that list it; an explicit group gets none; --group-add always applies.
    assert.equal((await run(['id'], {}, { user: 'tester' })).stdout, 'uid=1000(tester) gid=1000(tester) groups=2000(extra)\n');
    assert.equal((await run(['id'], {}, { user: '1000:2000' })).stdout, 'uid=1000(tester) gid=2000(extra)\n');
    assert.equal((await run(['id'], {}, { user: '1000' })).stdout, 'uid=1000(tester) gid=1000(tester) groups=2000(extra)\n');
    assert.equal((await run(['id'], {}, { user: 'nobody', additionalGroups: ['extra', '3000'] })).stdout, 'uid=65534(nobody) gid=65534(nogroup) groups=2000(extra),3000\n');
    await assert.rejects(run(['id'], {}, { user: 'ghost' }), (err: unknown) => err instanceof ContainerStartError && err.exitCode === 125 && /unable to find user ghost/.test(err.message));
  });

  it('has only a loopback interface, up, with network none', async () => {
    const r = await run(['sh', '-c', 'ls /sys/class/net; ip -o link show lo']);
    assert.equal(r.stdout.split('\n')[0], 'lo');
    assert.match(r.stdout, /<LOOPBACK,UP,LOWER_UP>/);
  });

  it('sees the host interfaces with network host', async () => {
    // Other tests create and delete interfaces meanwhile: compare with the host before and after.
    const list = (text: string) => text.split('\n').filter(Boolean);
    const before = list(execFileSync('ls', ['/sys/class/net'], { encoding: 'utf8' }));
    const r = await run(['ls', '/sys/class/net'], { network: { mode: 'host' } });
    const after = list(execFileSync('ls', ['/sys/class/net'], { encoding: 'utf8' }));
    const seen = list(r.stdout);
    for (const name of before.filter((n) => after.includes(n))) assert.ok(seen.includes(name), `${name} is visible`);
    for (const name of seen) assert.ok(before.includes(name) || after.includes(name), `${name} is a host interface`);
    assert.ok(seen.some((n) => n !== 'lo'), 'more than the loopback');
  });
});

describe('filesystem', () => {
  it('builds /dev like Docker', async () => {
    const r = await run(['sh', '-c', 'ls /dev | tr "\\n" " "; echo; stat -c "%F %t:%T" /dev/null /dev/zero /dev/urandom /dev/tty; readlink /dev/ptmx; readlink /dev/fd; readlink /dev/stdout; grep -E " /dev(/shm|/pts|/mqueue)? " /proc/mounts | cut -d" " -f1-3']);
    const [names, ...rest] = r.stdout.trim().split('\n');
    assert.equal(names!.trim(), 'core fd full mqueue null ptmx pts random shm stderr stdin stdout tty urandom zero');
    assert.deepEqual(rest.slice(0, 4), ['character special file 1:3', 'character special file 1:5', 'character special file 1:9', 'character special file 5:0']);
    assert.deepEqual(rest.slice(4, 7), ['pts/ptmx', '/proc/self/fd', '/proc/self/fd/1']);
    assert.deepEqual(rest.slice(7).sort(), ['devpts /dev/pts devpts', 'mqueue /dev/mqueue mqueue', 'shm /dev/shm tmpfs', 'tmpfs /dev tmpfs']);
  });

  it('masks and write-protects /proc paths unless privileged', async () => {
    const script = 'echo 1 > /proc/sys/kernel/ostype 2>/dev/null && echo sys-writable || echo sys-ro; ls /sys/firmware | wc -l; grep -c " /proc/sys " /proc/mounts';
    const r = await run(['sh', '-c', script]);
    assert.equal(r.stdout, 'sys-ro\n0\n1\n');
    const p = await run(['sh', '-c', 'grep -c " /proc/sys " /proc/mounts; grep -c " /sys/firmware " /proc/mounts'], { privileged: true });
    assert.equal(p.stdout, '0\n0\n');
  });

  it('refuses mounts without privileges and allows them when privileged', async () => {
    const r = await run(['sh', '-c', 'mount -t tmpfs tmpfs /mnt && echo mounted']);
    assert.notEqual(r.exitCode, 0);
    assert.match(r.stderr, /permission denied/);
    const p = await run(['sh', '-c', 'mount -t tmpfs tmpfs /mnt && echo mounted'], { privileged: true });
    assert.equal(p.stdout, 'mounted\n');
  });

  it('makes the rootfs read-only on request', async () => {
    const r = await run(['sh', '-c', 'touch /x; echo $?; touch /dev/shm/ok && echo shm-ok'], { readonlyRootfs: true });
    assert.equal(r.stdout, '1\nshm-ok\n');
    assert.match(r.stderr, /Read-only file system/);
    assert.equal(existsSync(join(rootfs, 'x')), false);
  });

  it('applies bind and tmpfs mounts, read-only when asked', async () => {
    const shared = join(dir, 'shared');
    mkdirSync(shared, { recursive: true });
    writeFileSync(join(shared, 'hello'), 'from host\n');
    const hosts = join(dir, 'hosts');
    writeFileSync(hosts, '127.0.0.1 localhost box\n');
    const mounts: ContainerSpec['mounts'] = [
      { type: 'bind', source: shared, destination: '/data' },
      { type: 'bind', source: hosts, destination: '/etc/hosts', readonly: true },
      { type: 'tmpfs', source: '', destination: '/scratch', options: ['size=1m', 'mode=1777'] },
    ];
    const r = await run(['sh', '-c', 'cat /data/hello; echo new > /data/out; cat /etc/hosts; echo x >> /etc/hosts || echo hosts-ro; df /scratch | tail -1 | tr -s " " | cut -d" " -f2; stat -c %a /scratch'], { mounts });
    assert.equal(r.stdout, 'from host\n127.0.0.1 localhost box\nhosts-ro\n1024\n1777\n');
    assert.equal(readFileSync(join(shared, 'out'), 'utf8'), 'new\n');
  });

  it('resolves mount destinations inside the rootfs even through absolute symlinks', async () => {
    const escape = join(dir, 'escape-target');
    mkdirSync(escape, { recursive: true });
    execFileSync('ln', ['-sfn', escape, join(rootfs, 'evil')]);
    try {
      const r = await run(['sh', '-c', `ls ${escape}`], { mounts: [{ type: 'tmpfs', source: '', destination: '/evil', options: ['size=1m'] }] });
      assert.equal(r.exitCode, 0);
      // The tmpfs landed on <rootfs><escape>, not on the host directory the link names.
      assert.equal(existsSync(join(rootfs, escape)), true);
    } finally {
      rmSync(join(rootfs, 'evil'));
      rmSync(join(rootfs, dir), { recursive: true, force: true });
    }
  });
});

describe('capabilities', () => {
  const capEff = async (overrides: Partial<ContainerSpec>, user = '') => /CapEff:\s+(\w+)/.exec((await run(['cat', '/proc/self/status'], overrides, { user })).stdout)?.[1];

  it("gives root Docker's default set", async () => {
    assert.equal(await capEff({}), '00000000a80425fb');
  });

  it('applies cap-drop and cap-add, with or without CAP_ and ALL', async () => {
    assert.equal(await capEff({ capDrop: ['CAP_CHOWN', 'net_raw'] }), (0xa80425fbn & ~(1n | (1n << 13n))).toString(16).padStart(16, '0'));
    assert.equal(await capEff({ capAdd: ['NET_ADMIN'] }), (0xa80425fbn | (1n << 12n)).toString(16).padStart(16, '0'));
    assert.equal(await capEff({ capDrop: ['ALL'], capAdd: ['KILL'] }), '0000000000000020');
    const all = BigInt(`0x${/CapBnd:\s+(\w+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`);
    assert.equal(await capEff({ privileged: true }), all.toString(16).padStart(16, '0'));
    assert.equal(await capEff({ capAdd: ['ALL'], capDrop: ['SYS_ADMIN'] }), (all & ~(1n << 21n)).toString(16).padStart(16, '0'));
  });

  it('gives a non-root user no effective capabilities and honours no-new-privileges', async () => {
    assert.equal(await capEff({}, 'tester'), '0000000000000000');
    const r = await run(['grep', 'NoNewPrivs', '/proc/self/status'], { noNewPrivileges: true });
    assert.match(r.stdout, /NoNewPrivs:\s+1/);
  });

  it('rejects unknown capabilities', async () => {
    await assert.rejects(run(['true'], { capAdd: ['CAP_BOGUS'] }), /unknown capability: "CAP_BOGUS"/);
  });
});

describe('start failures', () => {
  it('reports 127 for a command not in PATH, with docker\'s message', async () => {
    await assert.rejects(run(['no-such-command']), (err: unknown) => err instanceof ContainerStartError && err.exitCode === 127 && err.message === 'exec: "no-such-command": executable file not found in $PATH');
    await assert.rejects(run(['/no/such']), (err: unknown) => err instanceof ContainerStartError && err.exitCode === 127 && /stat \/no\/such: no such file or directory/.test(err.message));
  });

  it('reports 126 for a file that is not executable', async () => {
    await assert.rejects(run(['/not-executable']), (err: unknown) => err instanceof ContainerStartError && err.exitCode === 126 && /permission denied/.test(err.message));
  });

  it('leaves no cgroup behind after a failed start', async () => {
    const s = spec(['nope']);
    await assert.rejects(driver.start(s, { stdin: false }), ContainerStartError);
    assert.equal(existsSync(`/sys/fs/cgroup/pids/${parent}/${s.id}`) || existsSync(`/sys/fs/cgroup/${parent}/${s.id}`), false);
  });
});

describe('signals and exec', () => {
  it('maps death by SIGKILL to 137 and a SIGTERM-triggered exit to 143', async () => {
    const { id, p } = await startLong(['sleep', '60']);
    await driver.kill(id, 'KILL');
    assert.deepEqual(await p.exited, { exitCode: 137, signal: 'SIGKILL', oomKilled: false });
    await driver.destroy(id);
    const t = await startLong(['sh', '-c', 'trap "exit 143" TERM; while true; do sleep 0.05; done']);
    await sleep(200);
    await driver.kill(t.id, 'SIGTERM');
    assert.equal((await t.p.exited).exitCode, 143);
    await driver.destroy(t.id);
  });

  it('execs into the running container: same PID namespace, hostname, mounts and cgroup', async () => {
    const { id, p } = await startLong(['sh', '-c', 'echo marker > /tmp/m; sleep 60'], { hostname: 'joined' });
    try {
      await sleep(200);
      const r = await execOut(id, ['sh', '-c', 'hostname; cat /tmp/m; ps -o pid,comm | grep -c sleep; echo $$; cat /proc/self/status | grep CapEff']);
      const lines = r.stdout.trim().split('\n');
      assert.deepEqual(lines.slice(0, 3), ['joined', 'marker', '1']);
      assert.notEqual(lines[3], '1');
      assert.match(lines[4]!, /a80425fb/);
      assert.equal(r.exitCode, 0);
      const top = await driver.top(id);
      assert.ok(top.some((t) => t.pid === p.pid && /sleep 60/.test(t.cmd)), JSON.stringify(top));
      const killed = await driver.exec(id, { args: ['sleep', '60'], env: [], cwd: '/', user: 'tester', terminal: false }, { stdin: false });
      await sleep(100);
      assert.equal(readFileSync(`/proc/${killed.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1], '1000');
      process.kill(killed.pid, 'SIGTERM');
      assert.equal((await killed.exited).exitCode, 143);
      await assert.rejects(driver.exec(id, { args: ['nope'], env: [], cwd: '/', user: '', terminal: false }, { stdin: false }), (err: unknown) => err instanceof ContainerStartError && err.exitCode === 127);
    } finally {
      await driver.destroy(id);
    }
  });

  it('feeds stdin when asked', async () => {
    const s = spec(['sh', '-c', 'read line; echo "got $line"']);
    const p = await driver.start(s, { stdin: true });
    const out = collect(p.stdout);
    p.stdin!.end('hello\n');
    assert.equal(await out, 'got hello\n');
    assert.equal((await p.exited).exitCode, 0);
    await driver.destroy(s.id);
  });
});

describe('cgroups', () => {
  it('writes limits to the cgroup and OOM-kills a memory hog', async () => {
    const { id, p } = await startLong(['sh', '-c', 'sleep 0.3; x=a; while true; do x="$x$x"; done'], { resources: { memory: 32 * 1024 * 1024, nanoCpus: 500_000_000, cpuShares: 512, pidsLimit: 50, cpusetCpus: '0' } });
    const info = await driver.info();
    if (info.cgroupVersion === '1') {
      const g = (c: string, f: string) => readFileSync(`/sys/fs/cgroup/${c}/${parent}/${id}/${f}`, 'utf8').trim();
      assert.equal(g('memory', 'memory.limit_in_bytes'), String(32 * 1024 * 1024));
      assert.equal(g('cpu', 'cpu.cfs_quota_us'), '50000');
      assert.equal(g('cpu', 'cpu.cfs_period_us'), '100000');
      assert.equal(g('cpu', 'cpu.shares'), '512');
      assert.equal(g('cpuset', 'cpuset.cpus'), '0');
      assert.equal(g('pids', 'pids.max'), '50');
    }
    const status = await p.exited;
    assert.equal(status.oomKilled, true);
    assert.equal(status.exitCode, 137);
    await driver.destroy(id);
  });

  it('stops a fork loop at the pids limit', async () => {
    // The subshell forks until refused and dies of it; PID 1 stays to be counted.
    const { id } = await startLong(['sh', '-c', '(for i in $(seq 1 30); do sleep 30 & done) 2>/dev/null; exec sleep 60'], { resources: { pidsLimit: 10 } });
    try {
      await sleep(500);
      const stats = await driver.stats(id);
      assert.equal(stats.pids.limit, 10);
      assert.ok(stats.pids.current >= 5 && stats.pids.current <= 10, `pids ${stats.pids.current}`);
      assert.equal((await driver.top(id)).length, stats.pids.current);
    } finally {
      await driver.destroy(id);
    }
  });

  it('pauses and resumes (a counter stops advancing)', async () => {
    const s = spec(['sh', '-c', 'i=0; while true; do i=$((i+1)); echo $i > /tmp/count; sleep 0.02; done']);
    const p = await driver.start(s, { stdin: false });
    const count = () => readFileSync(`/proc/${p.pid}/root/tmp/count`, 'utf8').trim();
    try {
      await sleep(300);
      await driver.pause(s.id);
      const frozenAt = count();
      await sleep(300);
      assert.equal(count(), frozenAt);
      await driver.resume(s.id);
      // Poll: the shell truncates before it writes, and a loaded machine may take a while to reschedule it.
      await waitFor(() => Number(count()) > Number(frozenAt));
    } finally {
      await driver.destroy(s.id);
    }
  });

  it('reports real stats and lists the container', async () => {
    const { id } = await startLong(['sh', '-c', 'x=$(seq 1 30000); sleep 60 & wait'], { resources: { memory: 64 * 1024 * 1024, pidsLimit: 20 } });
    try {
      await sleep(500);
      const stats = await driver.stats(id);
      assert.ok(stats.memory.usage > 100_000, `memory usage ${stats.memory.usage}`);
      assert.equal(stats.memory.limit, 64 * 1024 * 1024);
      assert.ok(stats.cpu.totalUsage > 1_000_000, `cpu ${stats.cpu.totalUsage}`);
      assert.ok(stats.cpu.systemUsage > stats.cpu.totalUsage);
      assert.equal(stats.pids.current, 2);
      assert.equal(stats.pids.limit, 20);
      assert.deepEqual(await driver.list(), [id]);
    } finally {
      await driver.destroy(id);
    }
    assert.deepEqual(await driver.list(), []);
  });

  it('destroy kills everything, removes the cgroup and is idempotent', async () => {
    const { id, p } = await startLong(['sh', '-c', 'sleep 60 & sleep 60']);
    await sleep(100);
    assert.equal(existsSync(`/sys/fs/cgroup/pids/${parent}/${id}`), true);
    await driver.destroy(id);
    assert.equal((await p.exited).exitCode, 137);
    assert.equal(existsSync(`/sys/fs/cgroup/pids/${parent}/${id}`), false);
    assert.equal(existsSync(`/sys/fs/cgroup/memory/${parent}/${id}`), false);
    await driver.destroy(id);
  });

  it('finds and cleans up a stale container left by an earlier daemon', async () => {
    const other = new NativeExecDriver({ cgroupParent: parent });
    const s = spec(['sleep', '60']);
    const p = await other.start(s, { stdin: false });
    try {
      assert.deepEqual(await driver.listStale(), [s.id]);
      await driver.cleanupStale(s.id);
      assert.equal((await p.exited).exitCode, 137);
      assert.deepEqual(await driver.listStale(), []);
    } finally {
      await other.destroy(s.id);
      await other.close();
    }
  });
});

describe('terminal', () => {
  it('gives the process /dev/pts/0 as its controlling terminal and resizes it', async () => {
    const s = spec(['sh'], {}, { terminal: true, consoleSize: { rows: 24, cols: 80 } });
    const p = await driver.start(s, { stdin: true });
    let text = '';
    p.stdout.on('data', (c: Buffer) => (text += c.toString('utf8')));
    try {
      assert.equal(p.stderr, undefined);
      p.stdin!.write('tty; stty size\n');
      await waitFor(() => /\n24 80\r?\n/.test(text));
      p.resize!(40, 120);
      p.stdin!.write('stty size; ls -l /dev/console | cut -c1; exit 7\n');
      await waitFor(() => /40 120/.test(text));
      assert.match(text, /\/dev\/pts\/0\r\n/);
      assert.equal((await p.exited).exitCode, 7);
    } finally {
      await driver.destroy(s.id);
    }
  });
});

describe('pre-started inits', () => {
  const alive = (pid: number) => {
    try {
      // A zombie is no process: only an unreaped exit would leave one.
      return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'));
    } catch {
      return false;
    }
  };
  const childrenOf = (ppid: number) =>
    readdirSync('/proc')
      .filter((e) => /^\d+$/.test(e))
      .filter((e) => {
        try {
          const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
          return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1] === String(ppid);
        } catch {
          return false;
        }
      })
      .map(Number);

  it('reuses inits started ahead of need and leaves no process at close', async () => {
    const pooled = new NativeExecDriver({ cgroupParent: parent, prestart: 1 });
    const seen = new Set<number>();
    try {
      for (let i = 0; i < 3; i++) {
        // Each start's replacement is spawned in the background, so the next start finds one.
        await waitFor(() => pooled.prestartedPids().length === 1, 30_000);
        const [ready] = pooled.prestartedPids();
        seen.add(ready!);
        const s = spec(['sh', '-c', 'echo $$; ls -l /proc/self/fd/0 | sed "s/.*-> //"; grep NSpid /proc/self/status']);
        const p = await pooled.start(s, { stdin: false });
        const [stdout, status] = await Promise.all([collect(p.stdout), p.exited]);
        await pooled.destroy(s.id);
        assert.equal(p.pid, ready, 'the pre-started init became the container');
        assert.equal(status.exitCode, 0);
        // PID 1 of a namespace of its own; stdin is /dev/null as with a fresh init.
        assert.match(stdout, /^1\n\/dev\/null\nNSpid:\s+1\n$/);
      }
      assert.equal(pooled.prestartHits, 3);
      await waitFor(() => pooled.prestartedPids().length === 1, 30_000);
      for (const pid of pooled.prestartedPids()) seen.add(pid);
      // stdin and terminal still work through a pre-started init.
      const s = spec(['sh', '-c', 'read line; echo "got $line"']);
      const p = await pooled.start(s, { stdin: true });
      const out = collect(p.stdout);
      p.stdin!.end('hello\n');
      assert.equal(await out, 'got hello\n');
      assert.equal((await p.exited).exitCode, 0);
      await pooled.destroy(s.id);
      assert.equal(pooled.prestartHits, 4);
      await waitFor(() => pooled.prestartedPids().length === 1, 30_000);
      for (const pid of pooled.prestartedPids()) seen.add(pid);
    } finally {
      await pooled.close();
    }
    assert.deepEqual(pooled.prestartedPids(), []);
    for (const pid of seen) assert.equal(alive(pid), false, `init ${pid} is gone`);
    const ours = new Set([...driver.prestartedPids()]);
    const stray = childrenOf(process.pid).filter((pid) => !ours.has(pid) && /tsengine-init/.test(readFileSync(`/proc/${pid}/cmdline`, 'utf8')));
    assert.deepEqual(stray, []);
  });

  it('falls back to a fresh init when the pre-started one died', async () => {
    const pooled = new NativeExecDriver({ cgroupParent: parent, prestart: 1 });
    try {
      await waitFor(() => pooled.prestartedPids().length === 1, 30_000);
      const [victim] = pooled.prestartedPids();
      process.kill(victim!, 'SIGKILL');
      // Once the driver has seen the death; a start racing the kill itself is not covered here.
      await waitFor(() => !pooled.prestartedPids().includes(victim!), 30_000);
      const s = spec(['sh', '-c', 'echo $$']);
      const p = await pooled.start(s, { stdin: false });
      const [stdout, status] = await Promise.all([collect(p.stdout), p.exited]);
      await pooled.destroy(s.id);
      assert.equal(stdout, '1\n');
      assert.equal(status.exitCode, 0);
      assert.notEqual(p.pid, victim);
      assert.equal(pooled.prestartHits, 0);
    } finally {
      await pooled.close();
    }
  });

  it('starts none with prestart 0', async () => {
    const fresh = new NativeExecDriver({ cgroupParent: parent, prestart: 0 });
    try {
      const r = spec(['true']);
      const p = await fresh.start(r, { stdin: false });
      assert.equal((await p.exited).exitCode, 0);
      await fresh.destroy(r.id);
      await sleep(100);
      assert.deepEqual(fresh.prestartedPids(), []);
      assert.equal(fresh.prestartHits, 0);
    } finally {
      await fresh.close();
    }
  });

  it('an idle pre-started init dies with the daemon', async () => {
    // A stand-in daemon: builds a driver, prints its pre-started init's pid and is then SIGKILLed.
    const script = `const { NativeExecDriver } = require(${JSON.stringify(join(__dirname, '../src/index.js'))});
const d = new NativeExecDriver({ cgroupParent: ${JSON.stringify(parent)}, prestart: 1 });
const t = setInterval(() => { const [pid] = d.prestartedPids(); if (pid) { console.log(pid); clearInterval(t); setInterval(() => {}, 1000); } }, 20);`;
    const daemon = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve, reject) => {
      daemon.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
      daemon.once('exit', (code) => reject(new Error(`stand-in daemon exited with ${code}`)));
    });
    assert.ok(alive(pid));
    // Let it load completely: it must notice from its blocking read of fd 3.
    await sleep(500);
    const parkedBy = (owner: number | undefined) => readdirSync(`/sys/fs/cgroup/pids/${parent}`).filter((name) => name.startsWith(`prestart-${owner}-`));
    assert.equal(parkedBy(daemon.pid).length, 1, 'the pre-started init waits in a group of its own');
    const reaped = new Promise((resolve) => daemon.once('exit', resolve));
    daemon.kill('SIGKILL');
    await waitFor(() => !alive(pid), 30_000);
    // The next daemon clears the dead one's parking group; until reaped, the dead one counts as alive.
    await reaped;
    const next = new NativeExecDriver({ cgroupParent: parent, prestart: 0 });
    try {
      await waitFor(() => parkedBy(daemon.pid).length === 0, 30_000);
    } finally {
      await next.close();
    }
  });
});

async function waitFor(ok: () => boolean, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!ok()) {
    if (Date.now() > deadline) throw new Error('timed out waiting');
    await sleep(20);
  }
}


