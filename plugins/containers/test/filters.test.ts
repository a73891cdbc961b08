import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ContainerListFilters, ContainerSummary, MountPoint } from '@tsengine/core';
import { listFilterOf } from '../src/filters.js';
import type { ContainerRecord } from '../src/manager.js';

function record(id: string, name: string): ContainerRecord {
  return {
    Id: id.repeat(64).slice(0, 64),
    Name: `/${name}`,
    Created: '2026-01-01T00:00:00.000000000Z',
    Path: 'sh',
    Args: [],
    Image: 'sha256:' + 'f'.repeat(64),
    ImageChainId: null,
    Config: { Image: 'busybox' },
    HostConfig: {},
    Driver: 'vfs',
    State: { Status: 'running', Running: true, Paused: false, Restarting: false, OOMKilled: false, Dead: false, Pid: 1, ExitCode: 0, Error: '', StartedAt: '2026-01-01T00:00:01Z', FinishedAt: '0001-01-01T00:00:00Z' },
  } as ContainerRecord;
}

const volumeMount = (name: string, destination: string): MountPoint => ({ Type: 'volume', Name: name, Source: `/var/lib/tsengine/volumes/${name}/_data`, Destination: destination, Driver: 'local', Mode: '', RW: true, Propagation: '' });
const bindMount = (source: string, destination: string): MountPoint => ({ Type: 'bind', Source: source, Destination: destination, Mode: '', RW: true, Propagation: 'rprivate' });

const web = record('a', 'web');
const db = record('b', 'db');
const idle = record('c', 'idle');
const summaries = new Map<string, Partial<ContainerSummary>>([
  [
    web.Id,
    {
      Ports: [
        { PrivatePort: 80, PublicPort: 8080, Type: 'tcp', IP: '0.0.0.0' },
        { PrivatePort: 53, Type: 'udp' },
      ],
      NetworkSettings: { Networks: { frontend: { NetworkID: '1234abcd'.repeat(8) }, bridge: { NetworkID: 'beef'.repeat(16) } } },
      Mounts: [volumeMount('webdata', '/data'), bindMount('/srv/site', '/site')],
    },
  ],
  [
    db.Id,
    {
      Ports: [{ PrivatePort: 5432, PublicPort: 15432, Type: 'tcp', IP: '127.0.0.1' }],
      NetworkSettings: { Networks: { backend: { NetworkID: '5678ef00'.repeat(8) } } },
      Mounts: [volumeMount('dbdata', '/var/lib/db')],
    },
  ],
  [idle.Id, { Ports: [], NetworkSettings: { Networks: {} }, Mounts: [] }],
]);

const summaryOf = (r: ContainerRecord) => summaries.get(r.Id) as ContainerSummary;
const records = [web, db, idle];

async function names(filters: ContainerListFilters): Promise<string[]> {
  const matches = await listFilterOf(filters, async () => undefined, () => web, summaryOf);
  return records.filter(matches).map((r) => r.Name.slice(1));
}

async function refusal(filters: ContainerListFilters, withSummary = true): Promise<string> {
  try {
    await listFilterOf(filters, async () => undefined, () => web, withSummary ? summaryOf : undefined);
  } catch (err) {
    assert.equal((err as { kind?: string }).kind, 'invalid');
    return (err as Error).message;
  }
  throw new Error(`${JSON.stringify(filters)} was accepted`);
}

