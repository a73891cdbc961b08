import { createHash } from 'node:crypto';
import { type Readable, Writable } from 'node:stream';
import { finished } from 'node:stream/promises';
import { EngineError, type ImageService, type PullRequest, type PullResult, errorMessage, invalid, notFound } from '@tsengine/core';
import { type GunzipWorker, type Reference, familiarName, familiarString, parseNormalized, referenceString } from '@tsengine/images';
import type { TokenCache } from './auth.js';
import { downloadBlob, withRetries } from './blob.js';
import { type EndpointResolver, MEDIA, Repository, Session } from './endpoint.js';
import type { RegistryOptions } from './options.js';
import type { BlobSources } from './sources.js';
import { Progress, shortId } from './progress.js';
import { sha256 } from './verify.js';

interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  platform?: { os?: string; architecture?: string; variant?: string };
}

interface Manifest {
  schemaVersion?: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: Descriptor[];
}

const DIGEST = /^sha256:[a-f0-9]{64}$/;

const NODE_TO_GOARCH: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64' };

export function hostPlatform(): { os: string; architecture: string } {
  return { os: 'linux', architecture: NODE_TO_GOARCH[process.arch] ?? process.arch };
}

function parsePlatform(text: string | undefined): { os: string; architecture: string; variant?: string } {
  if (!text) return hostPlatform();
  const [os, architecture, variant] = text.split('/');
  if (!os || !architecture) throw invalid(`invalid platform ${JSON.stringify(text)}: expected os/arch[/variant]`);
  return variant ? { os, architecture, variant } : { os, architecture };
}

/** The reference a pull asks for: fromImage plus the separate tag query, as the Engine API combines them. */
export function pullReference(request: PullRequest): Reference {
  const ref = parseNormalized(request.image);
  if (request.tag) {
    if (DIGEST.test(request.tag)) ref.digest = request.tag;
    else if (!ref.tag && !ref.digest) ref.tag = request.tag;
  }
  if (!ref.tag && !ref.digest) ref.tag = 'latest';
  return ref;
}

export function splitName(name: string): { domain: string; path: string } {
  const slash = name.indexOf('/');
  return { domain: name.slice(0, slash), path: name.slice(slash + 1) };
}

function parseManifest(body: Buffer, what: string): Manifest {
  try {
    return JSON.parse(body.toString('utf8')) as Manifest;
  } catch (err) {
    throw new EngineError('invalid', `${what}: the registry sent a manifest that is not JSON`, { cause: err });
  }
}

function checkDescriptor(d: Descriptor | undefined, what: string): Descriptor {
  if (!d || typeof d.digest !== 'string' || !DIGEST.test(d.digest) || typeof d.size !== 'number' || d.size < 0) throw new EngineError('invalid', `${what}: bad descriptor ${JSON.stringify(d)}`);
  return d;
}

/**
 * Docker's wording when a registry refuses a pull for want of credentials. Like dockerd it is a
 * not-found error: a 401 would make the docker CLI prompt for a login and retry.
 */
function accessDenied(err: unknown, name: string): unknown {
  if (err instanceof EngineError && (err.kind === 'unauthorized' || err.kind === 'forbidden'))
    return new EngineError('notfound', `pull access denied for ${familiarName(name)}, repository does not exist or may require 'docker login': ${err.message}`, { cause: err });
  return err;
}

export class Puller {
  constructor(
    private readonly images: ImageService,
    private readonly options: RegistryOptions,
    private readonly resolver: EndpointResolver,
    private readonly tokens: TokenCache,
    private readonly sources: BlobSources,
    private readonly gunzip: GunzipWorker,
  ) {}

  async pull(request: PullRequest, out: Progress, signal: AbortSignal): Promise<PullResult> {
    const ref = pullReference(request);
    const platform = parsePlatform(request.platform);
    const { domain, path } = splitName(ref.name);
    const wanted = ref.digest ?? ref.tag!;
    const shown = familiarString(ref);
    const endpoints = await this.resolver.endpoints(domain, true);
    const mirrorFailures: string[] = [];
    // Mirrors first (Hub images only); any failure there moves on to the next endpoint.
    for (;;) {
      const endpoint = endpoints[0]!;
      const rest = endpoint.mirror ? [endpoint] : endpoints;
      let repo: Repository;
      let manifest: { manifest: Manifest; digest: string };
      try {
        const session = await Session.open(domain, rest, request.auth, this.tokens, this.options, signal);
        repo = new Repository(session, path);
        manifest = await withRetries(this.options, signal, () => this.fetchImageManifest(repo, ref, wanted, shown, platform));
      } catch (err) {
        if (endpoint.mirror && !signal.aborted) {
          mirrorFailures.push(`${endpoint.base.origin}: ${errorMessage(err)}`);
          endpoints.shift();
          continue;
        }
        const final = accessDenied(err, ref.name);
        if (mirrorFailures.length && final instanceof EngineError) throw new EngineError(final.kind, `${final.message} (mirrors tried first: ${mirrorFailures.join('; ')})`, { cause: final });
        throw final;
      }
      return this.pullImage(repo, ref, wanted, shown, manifest, out, signal);
    }
  }

