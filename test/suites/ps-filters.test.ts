import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Daemon, docker, startDaemon } from '../helpers/daemon.js';
import { busyboxRootfsTar } from '../helpers/images.js';
import { freeSubnets, linkExists } from '../helpers/network.js';

describe('docker ps --filter network, volume, publish, expose, health and is-task', () => {
  let daemon: Daemon | undefined;
  const defaultBridge = `tsf${randomBytes(3).toString('hex')}`;
  const [bridgeNet, userNet] = freeSubnets(2) as [string, string];
  const network = `psf-${randomBytes(3).toString('hex')}`;
  let networkId = '';
  let bindSource = '';
  let hostPort = 0;

  async function ok(args: string[]): Promise<string> {
    const r = await docker(daemon!, args, { timeoutMs: 60_000 });
    assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stderr}`);
    return r.stdout;
  }

  /** Names of the containers `docker ps -a` lists with these filters, sorted. */
  async function ps(...filters: string[]): Promise<string[]> {
    const out = await ok(['ps', '-a', '--format', '{{.Names}}', ...filters.flatMap((f) => ['--filter', f])]);
    return out.split('\n').filter(Boolean).sort();
  }

  before(async () => {
    daemon = await startDaemon({
      plugins: [
        '@tsengine/api-server',
        '@tsengine/system',
        '@tsengine/images',
        '@tsengine/graphdriver-overlay',
        '@tsengine/exec-native',
        { plugin: '@tsengine/networks', options: { bip: `${bridgeNet}.1/24`, 'bridge-name': defaultBridge } },
        '@tsengine/net-bridge',
        '@tsengine/net-host',
        '@tsengine/volume-local',
        '@tsengine/containers',
      ],
      config: { graphdriver: 'overlay' },
    });
    const r = await docker(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], { input: await busyboxRootfsTar() });
    assert.equal(r.status, 0, r.stderr);
    networkId = (await ok(['network', 'create', '--subnet', `${userNet}.0/24`, network])).trim();
    bindSource = join(daemon.dir, 'site');
    mkdirSync(bindSource);
    await ok(['run', '-d', '--name', 'web', '--network', network, '-p', '127.0.0.1::80', '--expose', '9000/udp', '-v', 'psf-data:/data', 'busybox', 'sleep', '3600']);
    await ok(['run', '-d', '--name', 'plain', '-v', `${bindSource}:/site`, 'busybox', 'sleep', '3600']);
    await ok(['create', '--name', 'idle', '--network', 'none', 'busybox', 'true']);
    hostPort = Number(/:(\d+)$/.exec((await ok(['port', 'web', '80'])).trim().split('\n')[0]!)![1]);
    assert.ok(hostPort > 0);
  });

  after(async () => {
    if (!daemon) return;
    await docker(daemon, ['rm', '-f', 'web', 'plain', 'idle']);
    await docker(daemon, ['network', 'rm', network]);
    await docker(daemon, ['volume', 'rm', 'psf-data']);
    const result = await daemon.stop();
    assert.equal(result.code, 0, `daemon exited with ${result.code ?? result.signal}:\n${daemon.logs().slice(-4000)}`);
    assert.equal(linkExists(defaultBridge), false, `bridge ${defaultBridge} left behind`);
  });

  it('network: by name or by a prefix of the network ID', async () => {
    assert.deepEqual(await ps(`network=${network}`), ['web']);
    assert.deepEqual(await ps(`network=${networkId.slice(0, 12)}`), ['web']);
    assert.deepEqual(await ps('network=bridge'), ['plain']);
    assert.deepEqual(await ps('network=bridge', `network=${network}`), ['plain', 'web']);
    assert.deepEqual(await ps('network=nosuchnetwork'), []);
  });

  it('volume: by volume name, bind source or mount destination', async () => {
    assert.deepEqual(await ps('volume=psf-data'), ['web']);
    assert.deepEqual(await ps('volume=/data'), ['web']);
    assert.deepEqual(await ps(`volume=${bindSource}`), ['plain']);
    assert.deepEqual(await ps('volume=/site'), ['plain']);
    assert.deepEqual(await ps('volume=/nowhere'), []);
  });

  it('publish matches the published host port, expose the container port', async () => {
    assert.deepEqual(await ps(`publish=${hostPort}`), ['web']);
    assert.deepEqual(await ps(`publish=${hostPort}/tcp`), ['web']);
    assert.deepEqual(await ps(`publish=${hostPort}/udp`), []);
    assert.deepEqual(await ps(`publish=${hostPort - 1}-${hostPort + 1}`), ['web']);
    assert.deepEqual(await ps('expose=80'), ['web']);
    assert.deepEqual(await ps('expose=79-81/tcp'), ['web']);
    assert.deepEqual(await ps('expose=9000/udp'), ['web']);
    assert.deepEqual(await ps('expose=9000'), []);
    assert.deepEqual(await ps('expose=8080'), []);
  });

  it('health is "none" for every container and is-task=true matches none', async () => {
    assert.deepEqual(await ps('health=none'), ['idle', 'plain', 'web']);
    assert.deepEqual(await ps('health=healthy'), []);
    assert.deepEqual(await ps('is-task=false'), ['idle', 'plain', 'web']);
    assert.deepEqual(await ps('is-task=true'), []);
    assert.deepEqual(await ps('health=none', `network=${network}`, 'expose=80'), ['web']);
  });

  it("refuses bad values with Docker's messages", async () => {
    const cases: Array<[string, string]> = [
      ['health=sick', "invalid filter 'health=sick': invalid value for health (sick): must be one of none, starting, healthy, unhealthy"],
      ['is-task=maybe', "invalid filter 'is-task=[maybe]'"],
      ['publish=80:80', "filter for 'publish' should not contain ':': 80:80"],
      ['expose=http', "error while looking up for expose http: invalid start port 'http': invalid syntax"],
    ];
    for (const [filter, message] of cases) {
      const r = await docker(daemon!, ['ps', '-a', '--filter', filter]);
      assert.notEqual(r.status, 0, filter);
      assert.equal(r.stderr.trim(), `Error response from daemon: ${message}`);
    }
  });
});
