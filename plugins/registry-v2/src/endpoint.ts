import { readFile, readdir } from 'node:fs/promises';
import { isIP } from 'node:net';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { EngineError, type ErrorKind, type RegistryAuth, errorMessage } from '@tsengine/core';
import { DEFAULT_DOMAIN } from '@tsengine/images';
import { Authorizer, type Challenge, type TokenCache, credentialsOf, errorDetail, parseChallenges } from './auth.js';
import { type BodyBuffers, type RegistryResponse, type TlsSettings, type TransportSettings, TransportError, readAll, send } from './http.js';
import type { RegistryOptions } from './options.js';

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
} as const;

const MANIFEST_ACCEPT = [MEDIA.dockerList, MEDIA.dockerManifest, MEDIA.ociIndex, MEDIA.ociManifest];

/** Docker Hub's API lives on registry-1.docker.io while its names say docker.io. */
export const HUB_API_HOST = 'registry-1.docker.io';

function hostOf(domain: string): string {
  return domain.startsWith('[') ? domain.slice(1, domain.indexOf(']')) : domain.split(':')[0]!;
}

function ipv4Number(ip: string): number {
  return ip.split('.').reduce((n, part) => n * 256 + Number(part), 0);
}

function inCidr(ip: string, cidr: string): boolean {
  const [base, bits] = cidr.split('/');
  if (!base || bits === undefined || isIP(base) !== 4 || isIP(ip) !== 4) return false;
  const size = Number(bits);
  if (!Number.isInteger(size) || size < 0 || size > 32) return false;
  const mask = size === 0 ? 0 : (~0 << (32 - size)) >>> 0;
  return ((ipv4Number(ip) & mask) >>> 0) === ((ipv4Number(base) & mask) >>> 0);
}