  private async pullImage(repo: Repository, ref: Reference, wanted: string, shown: string, manifest: { manifest: Manifest; digest: string }, out: Progress, signal: AbortSignal): Promise<PullResult> {
    out.status(`Pulling from ${repo.path}`, wanted);

    const configDesc = checkDescriptor(manifest.manifest.config, `manifest for ${shown}`);
    const layers = (manifest.manifest.layers ?? []).map((l, i) => checkDescriptor(l, `manifest for ${shown}, layer ${i}`));
    const imageId = configDesc.digest;
    const present = await this.images.resolve(imageId).then(
      () => true,
      () => false,
    );
    const previous = await this.images.resolve(referenceString(ref)).then(
      (r) => r.id,
      () => undefined,
    );

    if (!present) {
      const config = await withRetries(this.options, signal, () => this.fetchConfig(repo, configDesc, signal));
      let diffIds: unknown;
      try {
        diffIds = (JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: unknown } }).rootfs?.diff_ids ?? [];
      } catch (err) {
        throw new EngineError('invalid', `config ${configDesc.digest} for ${shown} is not JSON`, { cause: err });
      }
      if (!Array.isArray(diffIds) || diffIds.length !== layers.length) throw new EngineError('invalid', `manifest for ${shown} lists ${layers.length} layers but its config has ${Array.isArray(diffIds) ? diffIds.length : 'no'} diff IDs`);
      // The layer store may report a download's failure as its own consequence ("stream destroyed");
      // the download's error is the one that says what went wrong.
      let blobError: unknown;
      // The image service asks for the layers it is missing (several at once where its graph driver
      // applies layers side by side). Once layer i is asked for, every layer above it is missing too (its
      // chain ID builds on i's), so while fewer than maxConcurrentDownloads are under way the next ones
      // start downloading into memory.
      const downloads = new Map<number, Readable>();
      const active = new Set<Readable>();
      const ahead = Math.max(1, this.options.maxConcurrentDownloads - 1);
      let highest = -1;
      const start = (index: number, buffer?: number): Readable => {
        const blob = this.openLayer(repo, layers[index]!, out, signal, buffer);
        blob.once('error', (err) => (blobError ??= err));
        active.add(blob);
        blob.once('close', () => {
          active.delete(blob);
          prefetch();
        });
        downloads.set(index, blob);
        highest = Math.max(highest, index);
        return blob;
      };
      const prefetch = () => {
        if (highest < 0 || signal.aborted) return;
        while (highest + 1 < layers.length && active.size < this.options.maxConcurrentDownloads) start(highest + 1, Math.floor(this.options.prefetchBytes / ahead));
      };
      const id = await this.images
        .registerImage(
          config,
          async (index) => {
            const blob = downloads.get(index) ?? start(index);
            downloads.delete(index);
            prefetch();
            return blob;
          },
          (index, state) => out.status(state === 'exists' ? 'Already exists' : 'Pull complete', shortId(layers[index]!.digest)),
        )
        .catch((err: unknown) => {
          throw blobError ?? err;
        })
        .finally(() => {
          highest = layers.length;
          for (const blob of downloads.values()) blob.destroy();
        });
      if (id !== imageId) throw new EngineError('system', `registered image ${id} does not match the config digest ${imageId}`);
      // Remember where each blob lives and which gzip blob stands for which diff ID: a later push then
      // finds them on the registry (or mounts them) instead of sending them again.
      for (const [index, layer] of layers.entries()) {
        await this.sources.add(layer.digest, repo.session.domain, repo.path);
        const diffId = (diffIds as string[])[index]!;
        if (layer.digest !== diffId && /gzip/.test(layer.mediaType ?? '')) await this.sources.setCompressed(diffId, layer.digest, layer.size);
      }
    }

    if (ref.tag) await this.images.tag(imageId, referenceString(ref));
    await this.images.tag(imageId, `${ref.name}@${manifest.digest}`);
    out.status(`Digest: ${manifest.digest}`);
    const display = ref.tag ? `${familiarName(ref.name)}:${ref.tag}` : shown;
    out.status(present && previous === imageId ? `Status: Image is up to date for ${display}` : `Status: Downloaded newer image for ${display}`);
    return { id: imageId, digest: manifest.digest };
  }

  /** The image manifest for the host platform, following a manifest list or OCI index; digest is the one to record. */
  private async fetchImageManifest(repo: Repository, ref: Reference, wanted: string, shown: string, platform: { os: string; architecture: string; variant?: string }): Promise<{ manifest: Manifest; digest: string }> {
    const notFoundMessage = `manifest for ${shown} not found`;
    const top = await repo.manifest(wanted, notFoundMessage);
    const digest = sha256(top.body);
    if (ref.digest && digest !== ref.digest) throw new EngineError('invalid', `manifest for ${shown}: the registry sent content with digest ${digest}`);
    const parsed = parseManifest(top.body, shown);
    const type = parsed.mediaType ?? top.mediaType;
    if (type === MEDIA.dockerList || type === MEDIA.ociIndex || parsed.manifests) {
      const match = (parsed.manifests ?? []).find(
        (m) => m.platform?.os === platform.os && m.platform?.architecture === platform.architecture && (!platform.variant || m.platform?.variant === platform.variant),
      );
      if (!match) throw notFound(`no matching manifest for ${platform.os}/${platform.architecture}${platform.variant ? '/' + platform.variant : ''} in the manifest list entries`);
      const child = checkDescriptor(match, `manifest list for ${shown}`);
      const inner = await repo.manifest(child.digest, `manifest ${child.digest} for ${shown}`);
      const innerDigest = sha256(inner.body);
      if (innerDigest !== child.digest) throw new EngineError('invalid', `manifest ${child.digest} for ${shown}: the registry sent content with digest ${innerDigest}`);
      return { manifest: parseManifest(inner.body, shown), digest };
    }
    if (parsed.schemaVersion !== 2 || !parsed.config) throw new EngineError('notimplemented', `manifest for ${shown} has media type ${type || 'unknown'}, which this client cannot pull`);
    return { manifest: parsed, digest };
  }

  private async fetchConfig(repo: Repository, desc: Descriptor, signal: AbortSignal): Promise<Buffer> {
    if (desc.size > this.options.maxManifestBytes) throw new EngineError('invalid', `config ${desc.digest} is ${desc.size} bytes, more than the ${this.options.maxManifestBytes} bytes accepted`);
    const chunks: Buffer[] = [];
    // A config is small (maxManifestBytes at most): hashed here, it wakes no thread.
    const hash = createHash('sha256');
    const into = new Writable({
      write: (chunk: Buffer, _encoding, done) => {
        chunks.push(chunk);
        hash.update(chunk);
        done();
      },
    });
    downloadBlob(repo, desc, { retries: 0, retryDelayMs: 0 }, signal, into, async () => 'sha256:' + hash.digest('hex'));
    await finished(into);
    return Buffer.concat(chunks);
  }

  /**
   * Streams a layer blob through size checks straight into a gunzip worker's stream (no temp file),
   * which hashes the blob on its thread as well; the layer store reads it as the layer's tar. A blob
   * that is not gzip passes through.
   */
  private openLayer(repo: Repository, desc: Descriptor, out: Progress, signal: AbortSignal, bufferBytes?: number): Readable {
    const id = shortId(desc.digest);
    out.status('Pulling fs layer', id);
    // The layer store checks the tar's digest against the config's diff ID: gzip's CRC would tell nothing more.
    const tar = this.gunzip.gunzip({ plainToo: true, checkCrc: false, hashInput: true, ...(bufferBytes !== undefined ? { aheadBytes: bufferBytes } : {}) });
    downloadBlob(repo, desc, this.options, signal, tar, () => tar.inputDigest(), {
      intoCopies: true,
      onBytes: (bytes) => out.bytes('Downloading', id, bytes, desc.size),
      onRetry: () => out.status(`Retrying in ${Math.max(1, Math.round(this.options.retryDelayMs / 1000))} second${this.options.retryDelayMs > 1000 ? 's' : ''}`, id),
      onVerified: () => {
        out.status('Verifying Checksum', id);
        out.status('Download complete', id);
      },
    });
    return tar;
  }
}
