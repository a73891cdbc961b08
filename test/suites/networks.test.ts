import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Daemon, docker, startDaemon, tsengine } from '../helpers/daemon.js';
import { busyboxRootfsTar } from '../helpers/images.js';
import { freeSubnets, linkExists, linkGone } from '../helpers/network.js';

/** Every test daemon gets its own bridge name and subnets, so suites never collide with each other or with dockerd. */
function uniqueSuffix(): string {
  return randomBytes(3).toString('hex');
}

function subnetOf(block: string, i: number): string {
  const [a, b, c] = block.split('.').map(Number);
  return `${a}.${b}.${c! + i}`;
}

function pluginsFor(options: Record<string, unknown>): Array<string | { plugin: string; options: unknown }> {
  return [
    '@tsengine/api-server',
    '@tsengine/system',
    '@tsengine/images',
    '@tsengine/graphdriver-overlay',
    '@tsengine/exec-native',
    { plugin: '@tsengine/networks', options },
    '@tsengine/net-bridge',
    '@tsengine/net-host',
    '@tsengine/containers',
  ];
}

async function ok(daemon: Daemon, args: string[], input?: Buffer): Promise<string> {
  const r = await docker(daemon, args, input ? { input, timeoutMs: 60_000 } : { timeoutMs: 60_000 });
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stdout}${r.stderr}`);
  return r.stdout;
}


function ourRules(bridges: string[]): string[] {
  const lines = ['filter', 'nat'].flatMap((t) => execFileSync('iptables', ['-w', '-t', t, '-S'], { encoding: 'utf8' }).split('\n'));
  return lines.filter((l) => bridges.some((b) => l.includes(b)));
}

async function mountsUnder(dir: string): Promise<string[]> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  return lines.map((l) => l.split(' ')[4] ?? '').filter((m) => m.startsWith(dir + '/'));
}

/** An httpd that answers "hello-<name>" at / (busybox httpd in the foreground). */
function httpdArgs(name: string): string[] {
  return ['sh', '-c', `mkdir -p /www && echo hello-${name} > /www/index.html && exec httpd -f -p 80 -h /www`];
}

/** A shell loop that fetches the URL until it answers (the server may still be starting) or gives up. */
function fetchLoop(url: string, tries = 50): string[] {
  return ['sh', '-c', `for i in $(seq 1 ${tries}); do timeout 5 wget -q -O - ${url} && exit 0; sleep 0.2; done; exit 1`];
}

function bridgeOf(networkId: string): string {
  return `tse-${networkId.slice(0, 11)}`;
}

async function hostFetch(port: number): Promise<string> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    try {
      const res = await fetch(`http://127.0.0.1:${port}/`);
      return await res.text();
    } catch (err) {
      if (Date.now() > deadline) throw err;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

describe('networking through the docker CLI', () => {
  let daemon: Daemon | undefined;
  let daemonDir = '';
  const suffix = uniqueSuffix();
  const defaultBridge = `tse${suffix}`;
  const block = freeSubnets(4)[0]!;
  const bridges: string[] = [defaultBridge];

  before(async () => {
    daemon = await startDaemon({ plugins: pluginsFor({ bip: `${subnetOf(block, 0)}.1/24`, 'bridge-name': defaultBridge, icc: false }), config: { graphdriver: 'overlay' } });
    daemonDir = daemon.dir;
    await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
  });

  after(async () => {
    if (daemon) {
      const result = await daemon.stop();
      assert.equal(result.code, 0, `daemon exited with ${result.code ?? result.signal}:\n${daemon.logs()}`);
    }
    // Shutdown takes every bridge, rule and namespace of the daemon away.
    for (const bridge of bridges) assert.equal(linkExists(bridge), false, `bridge ${bridge} left behind`);
    assert.deepEqual(ourRules(bridges), []);
    if (daemonDir) assert.deepEqual(await mountsUnder(daemonDir), []);
  });

  it('lists the predefined networks and refuses to remove them', async () => {
    const ls = await ok(daemon!, ['network', 'ls', '--format', '{{.Name}} {{.Driver}}']);
    assert.deepEqual(ls.trim().split('\n').sort(), ['bridge bridge', 'host host', 'none null']);
    const bridge = JSON.parse(await ok(daemon!, ['network', 'inspect', 'bridge']))[0];
    assert.equal(bridge.IPAM.Config[0].Subnet, `${subnetOf(block, 0)}.0/24`);
    assert.equal(bridge.Options['com.docker.network.bridge.name'], defaultBridge);
    assert.equal(linkExists(defaultBridge), true);
    const r = await docker(daemon!, ['network', 'rm', 'bridge']);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /bridge is a pre-defined network and cannot be removed/);
    const missing = await docker(daemon!, ['network', 'inspect', 'nosuchnet']);
    assert.equal(missing.status, 1);
    assert.match(missing.stderr, /network nosuchnet not found/);
  });

  it('creates, inspects and removes a user-defined network; refuses duplicates and overlaps', async () => {
    const subnet = `${subnetOf(block, 3)}.0/24`;
    const id = (await ok(daemon!, ['network', 'create', '--subnet', subnet, '--gateway', `${subnetOf(block, 3)}.254`, '--label', 'team=a', 'cfg'])).trim();
    assert.match(id, /^[a-f0-9]{64}$/);
    bridges.push(bridgeOf(id));
    const info = JSON.parse(await ok(daemon!, ['network', 'inspect', 'cfg']))[0];
    assert.equal(info.Id, id);
    assert.equal(info.Driver, 'bridge');
    assert.deepEqual(info.IPAM.Config, [{ Subnet: subnet, Gateway: `${subnetOf(block, 3)}.254` }]);
    assert.deepEqual(info.Labels, { team: 'a' });
    assert.equal(linkExists(bridgeOf(id)), true);
    assert.match(execFileSync('ip', ['-4', 'addr', 'show', bridgeOf(id)], { encoding: 'utf8' }), new RegExp(`${subnetOf(block, 3)}\\.254/24`));
    assert.notDeepEqual(ourRules([bridgeOf(id)]), []);
    const dup = await docker(daemon!, ['network', 'create', 'cfg']);
    assert.notEqual(dup.status, 0);
    assert.match(dup.stderr, /network with name cfg already exists/);
    const overlap = await docker(daemon!, ['network', 'create', '--subnet', subnet, 'cfg2']);
    assert.notEqual(overlap.status, 0);
    assert.match(overlap.stderr, /overlaps/);
    const filtered = await ok(daemon!, ['network', 'ls', '-q', '--no-trunc', '--filter', 'label=team=a']);
    assert.equal(filtered.trim(), id);
    assert.equal((await ok(daemon!, ['network', 'rm', 'cfg'])).trim(), 'cfg');
    assert.equal(linkExists(bridgeOf(id)), false);
    assert.deepEqual(ourRules([bridgeOf(id)]), []);
  });

  it('lets two containers on a user-defined network talk by name and alias over HTTP; isolates other networks', async () => {
    const n1 = (await ok(daemon!, ['network', 'create', '--subnet', `${subnetOf(block, 1)}.0/24`, 'front'])).trim();
    const n2 = (await ok(daemon!, ['network', 'create', '--subnet', `${subnetOf(block, 2)}.0/24`, 'back'])).trim();
    bridges.push(bridgeOf(n1), bridgeOf(n2));
    await ok(daemon!, ['run', '-d', '--name', 'web', '--network', 'front', '--network-alias', 'www', 'busybox', ...httpdArgs('web')]);
    try {
      const byName = await ok(daemon!, ['run', '--rm', '--network', 'front', 'busybox', ...fetchLoop('http://web/')]);
      assert.equal(byName, 'hello-web\n');
      const byAlias = await ok(daemon!, ['run', '--rm', '--network', 'front', 'busybox', ...fetchLoop('http://www/', 5)]);
      assert.equal(byAlias, 'hello-web\n');
      const webIp = (await ok(daemon!, ['inspect', '-f', '{{.NetworkSettings.Networks.front.IPAddress}}', 'web'])).trim();
      assert.match(webIp, new RegExp(`^${subnetOf(block, 1).replace(/\./g, '\\.')}\\.\\d+$`));

      // Another network neither resolves the name nor reaches the address.
      const other = await docker(daemon!, ['run', '--rm', '--network', 'back', 'busybox', 'sh', '-c', `timeout 3 wget -q -O - http://web/; echo "name:$?"; timeout 3 wget -q -O - http://${webIp}/; echo "ip:$?"`]);
      assert.equal(other.status, 0, other.stderr);
      assert.match(other.stdout, /name:[1-9]/);
      assert.match(other.stdout, /ip:[1-9]/);
      assert.doesNotMatch(other.stdout, /hello-web/);

      // Live connect: a running container on "back" joins "front" and reaches web by name; disconnect ends it.
      await ok(daemon!, ['run', '-d', '--name', 'roamer', '--network', 'back', 'busybox', 'sleep', '300']);
      await ok(daemon!, ['network', 'connect', '--alias', 'wanderer', 'front', 'roamer']);
      const nets = JSON.parse(await ok(daemon!, ['inspect', '-f', '{{json .NetworkSettings.Networks}}', 'roamer']));
      assert.deepEqual(Object.keys(nets).sort(), ['back', 'front']);
      assert.match(nets.front.IPAddress, new RegExp(`^${subnetOf(block, 1).replace(/\./g, '\\.')}\\.`));
      const connected = await ok(daemon!, ['exec', 'roamer', ...fetchLoop('http://web/', 10)]);
      assert.equal(connected, 'hello-web\n');
      // The peer learnt the newcomer's alias too.
      const webHosts = await ok(daemon!, ['exec', 'web', 'cat', '/etc/hosts']);
      assert.match(webHosts, /\troamer wanderer /);
      const inspectFront = JSON.parse(await ok(daemon!, ['network', 'inspect', 'front']))[0];
      assert.equal(Object.keys(inspectFront.Containers).length, 2);

      await ok(daemon!, ['network', 'disconnect', 'front', 'roamer']);
      const after = await docker(daemon!, ['exec', 'roamer', 'sh', '-c', `ip -o addr show | grep -c ${subnetOf(block, 1)}.; timeout 3 wget -q -O - http://web/; echo "w:$?"`]);
      assert.match(after.stdout, /^0\n/);
      assert.match(after.stdout, /w:[1-9]/);
      assert.doesNotMatch(await ok(daemon!, ['exec', 'web', 'cat', '/etc/hosts']), /roamer/);
      const notConnected = await docker(daemon!, ['network', 'disconnect', 'front', 'roamer']);
      assert.notEqual(notConnected.status, 0);
      assert.match(notConnected.stderr, /is not connected to network front/);

      const inUse = await docker(daemon!, ['network', 'rm', 'front']);
      assert.notEqual(inUse.status, 0);
      assert.match(inUse.stderr, /has active endpoints/);
    } finally {
      await docker(daemon!, ['rm', '-f', 'web', 'roamer']);
    }
    const pruned = await ok(daemon!, ['network', 'prune', '-f']);
    assert.match(pruned, /Deleted Networks:\n(back\nfront|front\nback)\n/);
    for (const id of [n1, n2]) assert.equal(linkExists(bridgeOf(id)), false);
    assert.deepEqual(ourRules([bridgeOf(n1), bridgeOf(n2)]), []);
  });

  it('publishes ports on 127.0.0.1, picks random ones, and reports conflicts like docker', async () => {
    const probe = net.createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as net.AddressInfo).port;
    await new Promise<void>((r) => probe.close(() => r()));
    await ok(daemon!, ['run', '-d', '--name', 'pub', '-p', `127.0.0.1:${port}:80`, '-p', '127.0.0.1::80', 'busybox', ...httpdArgs('pub')]);
    try {
      assert.equal(await hostFetch(port), 'hello-pub\n');
      const ports = (await ok(daemon!, ['port', 'pub', '80/tcp'])).trim().split('\n');
      assert.equal(ports.length, 2);
      assert.ok(ports.includes(`127.0.0.1:${port}`), ports.join(','));
      const random = Number(ports.find((p) => p !== `127.0.0.1:${port}`)!.split(':')[1]);
      assert.ok(random > 0 && random !== port);
      assert.equal(await hostFetch(random), 'hello-pub\n');

      const clash = await docker(daemon!, ['run', '-d', '--name', 'clash', '-p', `127.0.0.1:${port}:80`, 'busybox', 'true']);
      assert.equal(clash.status, 125);
      assert.match(clash.stderr, new RegExp(`Bind for 127\\.0\\.0\\.1:${port} failed: port is already allocated`));
    } finally {
      await docker(daemon!, ['rm', '-f', 'pub', 'clash']);
    }
    // The port is free again once the container is gone.
    const again = net.createServer();
    await new Promise<void>((resolve, reject) => {
      again.once('error', reject);
      again.listen(port, '127.0.0.1', resolve);
    });
    await new Promise<void>((r) => again.close(() => r()));
  });

  it('runs in host and none modes', async () => {
    const none = await ok(daemon!, ['run', '--rm', '--network', 'none', 'busybox', 'sh', '-c', 'ip -o link show | cut -d: -f2 | tr -d " "; ip route | wc -l']);
    assert.equal(none, 'lo\n0\n');
    const hostNs = execFileSync('readlink', ['/proc/self/ns/net'], { encoding: 'utf8' }).trim();
    const host = await ok(daemon!, ['run', '--rm', '--network', 'host', 'busybox', 'sh', '-c', `readlink /proc/self/ns/net; ip link show ${defaultBridge} >/dev/null && echo sees-bridge`]);
    assert.equal(host, `${hostNs}\nsees-bridge\n`);
    const mode = await ok(daemon!, ['create', '--network', 'host', 'busybox', 'true']);
    assert.equal((await ok(daemon!, ['inspect', '-f', '{{.HostConfig.NetworkMode}}', mode.trim()])).trim(), 'host');
    await ok(daemon!, ['rm', mode.trim()]);
    const unknown = await docker(daemon!, ['create', '--network', 'nosuchnet', 'busybox', 'true']);
    assert.notEqual(unknown.status, 0);
    assert.match(unknown.stderr, /network nosuchnet not found/);
  });

  it('shares a running container\'s namespace with --network container:NAME', async () => {
    await ok(daemon!, ['run', '-d', '--name', 'owner', 'busybox', ...httpdArgs('owner')]);
    try {
      const shared = await ok(daemon!, ['run', '--rm', '--network', 'container:owner', 'busybox', ...fetchLoop('http://127.0.0.1/')]);
      assert.equal(shared, 'hello-owner\n');
    } finally {
      await docker(daemon!, ['rm', '-f', 'owner']);
    }
  });

  it('gives --internal networks no outbound route', async () => {
    await ok(daemon!, ['network', 'create', '--internal', '--subnet', `${subnetOf(block, 3)}.0/24`, 'sealed']);
    const id = JSON.parse(await ok(daemon!, ['network', 'inspect', 'sealed']))[0].Id as string;
    bridges.push(bridgeOf(id));
    try {
      const out = await ok(daemon!, ['run', '--rm', '--network', 'sealed', 'busybox', 'sh', '-c', `ip route; ping -c 1 -W 1 ${subnetOf(block, 0)}.1 >/dev/null 2>&1; echo "gw:$?"`]);
      assert.doesNotMatch(out, /default/);
      assert.match(out, new RegExp(`${subnetOf(block, 3).replace(/\./g, '\\.')}\\.0/24 dev eth0`));
      assert.match(out, /gw:1/);
    } finally {
      await ok(daemon!, ['network', 'rm', 'sealed']);
    }
  });

  it('keeps the default bridge closed with icc off, except for legacy links (hosts entry and ALIAS_PORT variables)', async () => {
    await ok(daemon!, ['run', '-d', '--name', 'db', '--expose', '80', '-e', 'SECRET=s3', 'busybox', ...httpdArgs('db')]);
    try {
      const dbIp = (await ok(daemon!, ['inspect', '-f', '{{.NetworkSettings.IPAddress}}', 'db'])).trim();
      assert.match(dbIp, new RegExp(`^${subnetOf(block, 0).replace(/\./g, '\\.')}\\.`));
      const linked = await ok(daemon!, ['run', '--rm', '--link', 'db:store', 'busybox', 'sh', '-c', `echo "$STORE_PORT_80_TCP_ADDR $STORE_PORT $STORE_ENV_SECRET $STORE_NAME"; grep -c store /etc/hosts; ${fetchLoop('http://store/')[2]}`]);
      const [vars, hostsCount, body] = linked.split('\n');
      assert.match(vars!, new RegExp(`^${dbIp.replace(/\./g, '\\.')} tcp://${dbIp.replace(/\./g, '\\.')}:80 s3 /[^/]+/store$`));
      assert.equal(hostsCount, '1');
      assert.equal(body, 'hello-db');
      const unlinked = await docker(daemon!, ['run', '--rm', 'busybox', 'sh', '-c', `timeout 3 wget -q -O - http://${dbIp}/; echo "w:$?"`]);
      assert.match(unlinked.stdout, /w:[1-9]/);
    } finally {
      await docker(daemon!, ['rm', '-f', 'db']);
    }
  });

  it('applies --ip, --hostname, --dns, --dns-search, --add-host, -P, and connects stopped containers at their next start', async () => {
    const sub = subnetOf(block, 3);
    await ok(daemon!, ['network', 'create', '--subnet', `${sub}.0/24`, 'opts']);
    const id = JSON.parse(await ok(daemon!, ['network', 'inspect', 'opts']))[0].Id as string;
    bridges.push(bridgeOf(id));
    try {
      const out = await ok(daemon!, [
        'run', '--rm', '--network', 'opts', '--ip', `${sub}.50`, '--hostname', 'box', '--dns', '10.9.9.9', '--dns-search', 'corp.test', '--add-host', 'extra:10.1.2.3',
        'busybox', 'sh', '-c', 'cat /etc/resolv.conf /etc/hosts; hostname; ip -o -4 addr show eth0',
      ]);
      assert.match(out, /^nameserver 10\.9\.9\.9\nsearch corp\.test\n/);
      assert.match(out, /\n10\.1\.2\.3\textra\n/);
      assert.match(out, new RegExp(`\\n${sub.replace(/\./g, '\\.')}\\.50\\tbox\\n`));
      assert.match(out, /\nbox\n/);
      assert.match(out, new RegExp(`inet ${sub.replace(/\./g, '\\.')}\\.50/24`));

      const outside = await docker(daemon!, ['run', '--rm', '--network', 'opts', '--ip', '10.255.255.250', 'busybox', 'true']);
      assert.equal(outside.status, 125);
      assert.match(outside.stderr, /Invalid address 10\.255\.255\.250: It does not belong to any of this network's subnets/);
      const onDefault = await docker(daemon!, ['run', '--rm', '--ip', `${subnetOf(block, 0)}.77`, 'busybox', 'true']);
      assert.equal(onDefault.status, 125);
      assert.match(onDefault.stderr, /user specified IP address is supported on user defined networks only/);

      await ok(daemon!, ['run', '-d', '--name', 'pall', '-P', '--expose', '7000', '--expose', '7001/udp', 'busybox', 'sleep', '300']);
      const published = (await ok(daemon!, ['port', 'pall'])).trim().split('\n').sort();
      assert.equal(published.length, 2, published.join('\n'));
      assert.match(published[0]!, /^7000\/tcp -> 0\.0\.0\.0:\d+$/);
      assert.match(published[1]!, /^7001\/udp -> 0\.0\.0\.0:\d+$/);

      await ok(daemon!, ['create', '--name', 'later', '--network', 'opts', 'busybox', 'sh', '-c', 'ip -o -4 addr show | grep -o "eth[0-9] *inet [0-9.]*"']);
      await ok(daemon!, ['network', 'connect', 'bridge', 'later']);
      const twice = await docker(daemon!, ['network', 'connect', 'bridge', 'later']);
      assert.notEqual(twice.status, 0);
      assert.match(twice.stderr, /endpoint with name later already exists in network bridge/);
      const started = await ok(daemon!, ['start', '-a', 'later']);
      assert.match(started, new RegExp(`eth0 +inet ${sub.replace(/\./g, '\\.')}\\.`));
      assert.match(started, new RegExp(`eth1 +inet ${subnetOf(block, 0).replace(/\./g, '\\.')}\\.`));
    } finally {
      await docker(daemon!, ['rm', '-f', 'pall', 'later']);
      await ok(daemon!, ['network', 'rm', 'opts']);
    }
  });

  it('manages networks with the tsengine CLI as docker does', async () => {
    const run = async (args: string[]) => {
      const r = await tsengine(args, { host: daemon! });
      assert.equal(r.status, 0, `tsengine ${args.join(' ')}: ${r.stderr}`);
      return r.stdout;
    };
    const id = (await run(['network', 'create', '--subnet', `${subnetOf(block, 3)}.0/24`, '--label', 'via=cli', 'clinet'])).trim();
    bridges.push(bridgeOf(id));
    const table = await run(['network', 'ls']);
    assert.match(table.split('\n')[0]!, /^NETWORK ID\s+NAME\s+DRIVER\s+SCOPE$/);
    assert.match(table, new RegExp(`\\n${id.slice(0, 12)}\\s+clinet\\s+bridge\\s+local\\n`));
    assert.equal((await run(['network', 'inspect', '-f', '{{.Name}} {{.Labels.via}}', 'clinet'])).trim(), 'clinet cli');
    const missing = await tsengine(['network', 'inspect', 'nosuchnet'], { host: daemon! });
    assert.notEqual(missing.status, 0);
    assert.match(missing.stderr, /Error response from daemon: network nosuchnet not found/);
    assert.equal((await run(['network', 'rm', 'clinet'])).trim(), 'clinet');
    assert.equal(linkExists(bridgeOf(id)), false);
  });

  it('removes namespaces and veths with the container', async () => {
    const id = (await ok(daemon!, ['run', '-d', 'busybox', 'sleep', '300'])).trim();
    const netns = join(daemon!.execRoot, 'netns', id);
    assert.ok((await readdir(join(daemon!.execRoot, 'netns'))).includes(id));
    assert.ok((await mountsUnder(daemon!.execRoot)).includes(netns));
    const veth = `tsv${(JSON.parse(await ok(daemon!, ['inspect', id]))[0].NetworkSettings.EndpointID as string).slice(0, 10)}`;
    assert.equal(linkExists(veth), true);
    await ok(daemon!, ['rm', '-f', id]);
    assert.equal(await linkGone(veth), true, 'the veth is deleted');
    assert.ok(!(await mountsUnder(daemon!.execRoot)).includes(netns));
    assert.ok(!(await readdir(join(daemon!.execRoot, 'netns'))).includes(id));
  });
});