export function isLoopback(domain: string): boolean {
  const host = hostOf(domain);
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A registry error body ({"errors":[{code,message}]}) rendered like distribution's errcode: "manifest unknown: manifest unknown". */
export async function registryError(response: RegistryResponse, context: string): Promise<EngineError> {
  const raw = (await readAll(response.body, 64 * 1024).catch(() => Buffer.alloc(0))).toString('utf8');
  // HEAD answers carry no body; distribution's words for the bare statuses.
  const bare: Record<number, string> = { 401: 'unauthorized: authentication required', 403: 'denied: requested access to the resource is denied', 404: 'not found' };
  const detail = raw.trim() === '' && bare[response.status] ? bare[response.status]! : errorDetail(raw, response.status);
  const kind: ErrorKind = response.status === 404 ? 'notfound' : response.status === 401 ? 'unauthorized' : response.status === 403 ? 'forbidden' : response.status === 400 ? 'invalid' : 'unavailable';
  return new EngineError(kind, `${context}: ${detail}`);
}

/** One way to reach a registry: its /v2/ base and the TLS settings for it. */
export interface Endpoint {
  base: URL;
  tls: TlsSettings;
  /** A Hub mirror: failures move on to the next endpoint. */
  mirror: boolean;
}

/** Candidate endpoints for a registry domain, in the order docker tries them. */
export class EndpointResolver {
  constructor(private readonly options: RegistryOptions) {}

  isInsecure(domain: string): boolean {
    if (this.options.insecureLoopback && isLoopback(domain)) return true;
    const host = hostOf(domain);
    return this.options.insecureRegistries.some((entry) => entry === domain || entry === host || (entry.includes('/') && inCidr(host, entry)));
  }

  /** certs.d/<host:port>/: *.crt are CAs, <name>.cert with <name>.key a client pair (docker's layout). */
  async tlsFor(domain: string, verify: boolean): Promise<TlsSettings> {
    const dir = join(this.options.certsDir, domain);
    const entries = await readdir(dir).catch(() => [] as string[]);
    const tls: TlsSettings = { verify };
    const ca: Buffer[] = [];
    for (const name of entries.sort()) {
      if (name.endsWith('.crt')) ca.push(await readFile(join(dir, name)));
      else if (name.endsWith('.cert')) {
        const key = name.replace(/\.cert$/, '.key');
        if (!entries.includes(key)) throw new EngineError('invalid', `missing key ${key} for client certificate ${join(dir, name)}`);
        tls.cert = await readFile(join(dir, name));
        tls.key = await readFile(join(dir, key));
      }
    }
    if (ca.length) tls.ca = ca;
    return tls;
  }

  async endpoints(domain: string, withMirrors: boolean): Promise<Endpoint[]> {
    const list: Endpoint[] = [];
    if (domain === DEFAULT_DOMAIN && withMirrors) {
      for (const mirror of this.options.registryMirrors) {
        const url = new URL(mirror);
        const base = new URL('/v2/', url);
        const insecure = this.isInsecure(url.host);
        list.push({ base, tls: await this.tlsFor(url.host, !insecure), mirror: true });
      }
    }
    const host = domain === DEFAULT_DOMAIN ? HUB_API_HOST : domain;
    const insecure = this.isInsecure(domain);
    // Insecure registries: TLS without verification first, then plain HTTP (docker's order).
    list.push({ base: new URL(`https://${host}/v2/`), tls: await this.tlsFor(domain, !insecure), mirror: false });
    if (insecure) list.push({ base: new URL(`http://${host}/v2/`), tls: { verify: false }, mirror: false });
    return list;
  }
}

/** A registry reached and authenticated for one job. */
export class Session {
  private constructor(
    readonly domain: string,
    readonly endpoint: Endpoint,
    readonly authorizer: Authorizer,
    private readonly transport: TransportSettings,
    private readonly options: RegistryOptions,
    private readonly signal: AbortSignal,
  ) {}

  /**
   * Pings /v2/ on each candidate endpoint in turn; the first that answers like a registry wins. A 401
   * carries the auth challenge the session will answer.
   */
  static async open(domain: string, endpoints: Endpoint[], auth: RegistryAuth | undefined, tokens: TokenCache, options: RegistryOptions, signal: AbortSignal): Promise<Session> {
    const failures: string[] = [];
    for (const endpoint of endpoints) {
      const transport: TransportSettings = { tls: endpoint.tls, stallTimeoutMs: options.stallTimeoutMs, stallBytes: options.stallBytes };
      let response: RegistryResponse;
      try {
        response = await send({ method: 'GET', url: endpoint.base, signal, transport });
      } catch (err) {
        if (signal.aborted) throw err;
        failures.push(errorMessage(err));
        continue;
      }
      response.body.resume();
      if (response.status === 200 || response.status === 401) {
        const challenge: Challenge | undefined = response.status === 401 ? (parseChallenges(response.headers['www-authenticate'])[0] ?? { scheme: 'basic', params: {} }) : undefined;
        const realmTransport = (realm: URL): TransportSettings => (realm.host === endpoint.base.host ? transport : { ...transport, tls: { verify: true } });
        const authorizer = new Authorizer(challenge, credentialsOf(auth), tokens, realmTransport, signal);
        return new Session(domain, endpoint, authorizer, transport, options, signal);
      }
      failures.push(`GET ${endpoint.base.href} answered ${response.status}, not a registry v2 API`);
    }
    throw new EngineError('unavailable', `cannot reach registry ${domain}: ${failures.join('; ')}`);
  }

  get base(): URL {
    return this.endpoint.base;
  }

  get isMirror(): boolean {
    return this.endpoint.mirror;
  }

  /**
   * One request with the Authorization the scopes need. A 401 on a cached bearer token drops it and
   * tries once more with a fresh one, when the body can be sent again.
   */
  async request(method: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE', url: URL, scopes: string[], init: { headers?: Record<string, string | string[]>; body?: Buffer | Readable; bodyBuffers?: BodyBuffers } = {}): Promise<RegistryResponse> {
    for (let attempt = 0; ; attempt++) {
      const authorization = await this.authorizer.header(scopes);
      const headers = { ...init.headers, ...(authorization ? { Authorization: authorization } : {}) };
      const response = await send({
        method,
        url,
        headers,
        signal: this.signal,
        transport: this.transport,
        ...(init.body !== undefined ? { body: init.body } : {}),
        ...(init.bodyBuffers ? { bodyBuffers: init.bodyBuffers } : {}),
      });
      const replayable = init.body === undefined || Buffer.isBuffer(init.body);
      if (response.status === 401 && attempt === 0 && this.authorizer.scheme === 'bearer' && replayable) {
        response.body.resume();
        this.authorizer.invalidate(scopes);
        continue;
      }
      return response;
    }
  }

  /** GET /v2/ with the credentials: what docker login checks. Returns the status it answered. */
  async checkLogin(): Promise<number> {
    const response = await this.request('GET', this.base, []);
    response.body.resume();
    return response.status;
  }

  get maxManifestBytes(): number {
    return this.options.maxManifestBytes;
  }
}

/** One repository on one registry, spoken to through the v2 HTTP API. */
export class Repository {
  readonly pullScopes: string[];
  readonly pushScopes: string[];

  constructor(
    readonly session: Session,
    /** The repository path inside the registry: library/busybox, test/busybox. */
    readonly path: string,
    readonly push = false,
  ) {
    this.pullScopes = [`repository:${path}:pull`];
    this.pushScopes = [`repository:${path}:pull,push`];
  }

  get scopes(): string[] {
    return this.push ? this.pushScopes : this.pullScopes;
  }

  url(suffix: string): URL {
    return new URL(`${this.path}/${suffix}`, this.session.base);
  }

  async manifest(reference: string, context: string): Promise<{ body: Buffer; mediaType: string; digest: string | undefined }> {
    const response = await this.session.request('GET', this.url(`manifests/${reference}`), this.scopes, { headers: { Accept: MANIFEST_ACCEPT } });
    if (response.status === 401 || response.status === 403) {
      const err = await registryError(response, '');
      throw new EngineError(err.kind, err.message.replace(/^: /, ''));
    }
    if (response.status >= 500 || response.status === 429) {
      const err = await registryError(response, context);
      throw new TransportError(err.message);
    }
    if (response.status !== 200) throw await registryError(response, context);
    const declared = Number(response.headers['content-length'] ?? NaN);
    if (declared > this.session.maxManifestBytes) {
      response.body.destroy();
      throw new EngineError('invalid', `${context}: the manifest is ${declared} bytes, more than the ${this.session.maxManifestBytes} bytes a manifest may have`);
    }
    const body = await readAll(response.body, this.session.maxManifestBytes, `${context}: the manifest`).catch((err: unknown) => {
      if (err instanceof EngineError) throw err;
      throw new TransportError(`${context}: reading the manifest failed: ${errorMessage(err)}`, { cause: err });
    });
    const header = response.headers['docker-content-digest'];
    return { body, mediaType: String(response.headers['content-type'] ?? '').split(';')[0]!.trim(), digest: typeof header === 'string' ? header : undefined };
  }

  /** GET a blob, from `offset` on with a Range request; `partial` says whether the registry honoured the range. */
  async blob(digest: string, offset = 0, bodyBuffers?: BodyBuffers): Promise<{ body: Readable; partial: boolean }> {
    const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
    const response = await this.session.request('GET', this.url(`blobs/${digest}`), this.scopes, { headers, ...(bodyBuffers ? { bodyBuffers } : {}) });
    if (response.status === 206 && offset > 0) return { body: response.body, partial: true };
    if (response.status >= 500 || response.status === 429) throw new TransportError((await registryError(response, `fetching blob ${digest}`)).message);
    if (response.status !== 200) throw await registryError(response, `fetching blob ${digest}`);
    return { body: response.body, partial: false };
  }

  /** The blob's size when the registry has it, undefined when not. */
  async blobSize(digest: string): Promise<number | undefined> {
    const response = await this.session.request('HEAD', this.url(`blobs/${digest}`), this.scopes);
    response.body.resume();
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw await registryError(response, `checking blob ${digest}`);
    return Number(response.headers['content-length'] ?? 0);
  }

  /**
   * Opens an upload session; with `mount` the registry may link the blob from another repository
   * instead (201), which ends the upload there.
   */
  async startUpload(mount?: { digest: string; from: string }): Promise<{ mounted: true } | { mounted: false; location: URL }> {
    const url = this.url('blobs/uploads/');
    const scopes = [...this.scopes];
    if (mount) {
      url.searchParams.set('mount', mount.digest);
      url.searchParams.set('from', mount.from);
      scopes.push(`repository:${mount.from}:pull`);
    }
    const start = await this.session.request('POST', url, scopes);
    if (start.status === 201 && mount) {
      start.body.resume();
      return { mounted: true };
    }
    if (start.status !== 202) throw await registryError(start, `starting an upload to ${this.path}`);
    start.body.resume();
    const location = start.headers.location;
    if (!location) throw new EngineError('unavailable', `${this.session.domain}: the upload session came without a Location`);
    return { mounted: false, location: new URL(location, this.session.base) };
  }

  /** PATCH one chunk at `offset`; returns where the next request goes. */
  async patch(location: URL, body: Buffer | Readable, offset: number, length: number | undefined, digest: string): Promise<URL> {
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
    if (length !== undefined) headers['Content-Range'] = `${offset}-${offset + length - 1}`;
    const response = await this.session.request('PATCH', location, this.scopes, { headers, body });
    if (response.status !== 202) throw await registryError(response, `uploading ${digest}`);
    response.body.resume();
    const next = response.headers.location;
    return next ? new URL(next, this.session.base) : location;
  }

  /** PUT closes the session with the blob's digest. */
  async finishUpload(location: URL, digest: string, body?: Buffer | Readable): Promise<void> {
    const target = new URL(location);
    target.searchParams.set('digest', digest);
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
    const done = await this.session.request('PUT', target, this.scopes, { headers, ...(body !== undefined ? { body } : {}) });
    if (done.status !== 201) throw await registryError(done, `uploading ${digest}`);
    done.body.resume();
  }

  async cancelUpload(location: URL): Promise<void> {
    const response = await this.session.request('DELETE', location, this.scopes);
    response.body.resume();
  }

  async putManifest(tag: string, mediaType: string, body: Buffer): Promise<string | undefined> {
    const response = await this.session.request('PUT', this.url(`manifests/${tag}`), this.scopes, { headers: { 'Content-Type': mediaType }, body });
    if (response.status !== 201) throw await registryError(response, `uploading manifest ${tag}`);
    response.body.resume();
    const header = response.headers['docker-content-digest'];
    return typeof header === 'string' ? header : undefined;
  }
}
