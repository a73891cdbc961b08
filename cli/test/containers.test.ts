import assert from 'node:assert/strict';
import { PassThrough, Readable, type Duplex } from 'node:stream';
import { describe, it } from 'node:test';
import { DaemonError, type DockerClient, type RequestOptions, type StreamResponse, runCli } from '../src/index.js';
import { parseMount, parsePublish, ramInBytes } from '../src/commands/container-run.js';
import { apiTimestamp, demultiplex, parseDuration, splitReference, startFailureStatus } from '../src/commands/container-support.js';
import { statsRow } from '../src/commands/containers.js';

interface Call {
  method: string;
  path: string;
  options: RequestOptions;
}

/** A client that records requests and answers from a table; no daemon involved. */
class RecordingClient implements DockerClient {
  readonly host = 'unix:///fake.sock';
  readonly calls: Call[] = [];
  constructor(private readonly answer: (call: Call) => unknown) {}
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const call = { method, path, options };
    this.calls.push(call);
    const out = this.answer(call);
    if (out instanceof Error) throw out;
    return out as T;
  }
  async stream(method: string, path: string, options: RequestOptions = {}): Promise<StreamResponse> {
    this.calls.push({ method, path, options });
    return { status: 200, headers: {}, body: Readable.from([Buffer.from('{"status":"pulled"}\n')]) };
  }
  hijack(): Promise<Duplex> {
    throw new Error('not used');
  }
}

async function cli(args: string[], client: DockerClient): Promise<{ status: number; stdout: string; stderr: string }> {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = '';
  let err = '';
  stdout.on('data', (c: Buffer) => (out += c.toString()));
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const status = await runCli(['node', 'tsengine', ...args], { stdout, stderr, env: { HOME_VAR: 'from-env' }, clientFactory: () => client });
  return { status, stdout: out, stderr: err };
}

