import assert from 'node:assert/strict';
import { copyFile, mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Daemon, docker, startDaemon } from '../helpers/daemon.js';
import { busyboxRootfsTar } from '../helpers/images.js';
import { type TestRegistry, makeCertificates, makeClientCertificate, startRegistry } from '../helpers/registry.js';

async function ok(daemon: Daemon, args: string[], input?: Buffer): Promise<string> {
  const r = await docker(daemon, args, input ? { input } : {});
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

describe('registry-v2: TLS with a per-registry CA, insecure registries and Hub mirrors', () => {
  let dir: string;
  let secure: TestRegistry;
  let plain: TestRegistry;
  let mutual: TestRegistry;
  let daemon: Daemon;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tsengine-tls-'));
    const certs = makeCertificates(dir);
    secure = await startRegistry({ tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert } });
    plain = await startRegistry();
    const clientPair = makeClientCertificate(dir, certs);
    mutual = await startRegistry({ tls: { cert: certs.serverCert, key: certs.serverKey, ca: certs.caCert, clientCa: certs.caCert, clientCert: clientPair.cert, clientKey: clientPair.key } });
    const certsDir = join(dir, 'certs.d');
    await mkdir(join(certsDir, secure.host), { recursive: true });
    await copyFile(certs.caCert, join(certsDir, secure.host, 'ca.crt'));
    // The mutual-TLS registry: with the client pair as 127.0.0.1:PORT, with the CA only as localhost:PORT.
    await mkdir(join(certsDir, mutual.host), { recursive: true });
    await copyFile(certs.caCert, join(certsDir, mutual.host, 'ca.crt'));
    await copyFile(clientPair.cert, join(certsDir, mutual.host, 'client.cert'));
    await copyFile(clientPair.key, join(certsDir, mutual.host, 'client.key'));
    await mkdir(join(certsDir, `localhost:${mutual.port}`), { recursive: true });
    await copyFile(certs.caCert, join(certsDir, `localhost:${mutual.port}`, 'ca.crt'));
    const options = { certsDir, insecureLoopback: false, insecureRegistries: [plain.host], registryMirrors: [`https://${secure.host}`], retries: 1, retryDelayMs: 50, stallTimeoutMs: 5000 };
    daemon = await startDaemon({
      plugins: ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', { plugin: '@tsengine/registry-v2', options }],
      config: { graphdriver: 'overlay' },
    });
    await ok(daemon, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
  });
  after(async () => {
    await daemon?.stop();
    await secure?.stop();
    await plain?.stop();
    await mutual?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('pushes and pulls over HTTPS, trusting the CA from certs.d/HOST:PORT/ca.crt', async () => {
    const image = `${secure.host}/tls/busybox:1`;
    await ok(daemon, ['tag', 'busybox', image]);
    const out = await ok(daemon, ['push', image]);
    const digest = /1: digest: (sha256:[a-f0-9]{64})/.exec(out)?.[1];
    assert.ok(digest, out);
    assert.equal((await secure.get('/v2/tls/busybox/manifests/1', { Accept: 'application/vnd.docker.distribution.manifest.v2+json' })).headers['docker-content-digest'], digest);
    await ok(daemon, ['rmi', image]);
    assert.match(await ok(daemon, ['pull', image]), new RegExp(`Digest: ${digest}`));
  });

  it('refuses a certificate it has no CA for, without falling back to HTTP', async () => {
    // Same server, but named localhost:PORT: certs.d has no folder for that name.
    const other = `localhost:${secure.port}/tls/busybox:1`;
    const r = await docker(daemon, ['pull', other]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`cannot reach registry localhost:${secure.port}: GET https://localhost:${secure.port}/v2/: .*(certificate|self-signed|issuer)`));
    assert.doesNotMatch(r.stderr, /http:\/\/localhost/);
  });

  it('speaks plain HTTP to a registry listed as insecure (after trying HTTPS)', async () => {
    const image = `${plain.host}/plain/busybox:1`;
    await ok(daemon, ['tag', 'busybox', image]);
    await ok(daemon, ['push', image]);
    await ok(daemon, ['rmi', image]);
    assert.match(await ok(daemon, ['pull', image]), /Downloaded newer image/);
  });

  it('does not fall back to HTTP for a registry that is not listed as insecure', async () => {
    const r = await docker(daemon, ['pull', `localhost:${plain.port}/plain/busybox:1`]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`cannot reach registry localhost:${plain.port}: GET https://localhost:${plain.port}/v2/`));
  });

  it('presents the client certificate from certs.d to a registry that requires one', async () => {
    const image = `${mutual.host}/mtls/busybox:1`;
    await ok(daemon, ['tag', 'busybox', image]);
    await ok(daemon, ['push', image]);
    await ok(daemon, ['rmi', image]);
    assert.match(await ok(daemon, ['pull', image]), /Downloaded newer image/);
    const without = await docker(daemon, ['pull', `localhost:${mutual.port}/mtls/busybox:1`]);
    assert.equal(without.status, 1, without.stdout);
    assert.match(without.stderr, new RegExp(`cannot reach registry localhost:${mutual.port}`));
  });

  it('pulls Hub images through the configured mirror', async () => {
    // The mirror holds library/busybox:mirrored; the Hub itself is never asked.
    await ok(daemon, ['tag', 'busybox', `${secure.host}/library/busybox:mirrored`]);
    await ok(daemon, ['push', `${secure.host}/library/busybox:mirrored`]);
    const id = (await ok(daemon, ['image', 'inspect', '-f', '{{.Id}}', 'busybox'])).trim();
    const out = await ok(daemon, ['pull', 'busybox:mirrored']);
    assert.match(out, /mirrored: Pulling from library\/busybox/);
    assert.match(out, /Status: (Downloaded newer image|Image is up to date) for busybox:mirrored/);
    assert.equal((await ok(daemon, ['image', 'inspect', '-f', '{{.Id}}', 'busybox:mirrored'])).trim(), id);
  });
});