describe("docker ps filters on networks, volumes, ports, health and tasks", () => {
  it('network matches a network name or a prefix of its ID', async () => {
    assert.deepEqual(await names({ network: ['frontend'] }), ['web']);
    assert.deepEqual(await names({ network: ['backend', 'frontend'] }), ['web', 'db']);
    assert.deepEqual(await names({ network: ['5678ef'] }), ['db']);
    assert.deepEqual(await names({ network: ['beef'.repeat(16)] }), ['web']);
    assert.deepEqual(await names({ network: ['front'] }), [], 'a name must match whole');
    assert.deepEqual(await names({ network: ['nowhere'] }), []);
  });

  it('volume matches a volume name, a bind source or a mount destination', async () => {
    assert.deepEqual(await names({ volume: ['webdata'] }), ['web']);
    assert.deepEqual(await names({ volume: ['/var/lib/db'] }), ['db']);
    assert.deepEqual(await names({ volume: ['/srv/site'] }), ['web']);
    assert.deepEqual(await names({ volume: ['/site', 'dbdata'] }), ['web', 'db']);
    assert.deepEqual(await names({ volume: ['/var/lib/tsengine/volumes/webdata/_data'] }), [], 'a named volume is not matched by its source');
    assert.deepEqual(await names({ volume: ['/nope'] }), []);
  });

  it('publish matches published host ports and expose container ports, by port, protocol or range', async () => {
    assert.deepEqual(await names({ publish: ['8080'] }), ['web']);
    assert.deepEqual(await names({ publish: ['8080/tcp'] }), ['web']);
    assert.deepEqual(await names({ publish: ['8080/udp'] }), []);
    assert.deepEqual(await names({ publish: ['80'] }), [], 'publish looks at the host side');
    assert.deepEqual(await names({ publish: ['15000-16000'] }), ['db']);
    assert.deepEqual(await names({ publish: ['8000-16000/TCP'] }), ['web', 'db']);
    assert.deepEqual(await names({ expose: ['80'] }), ['web']);
    assert.deepEqual(await names({ expose: ['8080'] }), [], 'expose looks at the container side');
    assert.deepEqual(await names({ expose: ['53/udp'] }), ['web']);
    assert.deepEqual(await names({ expose: ['53'] }), []);
    assert.deepEqual(await names({ expose: ['5000-6000/tcp'] }), ['db']);
    // A container matches when either filter matches one of its ports.
    assert.deepEqual(await names({ expose: ['53/udp'], publish: ['15432'] }), ['web', 'db']);
  });

  it('health: every container here is "none"; is-task=true matches nothing', async () => {
    assert.deepEqual(await names({ health: ['none'] }), ['web', 'db', 'idle']);
    assert.deepEqual(await names({ health: ['healthy'] }), []);
    assert.deepEqual(await names({ health: ['starting', 'unhealthy'] }), []);
    assert.deepEqual(await names({ health: ['healthy', 'none'] }), ['web', 'db', 'idle']);
    assert.deepEqual(await names({ 'is-task': ['false'] }), ['web', 'db', 'idle']);
    assert.deepEqual(await names({ 'is-task': ['0'] }), ['web', 'db', 'idle']);
    assert.deepEqual(await names({ 'is-task': ['true'] }), []);
    assert.deepEqual(await names({ 'is-task': ['1'], network: ['frontend'] }), []);
  });

  it("refuses bad values with Docker's messages", async () => {
    assert.equal(await refusal({ health: ['sick'] }), "invalid filter 'health=sick': invalid value for health (sick): must be one of none, starting, healthy, unhealthy");
    assert.equal(await refusal({ 'is-task': ['maybe'] }), "invalid filter 'is-task=[maybe]'");
    assert.equal(await refusal({ 'is-task': ['true', 'false'] }), "invalid filter 'is-task=[true false]'");
    assert.equal(await refusal({ publish: ['80:80'] }), "filter for 'publish' should not contain ':': 80:80");
    assert.equal(await refusal({ expose: ['http'] }), "error while looking up for expose http: invalid start port 'http': invalid syntax");
    assert.equal(await refusal({ publish: ['70000'] }), "error while looking up for publish 70000: invalid start port '70000': value out of range");
    assert.equal(await refusal({ publish: ['90-80/tcp'] }), 'error while looking up for publish 90-80/tcp: invalid port range: 90-80/tcp');
    assert.equal(await refusal({ expose: ['80-'] }), "error while looking up for expose 80-: invalid end port '': value is empty");
    assert.equal(await refusal({ expose: [''] }), 'error while looking up for expose : invalid port range: value is empty');
    assert.equal(await refusal({ colour: ['red'] }), "invalid filter 'colour'");
    // Without the summaries (prune), the filters on them are refused as before.
    assert.equal(await refusal({ network: ['bridge'] }, false), "invalid filter 'network'");
    assert.equal(await refusal({ volume: ['x'] }, false), "invalid filter 'volume'");
  });
});
