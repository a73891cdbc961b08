import { createHash } from 'node:crypto';
import { type Readable, Transform, type TransformCallback } from 'node:stream';
import { constants, createGzip } from 'node:zlib';
import { EngineError, type ImageService, type PushRequest, type PushResult, notFound } from '@tsengine/core';
import { familiarName, parseNormalized, referenceString } from '@tsengine/images';
import type { TokenCache } from './auth.js';
import { type EndpointResolver, MEDIA, Repository, Session } from './endpoint.js';
import type { RegistryOptions } from './options.js';
import { Progress, shortId } from './progress.js';
import type { DigestWorker } from '@tsengine/images';
import { splitName } from './pull.js';
import type { BlobSources } from './sources.js';
import { VerifyingStream, sha256 } from './verify.js';

interface PushedBlob {
  digest: string;
  size: number;
  mediaType: string;
}

/** Counts and hashes what goes through (the gzip blob, whose digest is known only at its end). */
class Measure extends Transform {
  private readonly hash = createHash('sha256');
  bytes = 0;

  constructor(private readonly onBytes: (bytes: number) => void) {
    super({ highWaterMark: 1024 * 1024 });
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes(this.bytes);
    done(null, chunk);
  }

  get digest(): string {
    return 'sha256:' + this.hash.digest('hex');
  }
}

/** Cuts a stream into Buffers of `size` bytes (the last one shorter). */
async function* chunks(stream: Readable, size: number): AsyncGenerator<Buffer> {
  let pending: Buffer[] = [];
  let length = 0;
  for await (const raw of stream) {
    let chunk = raw as Buffer;
    while (chunk.length > 0) {
      const take = Math.min(size - length, chunk.length);
      pending.push(chunk.subarray(0, take));
      length += take;
      chunk = chunk.subarray(take);
      if (length === size) {
        yield Buffer.concat(pending);
        pending = [];
        length = 0;
      }
    }
  }
  if (length > 0) yield Buffer.concat(pending);
}

/**
 * Pushes an image as a Docker schema2 manifest. Layers go up gzip-compressed (zlib is deterministic for
 * the same bytes, level and version, so a layer keeps its digest across pushes) and the diff ID → gzip
 * digest pair is remembered, so that the next push asks the registry (HEAD, then mounts) before
 * compressing anything. With compressLayers false they go up as plain tars, digest = diff ID.
 */
export class Pusher {
  constructor(
    private readonly images: ImageService,
    private readonly options: RegistryOptions,
    private readonly resolver: EndpointResolver,
    private readonly tokens: TokenCache,
    private readonly sources: BlobSources,
    private readonly digests: DigestWorker,
  ) {}

