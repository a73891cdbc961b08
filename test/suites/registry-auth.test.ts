import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Daemon, docker, startDaemon, tsengine } from '../helpers/daemon.js';
import { busyboxRootfsTar } from '../helpers/images.js';
import { type TestRegistry, type TokenServer, makeCertificates, startRegistry, startTokenServer } from '../helpers/registry.js';

const PLUGINS = ['@tsengine/api-server', '@tsengine/system', '@tsengine/images', '@tsengine/graphdriver-overlay', '@tsengine/registry-v2'];

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** The docker CLI with its own config folder, so that logins stay inside the test. */
function dockerAs(daemon: Daemon, configDir: string, args: string[], input?: string | Buffer) {
  return docker(daemon, args, { env: { DOCKER_CONFIG: configDir }, ...(input !== undefined ? { input: Buffer.isBuffer(input) ? input : Buffer.from(input) } : {}) });
}

async function ok(daemon: Daemon, configDir: string, args: string[], input?: string | Buffer): Promise<string> {
  const r = await dockerAs(daemon, configDir, args, input);
  assert.equal(r.status, 0, `docker ${args.join(' ')} failed (${r.status}): ${r.stderr}\n${r.stdout}`);
  return r.stdout;
}

/** POST /auth and X-Registry-Auth straight on the socket, to see the daemon's answers without the CLI in between. */
function api(daemon: Daemon, method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const http = require('node:http') as typeof import('node:http');
    const data = body === undefined ? undefined : Buffer.from(JSON.stringify(body));
    const req = http.request({ socketPath: daemon.socket, method, path, headers: { ...headers, ...(data ? { 'Content-Type': 'application/json', 'Content-Length': String(data.length) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.end(data);
  });
}

function xRegistryAuth(auth: Record<string, string>): string {
  return Buffer.from(JSON.stringify(auth)).toString('base64url');
}

describe('registry-v2: Basic auth against docker-registry with htpasswd', () => {
  let registry: TestRegistry;
  let daemon: Daemon;
  let configDir: string;
  let image: string;

  before(async () => {
    configDir = await mkdtemp(join(tmpdir(), 'tsengine-docker-config-'));
    registry = await startRegistry({ htpasswd: { alice: 's3cret-alice', bob: 'bob-pass' } });
    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' } });
    await ok(daemon, configDir, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
    image = `${registry.host}/private/busybox`;
    await ok(daemon, configDir, ['tag', 'busybox', `${image}:1`]);
  });
  after(async () => {
    await daemon?.stop();
    await registry?.stop();
    if (configDir) await rm(configDir, { recursive: true, force: true });
  });

  it('refuses a push without credentials with the registry\'s error', async () => {
    const r = await dockerAs(daemon, configDir, ['push', `${image}:1`]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr + r.stdout, /unauthorized: authentication required/);
  });

  it('docker login with a wrong password fails and stores nothing', async () => {
    const r = await dockerAs(daemon, configDir, ['login', '-u', 'alice', '--password-stdin', registry.host], 'wrong\n');
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, new RegExp(`login attempt to https?://${escape(registry.host)}/v2/ failed with status: 401 Unauthorized`));
    const stored = await readFile(join(configDir, 'config.json'), 'utf8').catch(() => '{}');
    assert.ok(!stored.includes(registry.host), stored);
  });

  it('docker login, push, rmi and pull with the stored credentials', async () => {
    const login = await ok(daemon, configDir, ['login', '-u', 'alice', '--password-stdin', registry.host], 's3cret-alice\n');
    assert.match(login, /Login Succeeded/);
    const stored = JSON.parse(await readFile(join(configDir, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.equal(Buffer.from(stored.auths[registry.host]!.auth, 'base64').toString(), 'alice:s3cret-alice');

    const push = await ok(daemon, configDir, ['push', `${image}:1`]);
    const digest = /1: digest: (sha256:[a-f0-9]{64})/.exec(push)?.[1];
    assert.ok(digest, push);
    await ok(daemon, configDir, ['rmi', `${image}:1`]);
    const pull = await ok(daemon, configDir, ['pull', `${image}:1`]);
    assert.match(pull, new RegExp(`Digest: ${digest}`));
  });

  it('a pull without credentials is refused with docker\'s wording', async () => {
    const r = await dockerAs(daemon, configDir, ['logout', registry.host]);
    assert.equal(r.status, 0, r.stderr);
    const pull = await dockerAs(daemon, configDir, ['pull', `${image}:1`]);
    assert.equal(pull.status, 1, pull.stdout);
    assert.match(pull.stderr, new RegExp(`pull access denied for ${escape(image)}, repository does not exist or may require 'docker login'`));
  });

  it('POST /auth answers Login Succeeded, and 401 with the reason', async () => {
    const good = await api(daemon, 'POST', '/v1.45/auth', { username: 'bob', password: 'bob-pass', serveraddress: registry.host });
    assert.equal(good.status, 200, good.body);
    assert.equal((JSON.parse(good.body) as { Status: string }).Status, 'Login Succeeded');
    const bad = await api(daemon, 'POST', '/v1.45/auth', { username: 'bob', password: 'nope', serveraddress: registry.host });
    assert.equal(bad.status, 401, bad.body);
    assert.match(bad.body, /failed with status: 401/);
  });

  it('tsengine login, push, pull and logout share docker\'s config.json', async () => {
    const cliConfig = join(configDir, 'tsengine');
    const env = { DOCKER_CONFIG: cliConfig };
    const bad = await tsengine(['login', '-u', 'bob', '--password-stdin', registry.host], { host: daemon, env, input: 'wrong\n' });
    assert.equal(bad.status, 1, bad.stdout);
    assert.match(bad.stderr, /Error response from daemon: login attempt to .* failed with status: 401 Unauthorized/);
    const login = await tsengine(['login', '-u', 'bob', '--password-stdin', registry.host], { host: daemon, env, input: 'bob-pass\n' });
    assert.equal(login.status, 0, login.stderr);
    assert.match(login.stdout, /Login Succeeded/);
    const stored = JSON.parse(await readFile(join(cliConfig, 'config.json'), 'utf8')) as { auths: Record<string, { auth: string }> };
    assert.equal(Buffer.from(stored.auths[registry.host]!.auth, 'base64').toString(), 'bob:bob-pass');

    await ok(daemon, configDir, ['tag', 'busybox', `${image}:cli`]);
    const push = await tsengine(['push', `${image}:cli`], { host: daemon, env });
    assert.equal(push.status, 0, push.stderr);
    assert.match(push.stdout, /cli: digest: sha256:[a-f0-9]{64} size: \d+/);
    await ok(daemon, configDir, ['rmi', `${image}:cli`]);
    const pull = await tsengine(['pull', `${image}:cli`], { host: daemon, env });
    assert.equal(pull.status, 0, pull.stderr);
    assert.match(pull.stdout, /Status: (Downloaded newer image|Image is up to date) for /);
    // docker's CLI reads the same file.
    assert.equal((await dockerAs(daemon, cliConfig, ['pull', `${image}:cli`])).status, 0);

    const logout = await tsengine(['logout', registry.host], { host: daemon, env });
    assert.equal(logout.status, 0, logout.stderr);
    assert.match(logout.stdout, new RegExp(`Removing login credentials for ${escape(registry.host)}`));
    const refused = await tsengine(['pull', `${image}:cli`], { host: daemon, env });
    assert.equal(refused.status, 1, refused.stdout);
    assert.match(refused.stderr, /pull access denied/);
  });

  it('X-Registry-Auth with the base64 "auth" form is accepted for a pull', async () => {
    const auth = xRegistryAuth({ auth: Buffer.from('bob:bob-pass').toString('base64'), serveraddress: registry.host });
    const r = await api(daemon, 'POST', `/v1.45/images/create?fromImage=${encodeURIComponent(image)}&tag=1`, undefined, { 'X-Registry-Auth': auth });
    assert.equal(r.status, 200, r.body);
    assert.doesNotMatch(r.body, /"error"/);
    assert.match(r.body, /Image is up to date/);
  });
});

describe('registry-v2: Bearer tokens from a token server', () => {
  let dir: string;
  let tokens: TokenServer;
  let registry: TestRegistry;
  let daemon: Daemon;
  let configDir: string;
  let image: string;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'tsengine-token-'));
    configDir = join(dir, 'docker-config');
    const certs = makeCertificates(dir);
    tokens = await startTokenServer({
      users: { carol: 'carol-pass', dave: 'dave-pass' },
      readOnly: ['dave'],
      key: await readFile(certs.caKey, 'utf8'),
      cert: await readFile(certs.caCert, 'utf8'),
      issuer: 'tsengine-test-issuer',
      service: 'tsengine-test-registry',
    });
    registry = await startRegistry({ token: { realm: tokens.realm, service: 'tsengine-test-registry', issuer: 'tsengine-test-issuer', rootCertBundle: certs.caCert } });
    daemon = await startDaemon({ plugins: PLUGINS, config: { graphdriver: 'overlay' } });
    await ok(daemon, configDir, ['import', '-c', 'CMD ["sh"]', '-', 'busybox:latest'], await busyboxRootfsTar());
    image = `${registry.host}/team/busybox`;
    await ok(daemon, configDir, ['tag', 'busybox', `${image}:1`]);
  });
  after(async () => {
    await daemon?.stop();
    await registry?.stop();
    await tokens?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('docker login checks the password at the token server', async () => {
    const bad = await dockerAs(daemon, configDir, ['login', '-u', 'carol', '--password-stdin', registry.host], 'wrong\n');
    assert.equal(bad.status, 1, bad.stdout);
    assert.match(bad.stderr, /unauthorized/);
    assert.match(bad.stderr, /incorrect username or password/);
    const good = await ok(daemon, configDir, ['login', '-u', 'carol', '--password-stdin', registry.host], 'carol-pass\n');
    assert.match(good, /Login Succeeded/);
  });

  it('pushes with a push-scoped token, fetched once for all blobs', async () => {
    const before = tokens.requests.length;
    const out = await ok(daemon, configDir, ['push', `${image}:1`]);
    assert.match(out, /1: digest: sha256:/);
    const fetched = tokens.requests.slice(before).filter((r) => !r.refused);
    assert.ok(fetched.length >= 1, JSON.stringify(fetched));
    assert.ok(fetched.every((r) => r.account === 'carol'), JSON.stringify(fetched));
    assert.ok(fetched.some((r) => r.scopes.includes('repository:team/busybox:pull,push')), JSON.stringify(fetched));
    // One token for the push scope, reused by every blob and the manifest (the cache).
    assert.equal(fetched.filter((r) => r.scopes.includes('repository:team/busybox:pull,push')).length, 1, JSON.stringify(fetched));
  });

  it('pulls after rmi with a pull token', async () => {
    await ok(daemon, configDir, ['rmi', `${image}:1`]);
    const out = await ok(daemon, configDir, ['pull', `${image}:1`]);
    assert.match(out, /Downloaded newer image/);
  });

  it('a read-only account may pull but not push', async () => {
    const readOnlyConfig = join(dir, 'dave-config');
    await ok(daemon, readOnlyConfig, ['login', '-u', 'dave', '--password-stdin', registry.host], 'dave-pass\n');
    await ok(daemon, readOnlyConfig, ['tag', `${image}:1`, `${image}:2`]);
    const r = await dockerAs(daemon, readOnlyConfig, ['push', `${image}:2`]);
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr + r.stdout, /unauthorized|denied/);
    await ok(daemon, readOnlyConfig, ['rmi', `${image}:2`]);
  });

  it('anonymous pulls get a token without access and are refused', async () => {
    const r = await docker(daemon, ['pull', `${image}:1`], { env: { DOCKER_CONFIG: join(dir, 'anonymous') } });
    assert.equal(r.status, 1, r.stdout);
    assert.match(r.stderr, /pull access denied for .*may require 'docker login'/);
  });

  it('an identity token from POST /auth works as a refresh token', async () => {
    const login = await api(daemon, 'POST', '/v1.45/auth', { username: 'carol', password: 'carol-pass', serveraddress: registry.host });
    assert.equal(login.status, 200, login.body);
    const identity = (JSON.parse(login.body) as { IdentityToken: string }).IdentityToken;
    assert.ok(identity, login.body);
    const before = tokens.requests.length;
    const auth = xRegistryAuth({ identitytoken: identity, serveraddress: registry.host });
    const r = await api(daemon, 'POST', `/v1.45/images/create?fromImage=${encodeURIComponent(image)}&tag=1`, undefined, { 'X-Registry-Auth': auth });
    assert.equal(r.status, 200, r.body);
    assert.doesNotMatch(r.body, /"error"/);
    assert.ok(tokens.requests.slice(before).some((q) => q.grant === 'refresh_token' && q.account === 'carol' && !q.refused), JSON.stringify(tokens.requests.slice(before)));
  });
});
