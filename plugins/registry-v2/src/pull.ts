import type { Readable } from 'node:stream';
import { EngineError, type ImageService, type PullRequest, type PullResult, invalid, notFound } from '@tsengine/core';
import { type Reference, familiarName, familiarString, parseNormalized, referenceString } from '@tsengine/images';
import { type EndpointOptions, MEDIA, Repository } from './endpoint.js';
import { Progress, shortId } from './progress.js';
import { VerifyingStream, sha256 } from './verify.js';

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

export class Puller {
  constructor(
    private readonly images: ImageService,
    private readonly options: EndpointOptions,
  ) {}

  async pull(request: PullRequest, out: Progress, signal: AbortSignal): Promise<PullResult> {
    const ref = pullReference(request);
    const { domain, path } = splitName(ref.name);
    const repo = new Repository(domain, path, this.options, signal);
    const wanted = ref.digest ?? ref.tag!;
    const shown = familiarString(ref);
    await repo.ping();

    const manifest = await this.fetchImageManifest(repo, ref, wanted, shown, parsePlatform(request.platform));
    out.status(`Pulling from ${path}`, wanted);

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
      const config = await this.fetchConfig(repo, configDesc);
      const diffIds = (JSON.parse(config.toString('utf8')) as { rootfs?: { diff_ids?: string[] } }).rootfs?.diff_ids ?? [];
      if (diffIds.length !== layers.length) throw new EngineError('invalid', `manifest for ${shown} lists ${layers.length} layers but its config has ${diffIds.length} diff IDs`);
      const id = await this.images.registerImage(
        config,
        async (index) => this.openLayer(repo, layers[index]!, out),
        (index, state) => out.status(state === 'exists' ? 'Already exists' : 'Pull complete', shortId(layers[index]!.digest)),
      );
      if (id !== imageId) throw new EngineError('system', `registered image ${id} does not match the config digest ${imageId}`);
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

  private async fetchConfig(repo: Repository, desc: Descriptor): Promise<Buffer> {
    const body = await repo.blob(desc.digest);
    const verify = new VerifyingStream(desc.digest, desc.size);
    body.on('error', (err) => verify.destroy(err));
    body.pipe(verify);
    const chunks: Buffer[] = [];
    for await (const chunk of verify) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks);
  }

  /** Streams a layer blob through digest and size checks straight into the layer store (no temp file). */
  private async openLayer(repo: Repository, desc: Descriptor, out: Progress): Promise<Readable> {
    const id = shortId(desc.digest);
    out.status('Pulling fs layer', id);
    const body = await repo.blob(desc.digest);
    const verify = new VerifyingStream(desc.digest, desc.size, (bytes) => out.bytes('Downloading', id, bytes, desc.size));
    body.on('error', (err) => verify.destroy(err));
    verify.on('end', () => {
      out.status('Verifying Checksum', id);
      out.status('Download complete', id);
    });
    return body.pipe(verify);
  }
}
