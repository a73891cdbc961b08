import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, it } from 'node:test';
import { Authorizer, TokenCache, credentialsOf, parseChallenges } from '../src/auth.js';
import { EndpointResolver } from '../src/endpoint.js';
import { loginDomain } from '../src/login.js';
import { DEFAULT_OPTIONS, parseOptions } from '../src/options.js';

describe('WWW-Authenticate parsing', () => {
  it('reads a Bearer challenge with quoted parameters', () => {
    const [c] = parseChallenges('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:library/busybox:pull"');
    assert.deepEqual(c, { scheme: 'bearer', params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:library/busybox:pull' } });
  });
  it('reads Basic, unquoted values, escapes and several challenges', () => {
    const all = parseChallenges(['Basic realm="a \\"b\\"", charset=UTF-8', 'Negotiate, Bearer realm=https://x/t,service=s']);
    assert.deepEqual(all, [
      { scheme: 'basic', params: { realm: 'a "b"', charset: 'UTF-8' } },
      { scheme: 'bearer', params: { realm: 'https://x/t', service: 's' } },
    ]);
  });
  it('ignores garbage', () => {
    assert.deepEqual(parseChallenges(undefined), []);
    assert.deepEqual(parseChallenges('=,=,"'), []);
  });
});

describe('credentials', () => {
  it('decodes config.json "auth" into username and password', () => {
    assert.deepEqual(credentialsOf({ auth: Buffer.from('al:ice:pw').toString('base64') }), { username: 'al', password: 'ice:pw' });
    assert.equal(credentialsOf({}), undefined);
    assert.deepEqual(credentialsOf({ identitytoken: 'rt' }), { identityToken: 'rt' });
  });
  it('maps docker login server addresses to registry domains', () => {
    assert.equal(loginDomain('https://index.docker.io/v1/'), 'docker.io');
    assert.equal(loginDomain(''), 'docker.io');
    assert.equal(loginDomain('127.0.0.1:5000'), '127.0.0.1:5000');
    assert.equal(loginDomain('http://localhost:5000/v2/'), 'localhost:5000');
  });
});

describe('token cache', () => {
  it('expires tokens (never sooner than 60 s) and refreshes a little early', () => {
    let now = 1_000_000;
    const cache = new TokenCache(() => now);
    cache.set('k', 't', 10);
    assert.equal(cache.get('k'), 't');
    now += 54_000;
    assert.equal(cache.get('k'), 't');
    now += 2_000;
    assert.equal(cache.get('k'), undefined);
    cache.set('k', 't2', 300);
    cache.delete('k');
    assert.equal(cache.get('k'), undefined);
  });

  it('fetches a token once per scope set, and again after invalidate', async () => {
    const seen: string[] = [];
    const server = http.createServer((req, res) => {
      seen.push(`${req.headers.authorization ?? ''} ${req.url}`);
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify({ token: `tok${seen.length}`, expires_in: 300 }));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const realm = `http://127.0.0.1:${(server.address() as AddressInfo).port}/token`;
      const transport = () => ({ tls: { verify: true }, stallTimeoutMs: 5000, stallBytes: 1 });
      const auth = new Authorizer({ scheme: 'bearer', params: { realm, service: 'svc' } }, { username: 'u', password: 'p' }, new TokenCache(), transport, new AbortController().signal);
      assert.equal(await auth.header(['repository:a:pull']), 'Bearer tok1');
      assert.equal(await auth.header(['repository:a:pull']), 'Bearer tok1');
      assert.equal(await auth.header(['repository:b:pull']), 'Bearer tok2');
      auth.invalidate(['repository:a:pull']);
      assert.equal(await auth.header(['repository:a:pull']), 'Bearer tok3');
      assert.equal(seen.length, 3);
      assert.match(seen[0]!, /^Basic dTpw \/token\?service=svc&scope=repository%3Aa%3Apull&account=u$/);
    } finally {
      server.close();
    }
  });
});

describe('options and endpoints', () => {
  it('parses options and refuses bad ones', () => {
    assert.deepEqual(parseOptions(undefined), DEFAULT_OPTIONS);
    assert.deepEqual(parseOptions({ 'insecure-registries': ['r:5000'] }).insecureRegistries, ['r:5000']);
    assert.throws(() => parseOptions({ registryMirrors: ['ftp://x'] }), /scheme must be http or https/);
    assert.throws(() => parseOptions({ stallTimeoutMs: 0 }), /stallTimeoutMs must be a number >= 1/);
    assert.throws(() => parseOptions({ insecure: true }), /unknown option "insecure"/);
  });
  it('orders endpoints like docker: mirrors, https, then http only for insecure registries', async () => {
    const resolver = new EndpointResolver(parseOptions({ insecureRegistries: ['10.0.0.0/8', 'reg:5000'], registryMirrors: ['https://mirror:5000'], certsDir: '/nonexistent' }));
    const urls = async (domain: string, mirrors = true) => (await resolver.endpoints(domain, mirrors)).map((e) => `${e.base.href}${e.tls.verify ? '' : ' (no verify)'}`);
    assert.deepEqual(await urls('docker.io'), ['https://mirror:5000/v2/', 'https://registry-1.docker.io/v2/']);
    assert.deepEqual(await urls('docker.io', false), ['https://registry-1.docker.io/v2/']);
    assert.deepEqual(await urls('example.com'), ['https://example.com/v2/']);
    assert.deepEqual(await urls('reg:5000'), ['https://reg:5000/v2/ (no verify)', 'http://reg:5000/v2/ (no verify)']);
    assert.deepEqual(await urls('10.1.2.3:5000'), ['https://10.1.2.3:5000/v2/ (no verify)', 'http://10.1.2.3:5000/v2/ (no verify)']);
    assert.deepEqual(await urls('127.0.0.1:5000'), ['https://127.0.0.1:5000/v2/ (no verify)', 'http://127.0.0.1:5000/v2/ (no verify)']);
    assert.deepEqual(await urls('11.0.0.1'), ['https://11.0.0.1/v2/']);
  });
});
