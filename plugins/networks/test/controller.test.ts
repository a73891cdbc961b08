import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  CapabilityProviders,
  type ContainerInspect,
  type DependencyContainer,
  type DriverEndpoint,
  type DriverNetwork,
  type Engine,
  type Logger,
  type NetworkDriver,
  type PortBinding,
  type SandboxRequest,
  errorKind,
  eventBusOf,
} from '@tsengine/core';
import { DEFAULT_ADDRESS_POOLS, DefaultIpam, NetworkController } from '../src/index.js';

const log = new Proxy({}, { get: (_t, key) => (key === 'child' ? () => log : () => undefined) }) as unknown as Logger;

/** Records what the controller asks of a driver; makes no devices. */
class FakeBridge implements NetworkDriver {
  readonly name = 'bridge';
  readonly up_: string[] = [];
  readonly down_: string[] = [];
  readonly joined = new Map<string, DriverEndpoint>();
  async up(network: DriverNetwork): Promise<void> {
    this.up_.push(network.name);
  }
  async down(network: DriverNetwork): Promise<void> {
    this.down_.push(network.name);
  }
  async join(_network: DriverNetwork, endpoint: DriverEndpoint): Promise<PortBinding[]> {
    this.joined.set(endpoint.id, endpoint);
    return endpoint.ports.map((p) => ({ ...p, hostIp: p.hostIp || '0.0.0.0', hostPort: p.hostPort || 40000 }));
  }
  async leave(_network: DriverNetwork, endpoint: DriverEndpoint): Promise<void> {
    this.joined.delete(endpoint.id);
  }
}

function sandboxOnly(name: 'host' | 'null', sandbox: 'host' | 'none'): NetworkDriver {
  return { name, sandbox, up: async () => undefined, down: async () => undefined, join: async () => [], leave: async () => undefined };
}

function providers(...drivers: NetworkDriver[]): CapabilityProviders<NetworkDriver> {
  const registrations = new Map(drivers.map((d) => [d.name, { capability: 'networkdriver', name: d.name, plugin: 'test', factory: () => d }]));
  return new CapabilityProviders('networkdriver', registrations, {} as DependencyContainer, 'bridge');
}