describe('container command helpers', () => {
  it('parses -p like docker', () => {
    assert.deepEqual(parsePublish(['8080:80', '127.0.0.1:5353:53/udp', '9000', '[::1]:81:81']), {
      exposed: { '80/tcp': {}, '53/udp': {}, '9000/tcp': {}, '81/tcp': {} },
      bindings: {
        '80/tcp': [{ HostIp: '', HostPort: '8080' }],
        '53/udp': [{ HostIp: '127.0.0.1', HostPort: '5353' }],
        '9000/tcp': [{ HostIp: '', HostPort: '' }],
        '81/tcp': [{ HostIp: '::1', HostPort: '81' }],
      },
    });
    assert.deepEqual(Object.keys(parsePublish(['7000-7002:8000-8002']).bindings), ['8000/tcp', '8001/tcp', '8002/tcp']);
    assert.throws(() => parsePublish(['1:2:3:4']), /invalid port format/);
  });

  it('parses --mount like docker', () => {
    assert.deepEqual(parseMount('type=bind,source=/srv,target=/data,readonly,bind-propagation=rslave'), {
      Type: 'bind',
      Source: '/srv',
      Target: '/data',
      ReadOnly: true,
      BindOptions: { Propagation: 'rslave' },
    });
    assert.deepEqual(parseMount('src=v1,dst=/v,volume-opt=o=size=1m,volume-nocopy'), {
      Type: 'volume',
      Source: 'v1',
      Target: '/v',
      VolumeOptions: { NoCopy: true, DriverConfig: { Options: { o: 'size=1m' } } },
    });
    assert.deepEqual(parseMount('type=tmpfs,target=/run,tmpfs-size=64m,tmpfs-mode=1770'), { Type: 'tmpfs', Target: '/run', TmpfsOptions: { SizeBytes: 64 * 1024 * 1024, Mode: 0o1770 } });
    assert.throws(() => parseMount('type=bind,source=/srv'), /target is required/);
    assert.throws(() => parseMount('target=/x,colour=blue'), /unexpected key 'colour'/);
  });

  it('parses sizes, durations and times like docker', () => {
    assert.equal(ramInBytes('64m', '--memory'), 64 * 1024 * 1024);
    assert.equal(ramInBytes('1g', '--memory'), 1024 ** 3);
    assert.equal(ramInBytes('512', '--memory'), 512);
    assert.throws(() => ramInBytes('lots', '--memory'), /invalid size/);
    assert.equal(parseDuration('1h30m'), 5400);
    assert.equal(parseDuration('soon'), undefined);
    assert.equal(apiTimestamp('10s', 100_000), '90');
    assert.equal(apiTimestamp('1700000000'), '1700000000');
    assert.equal(apiTimestamp('2020-01-01T00:00:00Z'), '1577836800');
    assert.throws(() => apiTimestamp('yesterday'), /failed to parse/);
  });

  it('splits references and maps start failures to docker run statuses', () => {
    assert.deepEqual(splitReference('localhost:5000/busybox'), { name: 'localhost:5000/busybox', tag: undefined, digest: undefined });
    assert.deepEqual(splitReference('busybox:1.36'), { name: 'busybox', tag: '1.36', digest: undefined });
    assert.equal(startFailureStatus('exec: "nosuch": executable file not found in $PATH'), 127);
    assert.equal(startFailureStatus('exec /etc/passwd: permission denied'), 126);
    assert.equal(startFailureStatus('cgroup setup failed'), 125);
  });

  it('demultiplexes stdcopy frames split across chunks', async () => {
    const frame = (type: number, text: string) => {
      const payload = Buffer.from(text);
      const header = Buffer.alloc(8);
      header[0] = type;
      header.writeUInt32BE(payload.length, 4);
      return Buffer.concat([header, payload]);
    };
    const all = Buffer.concat([frame(1, 'out\n'), frame(2, 'err\n'), frame(1, 'more')]);
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c: Buffer) => (out += c.toString()));
    stderr.on('data', (c: Buffer) => (err += c.toString()));
    await demultiplex(Readable.from([all.subarray(0, 5), all.subarray(5, 15), all.subarray(15)]), stdout, stderr);
    assert.equal(out, 'out\nmore');
    assert.equal(err, 'err\n');
  });

  it('computes stats rows like docker (cache excluded, CPU share of all CPUs)', () => {
    const row = statsRow(
      {
        id: 'a'.repeat(64),
        name: '/web',
        cpu_stats: { cpu_usage: { total_usage: 300 }, system_cpu_usage: 2000, online_cpus: 2 },
        precpu_stats: { cpu_usage: { total_usage: 100 }, system_cpu_usage: 1000 },
        memory_stats: { usage: 3 * 1024 * 1024, limit: 100 * 1024 * 1024, stats: { total_inactive_file: 1024 * 1024 } },
        networks: { eth0: { rx_bytes: 1500, tx_bytes: 500 } },
        blkio_stats: { io_service_bytes_recursive: [{ op: 'Read', value: 4096 }, { op: 'Write', value: 0 }] },
        pids_stats: { current: 3 },
      },
      'web',
      true,
    );
    assert.deepEqual(row, {
      Container: 'aaaaaaaaaaaa',
      ID: 'aaaaaaaaaaaa',
      Name: 'web',
      CPUPerc: '40.00%',
      MemUsage: '2MiB / 100MiB',
      MemPerc: '2.00%',
      NetIO: '1.5kB / 500B',
      BlockIO: '4.1kB / 0B',
      PIDs: '3',
    });
  });
});