describe('networks across a daemon restart', () => {
  it('keeps networks, subnets and container addresses, and leaves nothing behind while stopped', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tsengine-netrestart-'));
    const dataRoot = join(dir, 'data');
    const suffix = uniqueSuffix();
    const block = freeSubnets(4)[0]!;
    const options = { bip: `${subnetOf(block, 0)}.1/24`, 'bridge-name': `tse${suffix}` };
    const config = { graphdriver: 'overlay' };
    let daemon: Daemon | undefined = await startDaemon({ plugins: pluginsFor(options), config, dataRoot });
    const bridges = [`tse${suffix}`];
    try {
      await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
      const netId = (await ok(daemon, ['network', 'create', '--subnet', `${subnetOf(block, 1)}.0/24`, 'keep'])).trim();
      bridges.push(bridgeOf(netId));
      await ok(daemon, ['run', '-d', '--name', 'first', '--network', 'keep', 'busybox', 'sleep', '300']);
      const ip = (await ok(daemon, ['inspect', '-f', '{{.NetworkSettings.Networks.keep.IPAddress}}', 'first'])).trim();
      assert.match(ip, /^10\./);
      const stopped = await daemon.stop();
      daemon = undefined;
      assert.equal(stopped.code, 0);
      for (const bridge of bridges) assert.equal(linkExists(bridge), false, `bridge ${bridge} left after shutdown`);
      assert.deepEqual(ourRules(bridges), []);

      daemon = await startDaemon({ plugins: pluginsFor(options), config, dataRoot });
      const info = JSON.parse(await ok(daemon, ['network', 'inspect', 'keep']))[0];
      assert.equal(info.Id, netId);
      assert.equal(info.IPAM.Config[0].Subnet, `${subnetOf(block, 1)}.0/24`);
      assert.equal(linkExists(bridgeOf(netId)), true);
      await ok(daemon, ['start', 'first']);
      assert.equal((await ok(daemon, ['inspect', '-f', '{{.NetworkSettings.Networks.keep.IPAddress}}', 'first'])).trim(), ip);
      const second = (await ok(daemon, ['run', '--rm', '--network', 'keep', 'busybox', 'sh', '-c', 'ip -o -4 addr show eth0'])).trim();
      assert.doesNotMatch(second, new RegExp(`inet ${ip.replace(/\./g, '\\.')}/`));
      await ok(daemon, ['rm', '-f', 'first']);
    } finally {
      if (daemon) await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    }
    for (const bridge of bridges) assert.equal(linkExists(bridge), false);
    assert.deepEqual(ourRules(bridges), []);
  });

  it('recovers from a killed daemon: reuses the bridge, duplicates no rule, drops stale veths', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'tsengine-netcrash-'));
    const dataRoot = join(dir, 'data');
    // Both daemons share the exec root, as /run/tsengine would be shared.
    const execRoot = join(dir, 'run');
    const suffix = uniqueSuffix();
    const block = freeSubnets(4)[0]!;
    const bridge = `tse${suffix}`;
    const start = () =>
      startDaemon({ plugins: pluginsFor({ bip: `${subnetOf(block, 0)}.1/24`, 'bridge-name': bridge }), config: { graphdriver: 'overlay' }, dataRoot, extraArgs: ['--exec-root', execRoot] });
    let daemon: Daemon | undefined = await start();
    try {
      await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
      const id = (await ok(daemon, ['run', '-d', 'busybox', 'sleep', '300'])).trim();
      const veth = `tsv${(JSON.parse(await ok(daemon, ['inspect', id]))[0].NetworkSettings.EndpointID as string).slice(0, 10)}`;
      const rules = ourRules([bridge]).sort();
      assert.equal(linkExists(veth), true);
      daemon.process.kill('SIGKILL');
      await daemon.exited;
      await rm(daemon.dir, { recursive: true, force: true });
      assert.equal(linkExists(bridge), true, 'a killed daemon cannot clean up');

      daemon = await start();
      assert.equal(linkExists(veth), false, 'the stale veth is gone');
      assert.deepEqual(ourRules([bridge]).sort(), rules, 'the rules are those of one daemon');
      assert.deepEqual(await mountsUnder(join(execRoot, 'netns')), []);
      await ok(daemon, ['start', id]);
      assert.match((await ok(daemon, ['inspect', '-f', '{{.NetworkSettings.IPAddress}}', id])).trim(), /^10\./);
      await ok(daemon, ['rm', '-f', id]);
    } finally {
      if (daemon) await daemon.stop();
      await rm(dir, { recursive: true, force: true });
    }
    assert.equal(linkExists(bridge), false);
    assert.deepEqual(ourRules([bridge]), []);
    assert.deepEqual(await mountsUnder(dir), []);
  });
});