  async push(request: PushRequest, out: Progress, signal: AbortSignal): Promise<PushResult> {
    const ref = parseNormalized(request.name);
    if (ref.digest) throw new EngineError('invalid', 'cannot push a digest reference');
    const tag = request.tag || ref.tag || 'latest';
    ref.tag = tag;
    const shownName = familiarName(ref.name);
    const image = await this.images.resolve(referenceString(ref)).catch((err: unknown) => {
      if (err instanceof EngineError && err.kind === 'notfound') throw notFound(`An image does not exist locally with the tag: ${shownName}`);
      throw err;
    });
    const { domain, path } = splitName(ref.name);
    out.status(`The push refers to repository [${shownName}]`);
    const session = await Session.open(domain, await this.resolver.endpoints(domain, false), request.auth, this.tokens, this.options, signal);
    const repo = new Repository(session, path, true);

    const diffIds = image.config.rootfs.diff_ids;
    if (diffIds.length !== image.chain.length) throw new EngineError('system', `image ${image.id} has ${diffIds.length} diff IDs but ${image.chain.length} layers`);
    const order = [...diffIds.keys()].reverse();
    for (const i of order) out.status('Preparing', shortId(diffIds[i]!));
    const layers: PushedBlob[] = new Array(diffIds.length);
    for (const i of order) layers[i] = await this.pushLayer(repo, diffIds[i]!, image.chain[i]!, out);

    const config = await this.images.configBytes(image.id);
    const configDigest = sha256(config);
    if ((await repo.blobSize(configDigest)) === undefined) {
      const session = await repo.startUpload();
      if (!session.mounted) await repo.finishUpload(session.location, configDigest, config);
    }

    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.dockerManifest,
        config: { mediaType: MEDIA.dockerConfig, size: config.length, digest: configDigest },
        layers: layers.map((l) => ({ mediaType: l.mediaType, size: l.size, digest: l.digest })),
      }),
    );
    const digest = sha256(manifest);
    const answered = await repo.putManifest(tag, MEDIA.dockerManifest, manifest);
    if (answered && answered !== digest) throw new EngineError('system', `registry stored the manifest as ${answered}, expected ${digest}`);
    await this.images.tag(image.id, `${ref.name}@${digest}`);
    out.status(`${tag}: digest: ${digest} size: ${manifest.length}`);
    out.line({ progressDetail: {}, aux: { Tag: tag, Digest: digest, Size: manifest.length } });
    return { digest, size: manifest.length };
  }

  /** A blob the registry has or can mount from a sibling repository; undefined when it must be uploaded. */
  private async reuse(repo: Repository, id: string, blob: { digest: string; size?: number }, out: Progress): Promise<{ size: number } | { location: URL } | undefined> {
    const domain = repo.session.domain;
    const existing = await repo.blobSize(blob.digest);
    if (existing !== undefined) {
      out.status('Layer already exists', id);
      await this.sources.add(blob.digest, domain, repo.path);
      return { size: existing };
    }
    for (const from of await this.sources.sources(blob.digest, domain, repo.path)) {
      const attempt = await repo.startUpload({ digest: blob.digest, from }).catch(() => undefined);
      if (!attempt) continue;
      if (attempt.mounted) {
        out.status(`Mounted from ${from}`, id);
        await this.sources.add(blob.digest, domain, repo.path);
        return { size: blob.size ?? (await repo.blobSize(blob.digest)) ?? 0 };
      }
      // The registry could not mount and opened an ordinary upload instead: use it.
      return { location: attempt.location };
    }
    return undefined;
  }

  /** PATCH the stream (whole, or in uploadChunkBytes pieces), then PUT with its digest; returns the digest. */
  private async upload(repo: Repository, start: URL, measure: Measure, diffId: string, compress: boolean): Promise<string> {
    let location = start;
    if (this.options.uploadChunkBytes > 0) {
      let offset = 0;
      for await (const chunk of chunks(measure, this.options.uploadChunkBytes)) {
        location = await repo.patch(location, chunk, offset, chunk.length, diffId);
        offset += chunk.length;
      }
    } else {
      location = await repo.patch(location, measure, 0, undefined, diffId);
    }
    const digest = compress ? measure.digest : diffId;
    await repo.finishUpload(location, digest);
    return digest;
  }

  private async pushLayer(repo: Repository, diffId: string, chainId: string, out: Progress): Promise<PushedBlob> {
    const id = shortId(diffId);
    const compress = this.options.compressLayers;
    const mediaType = compress ? MEDIA.dockerLayerGzip : MEDIA.dockerLayer;
    const known = compress ? await this.sources.compressed(diffId) : { digest: diffId };
    let location: URL | undefined;
    if (known) {
      const reused = await this.reuse(repo, id, known, out);
      if (reused && 'size' in reused) return { digest: known.digest, size: reused.size, mediaType };
      location = reused?.location;
    }
    if (!location) {
      const started = await repo.startUpload();
      if (started.mounted) throw new EngineError('system', 'the registry mounted a blob nobody asked it to mount');
      location = started.location;
    }
    const tar = await this.images.layerTar(chainId);
    // The size is unknown until the tar is read; the progress total stays 0 like docker's for streams.
    const verify = new VerifyingStream(this.digests, diffId, undefined);
    const measure = new Measure((bytes) => out.bytes('Pushing', id, bytes, 0));
    tar.on('error', (err) => verify.destroy(err));
    let body: Readable = tar.pipe(verify);
    if (compress) {
      const gzip = createGzip({ level: constants.Z_DEFAULT_COMPRESSION });
      verify.on('error', (err) => gzip.destroy(err));
      body = body.pipe(gzip);
    }
    body.on('error', (err) => measure.destroy(err));
    body.pipe(measure);
    const digest = await this.upload(repo, location, measure, diffId, compress).catch(async (err: unknown) => {
      // Like docker: an upload that failed half way is cancelled, not left for the registry to purge.
      await repo.cancelUpload(location!).catch(() => undefined);
      tar.destroy();
      throw err;
    });
    if (compress) await this.sources.setCompressed(diffId, digest, measure.bytes);
    await this.sources.add(digest, repo.session.domain, repo.path);
    out.status('Pushed', id);
    return { digest, size: measure.bytes, mediaType };
  }
}