describe('tsengine run and create build the docker create body', () => {
  it('maps the flags onto Config and HostConfig', async () => {
    const client = new RecordingClient((call) => (call.path === '/containers/create' ? { Id: 'c'.repeat(64), Warnings: [] } : undefined));
    const r = await cli(
      [
        'run', '-d', '--name', 'web', '-e', 'A=1', '-e', 'HOME_VAR', '-w', '/srv', '-u', 'nobody', '-h', 'box', '--restart', 'on-failure:3',
        '--stop-signal', 'SIGINT', '--stop-timeout', '5', '-l', 'a=b', '-v', 'v1:/data', '-p', '8080:80', '--network', 'none',
        '--memory', '64m', '--cpus', '0.5', '--pids-limit', '20', '--read-only', '--cap-add', 'NET_ADMIN', '--tmpfs', '/run:size=1m',
        '--log-driver', 'json-file', '--log-opt', 'max-size=1m', '--ulimit', 'nofile=100:200', 'busybox', 'sh', '-c', 'echo -n hi',
      ],
      client,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stdout, `${'c'.repeat(64)}\n`);
    const create = client.calls.find((c) => c.path === '/containers/create')!;
    assert.deepEqual(create.options.query, { name: 'web' });
    const body = create.options.body as Record<string, unknown> & { HostConfig: Record<string, unknown> };
    assert.deepEqual(body.Cmd, ['sh', '-c', 'echo -n hi']);
    assert.deepEqual(body.Env, ['A=1', 'HOME_VAR=from-env']);
    assert.equal(body.WorkingDir, '/srv');
    assert.equal(body.User, 'nobody');
    assert.equal(body.Hostname, 'box');
    assert.equal(body.StopSignal, 'SIGINT');
    assert.equal(body.StopTimeout, 5);
    assert.deepEqual(body.Labels, { a: 'b' });
    assert.deepEqual(body.ExposedPorts, { '80/tcp': {} });
    assert.equal(body.AttachStdout, false);
    assert.deepEqual(body.HostConfig.RestartPolicy, { Name: 'on-failure', MaximumRetryCount: 3 });
    assert.deepEqual(body.HostConfig.Binds, ['v1:/data']);
    assert.deepEqual(body.HostConfig.PortBindings, { '80/tcp': [{ HostIp: '', HostPort: '8080' }] });
    assert.equal(body.HostConfig.NetworkMode, 'none');
    assert.equal(body.HostConfig.Memory, 64 * 1024 * 1024);
    assert.equal(body.HostConfig.NanoCpus, 500_000_000);
    assert.equal(body.HostConfig.PidsLimit, 20);
    assert.equal(body.HostConfig.ReadonlyRootfs, true);
    assert.deepEqual(body.HostConfig.CapAdd, ['NET_ADMIN']);
    assert.equal(body.HostConfig.AutoRemove, false);
    assert.deepEqual(body.HostConfig.Tmpfs, { '/run': 'size=1m' });
    assert.deepEqual(body.HostConfig.LogConfig, { Type: 'json-file', Config: { 'max-size': '1m' } });
    assert.deepEqual(body.HostConfig.Ulimits, [{ Name: 'nofile', Soft: 100, Hard: 200 }]);
    assert.deepEqual(client.calls.map((c) => `${c.method} ${c.path}`), ['POST /containers/create', `POST /containers/${'c'.repeat(64)}/start`]);
  });

  it('pulls a missing image and creates again', async () => {
    let creates = 0;
    const client = new RecordingClient((call) => {
      if (call.path !== '/containers/create') return undefined;
      creates++;
      return creates === 1 ? new DaemonError(404, 'No such image: busybox:latest') : { Id: 'd'.repeat(64) };
    });
    const r = await cli(['create', 'busybox'], client);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stderr, /^Unable to find image 'busybox:latest' locally\n/);
    assert.deepEqual(client.calls.map((c) => `${c.method} ${c.path}`), ['POST /containers/create', 'POST /images/create', 'POST /containers/create']);
    assert.deepEqual(client.calls[1]!.options.query, { fromImage: 'busybox', tag: 'latest' });
  });

  it('exits 125 when create fails, like docker run', async () => {
    const client = new RecordingClient(() => new DaemonError(409, 'Conflict. The container name "/web" is already in use'));
    const r = await cli(['run', '--name', 'web', 'busybox'], client);
    assert.equal(r.status, 125);
    assert.equal(r.stderr, 'tsengine: Error response from daemon: Conflict. The container name "/web" is already in use\n\nRun \'tsengine run --help\' for more information\n');
  });

  it('refuses bad flags with status 125', async () => {
    const client = new RecordingClient(() => undefined);
    assert.equal((await cli(['run', '--pull', 'sometimes', 'busybox'], client)).status, 125);
    assert.equal((await cli(['run', '--stop-timeout', 'x', 'busybox'], client)).status, 125);
    const noImage = await cli(['run'], client);
    assert.equal(noImage.status, 1);
    assert.match(noImage.stderr, /'tsengine run' requires at least 1 argument/);
  });
});
