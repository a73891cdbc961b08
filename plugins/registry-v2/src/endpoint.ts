import type { Readable } from 'node:stream';
import { EngineError, type ErrorKind } from '@tsengine/core';
import { DEFAULT_DOMAIN } from '@tsengine/images';
import { type RegistryResponse, readAll, send } from './http.js';

export const MEDIA = {
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
} as const;

const MANIFEST_ACCEPT = [MEDIA.dockerList, MEDIA.dockerManifest, MEDIA.ociIndex, MEDIA.ociManifest];

export interface EndpointOptions {
  /** Hosts (host or host:port) spoken to over plain HTTP besides 127.0.0.0/8, ::1 and localhost. */
  insecureRegistries: string[];
}

/** Docker Hub's API lives on registry-1.docker.io while its names say docker.io. */
function apiHost(domain: string): string {
  return domain === DEFAULT_DOMAIN ? 'registry-1.docker.io' : domain;
}

function isLoopback(domain: string): boolean {
  const host = domain.startsWith('[') ? domain.slice(1, domain.indexOf(']')) : domain.split(':')[0]!;
  return host === 'localhost' || host === '::1' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

/** A registry error body ({"errors":[{code,message}]}) rendered like distribution's errcode: "manifest unknown: manifest unknown". */
export async function registryError(response: RegistryResponse, context: string): Promise<EngineError> {
  const raw = (await readAll(response.body).catch(() => Buffer.alloc(0))).toString('utf8');
  let detail = raw.trim() || `HTTP ${response.status}`;
  try {
    const parsed = JSON.parse(raw) as { errors?: Array<{ code?: string; message?: string }> };
    if (parsed.errors?.length) detail = parsed.errors.map((e) => `${(e.code ?? 'unknown').toLowerCase().replace(/_/g, ' ')}: ${e.message ?? ''}`).join(', ');
  } catch {
    // Not JSON: the raw text is the best detail there is.
  }
  const kind: ErrorKind = response.status === 404 ? 'notfound' : response.status === 401 ? 'unauthorized' : response.status === 403 ? 'forbidden' : response.status === 400 ? 'invalid' : 'unavailable';
  return new EngineError(kind, `${context}: ${detail}`);
}

/** One repository on one registry, spoken to through the v2 HTTP API. */
export class Repository {
  readonly base: URL;

  constructor(
    readonly domain: string,
    /** The repository path inside the registry: library/busybox, test/busybox. */
    readonly path: string,
    options: EndpointOptions,
    private readonly signal: AbortSignal,
  ) {
    const plain = isLoopback(domain) || options.insecureRegistries.includes(domain);
    this.base = new URL(`${plain ? 'http' : 'https'}://${apiHost(domain)}/v2/`);
  }

  private url(suffix: string): URL {
    return new URL(`${this.path}/${suffix}`, this.base);
  }

  async ping(): Promise<void> {
    const response = await send({ method: 'GET', url: this.base, signal: this.signal });
    response.body.resume();
    if (response.status === 401) throw new EngineError('unauthorized', `${this.domain}: the registry requires authentication, which this client does not support yet`);
    if (response.status !== 200) throw new EngineError('unavailable', `${this.domain} does not speak the registry v2 API: GET /v2/ answered ${response.status}`);
  }

  async manifest(reference: string, context: string): Promise<{ body: Buffer; mediaType: string; digest: string | undefined }> {
    const response = await send({ method: 'GET', url: this.url(`manifests/${reference}`), headers: { Accept: MANIFEST_ACCEPT }, signal: this.signal });
    if (response.status !== 200) throw await registryError(response, context);
    const body = await readAll(response.body);
    const header = response.headers['docker-content-digest'];
    return { body, mediaType: String(response.headers['content-type'] ?? '').split(';')[0]!.trim(), digest: typeof header === 'string' ? header : undefined };
  }

  async blob(digest: string): Promise<Readable> {
    const response = await send({ method: 'GET', url: this.url(`blobs/${digest}`), signal: this.signal });
    if (response.status !== 200) throw await registryError(response, `fetching blob ${digest}`);
    return response.body;
  }

  /** The blob's size when the registry has it, undefined when not. */
  async blobSize(digest: string): Promise<number | undefined> {
    const response = await send({ method: 'HEAD', url: this.url(`blobs/${digest}`), signal: this.signal });
    response.body.resume();
    if (response.status === 404) return undefined;
    if (response.status !== 200) throw await registryError(response, `checking blob ${digest}`);
    return Number(response.headers['content-length'] ?? 0);
  }

  /** Monolithic upload: POST to open a session, then PUT the whole blob with its digest. */
  async upload(digest: string, body: Buffer | Readable): Promise<void> {
    const start = await send({ method: 'POST', url: this.url('blobs/uploads/'), signal: this.signal });
    start.body.resume();
    if (start.status !== 202) throw await registryError(start, `starting upload of ${digest}`);
    const location = start.headers.location;
    if (!location) throw new EngineError('unavailable', `${this.domain}: upload session for ${digest} came without a Location`);
    const target = new URL(location, this.base);
    target.searchParams.set('digest', digest);
    const headers: Record<string, string> = { 'Content-Type': 'application/octet-stream' };
    const done = await send({ method: 'PUT', url: target, headers, body, signal: this.signal });
    if (done.status !== 201) throw await registryError(done, `uploading ${digest}`);
    done.body.resume();
  }

  async putManifest(tag: string, mediaType: string, body: Buffer): Promise<string | undefined> {
    const response = await send({ method: 'PUT', url: this.url(`manifests/${tag}`), headers: { 'Content-Type': mediaType }, body, signal: this.signal });
    if (response.status !== 201) throw await registryError(response, `uploading manifest ${tag}`);
    response.body.resume();
    const header = response.headers['docker-content-digest'];
    return typeof header === 'string' ? header : undefined;
  }
}
