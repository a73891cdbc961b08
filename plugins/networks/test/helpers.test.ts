import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hostsContent, linkEnv, portRequests } from '../src/index.js';

describe('port requests', () => {
  it('turns PortBindings and -P into requests', () => {
    const requests = portRequests({
      hostConfig: {
        PortBindings: { '80/tcp': [{ HostIp: '127.0.0.1', HostPort: '8080' }, { HostIp: '', HostPort: '' }], '53/udp': [{ HostPort: '5353' }] },
        PublishAllPorts: true,
      },
      exposedPorts: { '80/tcp': {}, '443/tcp': {} },
    });
    assert.deepEqual(requests, [
      { containerPort: 80, protocol: 'tcp', hostIp: '127.0.0.1', hostPort: 8080 },
      { containerPort: 80, protocol: 'tcp', hostIp: '', hostPort: 0 },
      { containerPort: 53, protocol: 'udp', hostIp: '', hostPort: 5353 },
      { containerPort: 443, protocol: 'tcp', hostIp: '', hostPort: 0 },
    ]);
  });

  it("refuses bad specifications with docker's words", () => {
    assert.throws(() => portRequests({ hostConfig: { PortBindings: { '99999/tcp': [{}] } }, exposedPorts: {} }), /invalid port specification: "99999\/tcp"/);
    assert.throws(() => portRequests({ hostConfig: { PortBindings: { '80/sctp': [{}] } }, exposedPorts: {} }), /invalid proto: sctp/);
    assert.throws(() => portRequests({ hostConfig: { PortBindings: { '80/tcp': [{ HostPort: 'abc' }] } }, exposedPorts: {} }), /invalid port specification: "abc"/);
    assert.throws(() => portRequests({ hostConfig: { PortBindings: { '80/tcp': [{ HostIp: 'nowhere', HostPort: '1' }] } }, exposedPorts: {} }), /invalid IP address: nowhere/);
  });
});

describe('legacy link variables', () => {
  it('names ports and environment as Docker 1.x did', () => {
    const env = linkEnv('db-1', '/web/db-1', '10.0.0.5', [{ port: 5432, protocol: 'tcp' }, { port: 5433, protocol: 'udp' }], ['PATH=/bin', 'PGUSER=me', 'HOME=/root']);
    assert.deepEqual(env, [
      'DB_1_NAME=/web/db-1',
      'DB_1_PORT=tcp://10.0.0.5:5432',
      'DB_1_PORT_5432_TCP=tcp://10.0.0.5:5432',
      'DB_1_PORT_5432_TCP_ADDR=10.0.0.5',
      'DB_1_PORT_5432_TCP_PORT=5432',
      'DB_1_PORT_5432_TCP_PROTO=tcp',
      'DB_1_PORT_5433_UDP=udp://10.0.0.5:5433',
      'DB_1_PORT_5433_UDP_ADDR=10.0.0.5',
      'DB_1_PORT_5433_UDP_PORT=5433',
      'DB_1_PORT_5433_UDP_PROTO=udp',
      'DB_1_ENV_PGUSER=me',
    ]);
  });
});

describe('hosts file', () => {
  it('lists localhost, extra hosts, links, the container, then its peers', () => {
    const text = hostsContent([{ address: '10.0.0.2', names: ['abc'] }], [{ address: '1.2.3.4', names: ['extra'] }], [{ address: '10.0.0.9', names: ['db', 'x'] }], [{ address: '10.0.0.3', names: ['web', 'www'] }]);
    const lines = text.trim().split('\n');
    assert.equal(lines[0], '127.0.0.1\tlocalhost');
    assert.deepEqual(lines.slice(6), ['1.2.3.4\textra', '10.0.0.9\tdb x', '10.0.0.2\tabc', '# containers on the same user-defined networks (kept current by tsengine)', '10.0.0.3\tweb www']);
  });
});