describe('network controller', () => {
  let dir: string;
  let bridge: FakeBridge;
  let controller: NetworkController;
  const containers = new Map<string, Partial<ContainerInspect>>();
  const engine = {
    job: (_name: string, input: { id: string }) => ({
      run: async () => {
        const found = containers.get(input.id) ?? [...containers.values()].find((c) => c.Name === `/${input.id}`);
        if (!found) throw Object.assign(new Error(`No such container: ${input.id}`), { name: 'EngineError', kind: 'notfound' });
        return found;
      },
    }),
  } as unknown as Engine;

  async function make(): Promise<NetworkController> {
    const ipam = new DefaultIpam(join(dir, 'data'), DEFAULT_ADDRESS_POOLS, log);
    await ipam.load();
    const c = new NetworkController(join(dir, 'data'), join(dir, 'run'), providers(bridge, sandboxOnly('host', 'host'), sandboxOnly('null', 'none')), () => ipam, engine, log, {
      bip: '10.201.0.1/24',
      bridgeName: 'tseunit0',
    });
    await c.restore();
    return c;
  }

  function request(id: string, name: string, networkMode: string, extra: Partial<SandboxRequest> = {}): SandboxRequest {
    containers.set(id, { Id: id, Name: `/${name}`, HostConfig: { NetworkMode: networkMode }, Config: { Env: [] } as ContainerInspect['Config'] });
    return { containerId: id, name, hostname: id.slice(0, 12), networkMode, endpoints: {}, hostConfig: { NetworkMode: networkMode }, exposedPorts: {}, stateDir: join(dir, 'state', id), ...extra };
  }

  async function prepare(req: SandboxRequest): Promise<void> {
    await mkdir(req.stateDir, { recursive: true });
    await controller.validate(req);
  }

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tsengine-netctl-'));
    bridge = new FakeBridge();
    controller = await make();
  });

  after(async () => {
    await controller.shutdown();
    await rm(dir, { recursive: true, force: true });
  });

  it('makes the predefined networks once and keeps their IDs across restarts', async () => {
    const names = controller.list().map((n) => n.Name).sort();
    assert.deepEqual(names, ['bridge', 'host', 'none']);
    const bridgeNet = controller.inspect('bridge');
    assert.deepEqual(bridgeNet.IPAM.Config, [{ Subnet: '10.201.0.0/24', Gateway: '10.201.0.1' }]);
    assert.equal(bridgeNet.Options['com.docker.network.bridge.name'], 'tseunit0');
    const again = await make();
    assert.equal(again.inspect('bridge').Id, bridgeNet.Id);
    assert.equal(again.inspect('host').Id, controller.inspect('host').Id);
  });

  it('refuses what a start would refuse, without the 404 the docker CLI takes for a missing image', async () => {
    const bad = async (req: SandboxRequest, pattern: RegExp) => {
      await assert.rejects(controller.validate(req), (err) => errorKind(err) === 'invalid' && pattern.test(String(err)));
    };
    await bad(request('x1'.padEnd(64, '0'), 'x1', 'nosuchnet'), /network nosuchnet not found/);
    await bad(request('x2'.padEnd(64, '0'), 'x2', 'bridge', { endpoints: { bridge: { Aliases: ['a'] } } }), /alias is supported only for containers in user defined networks/);
    await bad(request('x3'.padEnd(64, '0'), 'x3', 'host', { hostConfig: { NetworkMode: 'host', Links: ['db:db'] } }), /host type networking can't be used with links/);
    await bad(request('x4'.padEnd(64, '0'), 'x4', 'bridge', { hostConfig: { PortBindings: { '0/tcp': [{}] } } }), /invalid port specification/);
  });

  it('keeps /etc/hosts of every peer current through start, connect, disconnect and stop', async () => {
    const { Id: netId } = await controller.create({ Name: 'unitnet', IPAM: { Config: [{ Subnet: '10.202.0.0/24' }] } });
    assert.ok(bridge.up_.includes('unitnet'));
    const a = request('a'.repeat(64), 'alpha', 'unitnet', { endpoints: { unitnet: { Aliases: ['first'] } } });
    const b = request('b'.repeat(64), 'beta', 'bridge');
    await prepare(a);
    await prepare(b);
    const sa = await controller.setUp(a);
    const sb = await controller.setUp(b);
    assert.equal(sa.network.mode, 'netns');
    const aIp = controller.settings(a.containerId)!.Networks.unitnet!.IPAddress;
    assert.equal(aIp, '10.202.0.2');
    assert.match(await readFile(sa.files.hosts, 'utf8'), /\n10\.202\.0\.2\taaaaaaaaaaaa\n/);
    assert.doesNotMatch(await readFile(sb.files.hosts, 'utf8'), /alpha/);

    await controller.connect('unitnet', 'beta', { Aliases: ['second'] });
    const bIp = controller.settings(b.containerId)!.Networks.unitnet!.IPAddress;
    assert.equal(bIp, '10.202.0.3');
    assert.match(await readFile(sb.files.hosts, 'utf8'), /\n10\.202\.0\.2\talpha first aaaaaaaaaaaa\n/);
    assert.match(await readFile(sa.files.hosts, 'utf8'), /\n10\.202\.0\.3\tbeta second bbbbbbbbbbbb\n/);
    assert.equal(Object.keys(controller.inspect(netId).Containers).length, 2);
    await assert.rejects(controller.remove('unitnet'), /has active endpoints/);
    await assert.rejects(controller.connect('unitnet', 'beta', {}), /endpoint with name beta already exists in network unitnet/);

    await controller.disconnect('unitnet', 'beta', false);
    assert.doesNotMatch(await readFile(sa.files.hosts, 'utf8'), /beta/);
    assert.deepEqual(Object.keys(controller.settings(b.containerId)!.Networks), ['bridge']);

    // A stop keeps the address for the next start; rm gives it back.
    await controller.tearDown(a.containerId);
    assert.equal(controller.settings(a.containerId)!.Networks.unitnet!.IPAddress, '');
    await controller.setUp(a);
    assert.equal(controller.settings(a.containerId)!.Networks.unitnet!.IPAddress, aIp);
    await controller.forget(a.containerId);
    await controller.forget(b.containerId);
    assert.equal(controller.settings(a.containerId), undefined);
    assert.equal(bridge.joined.size, 0, 'every endpoint left');
    await controller.remove('unitnet');
    assert.ok(bridge.down_.includes('unitnet'));
    assert.throws(() => controller.inspect('unitnet'), /network unitnet not found/);
  });

  it('publishes ports on the routed endpoint and shows them like docker', async () => {
    const c = request('c'.repeat(64), 'gamma', 'bridge', {
      hostConfig: { NetworkMode: 'bridge', PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }] }, PublishAllPorts: true },
      exposedPorts: { '80/tcp': {}, '90/udp': {} },
    });
    await prepare(c);
    await controller.setUp(c);
    const settings = controller.settings(c.containerId)!;
    assert.deepEqual(settings.Ports, { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }], '90/udp': [{ HostIp: '0.0.0.0', HostPort: '40000' }] });
    assert.equal(settings.IPAddress, settings.Networks.bridge!.IPAddress);
    assert.equal(settings.MacAddress, `02:42:0a:c9:00:${Number(settings.IPAddress.split('.')[3]).toString(16).padStart(2, '0')}`);
    await controller.forget(c.containerId);
  });

  it('publishes docker\'s network events', async () => {
    const seen: string[] = [];
    const stop = eventBusOf(engine).subscribe((e) => seen.push(`${e.Type} ${e.Action} ${e.Actor.Attributes.name} ${e.Actor.Attributes.container ?? '-'}`));
    try {
      await controller.create({ Name: 'evnet', IPAM: { Config: [{ Subnet: '10.203.0.0/24' }] } });
      const f = request('f'.repeat(64), 'phi', 'evnet');
      await prepare(f);
      await controller.setUp(f);
      await controller.forget(f.containerId);
      await controller.remove('evnet');
    } finally {
      stop();
    }
    assert.deepEqual(seen, ['network create evnet -', `network connect evnet ${'f'.repeat(64)}`, `network disconnect evnet ${'f'.repeat(64)}`, 'network destroy evnet -']);
  });

  it('gives none and host containers no endpoints', async () => {
    const n = request('d'.repeat(64), 'delta', 'none');
    await prepare(n);
    const sandbox = await controller.setUp(n);
    assert.equal(sandbox.network.mode, 'netns');
    assert.deepEqual(Object.keys(controller.settings(n.containerId)!.Networks), ['none']);
    const h = request('e'.repeat(64), 'epsilon', 'host');
    await prepare(h);
    assert.deepEqual((await controller.setUp(h)).network, { mode: 'host' });
    await controller.forget(n.containerId);
    await controller.forget(h.containerId);
    assert.equal(bridge.joined.size, 0);
  });
});
