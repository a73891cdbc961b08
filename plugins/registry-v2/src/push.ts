import { EngineError, type ImageService, type PushRequest, type PushResult, notFound } from '@tsengine/core';
import { familiarName, parseNormalized, referenceString } from '@tsengine/images';
import { type EndpointOptions, MEDIA, Repository } from './endpoint.js';
import { Progress, shortId } from './progress.js';
import { splitName } from './pull.js';
import { VerifyingStream, sha256 } from './verify.js';

interface PushedBlob {
  digest: string;
  size: number;
}

/**
 * Pushes an image as a Docker schema2 manifest. Layers go up uncompressed
 * (application/vnd.docker.image.rootfs.diff.tar), so a blob's digest is its diff ID and a registry that
 * has it already is known before any byte is read.
 */
export class Pusher {
  constructor(
    private readonly images: ImageService,
    private readonly options: EndpointOptions,
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
    const repo = new Repository(domain, path, this.options, signal);
    out.status(`The push refers to repository [${shownName}]`);
    await repo.ping();

    const diffIds = image.config.rootfs.diff_ids;
    if (diffIds.length !== image.chain.length) throw new EngineError('system', `image ${image.id} has ${diffIds.length} diff IDs but ${image.chain.length} layers`);
    const order = [...diffIds.keys()].reverse();
    for (const i of order) out.status('Preparing', shortId(diffIds[i]!));
    const layers: PushedBlob[] = new Array(diffIds.length);
    for (const i of order) layers[i] = await this.pushLayer(repo, diffIds[i]!, image.chain[i]!, out);

    const config = await this.images.configBytes(image.id);
    const configDigest = sha256(config);
    if ((await repo.blobSize(configDigest)) === undefined) await repo.upload(configDigest, config);

    const manifest = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.dockerManifest,
        config: { mediaType: MEDIA.dockerConfig, size: config.length, digest: configDigest },
        layers: layers.map((l) => ({ mediaType: MEDIA.dockerLayer, size: l.size, digest: l.digest })),
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

  private async pushLayer(repo: Repository, diffId: string, chainId: string, out: Progress): Promise<PushedBlob> {
    const id = shortId(diffId);
    const existing = await repo.blobSize(diffId);
    if (existing !== undefined) {
      out.status('Layer already exists', id);
      return { digest: diffId, size: existing };
    }
    const tar = await this.images.layerTar(chainId);
    // The size is unknown until the tar is read; the progress total stays 0 like docker's for streams.
    const verify = new VerifyingStream(diffId, undefined, (bytes) => out.bytes('Pushing', id, bytes, 0));
    tar.on('error', (err) => verify.destroy(err));
    await repo.upload(diffId, tar.pipe(verify));
    out.status('Pushed', id);
    return { digest: diffId, size: verify.bytes };
  }
}
