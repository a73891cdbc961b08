import { join } from 'node:path';
import type { Writable } from 'node:stream';
import type { ImageService, LoginResult, PullRequest, PullResult, PushRequest, PushResult, RegistryAuth, RegistryClient } from '@tsengine/core';
import { DigestWorker, GunzipWorker } from '@tsengine/images';
import { TokenCache } from './auth.js';
import { EndpointResolver } from './endpoint.js';
import { login } from './login.js';
import type { RegistryOptions } from './options.js';
import { Progress } from './progress.js';
import { Puller } from './pull.js';
import { Pusher } from './push.js';
import { BlobSources } from './sources.js';

/** Registry HTTP API v2 client over the image service; bearer tokens are shared by all its jobs. */
export class RegistryV2Client implements RegistryClient {
  private readonly puller: Puller;
  private readonly pusher: Pusher;
  private readonly resolver: EndpointResolver;
  private readonly tokens = new TokenCache();
  /** The diff IDs of layers pushed are checked off the main thread; closed with the plugin. */
  readonly digests = new DigestWorker();
  /** Layer blobs are hashed, inflated and their diff IDs hashed off the main thread as they download; closed with the plugin. */
  readonly gunzip = new GunzipWorker();

  constructor(
    images: ImageService,
    private readonly options: RegistryOptions,
    /** Where the plugin keeps its own state (which repositories hold which blobs). */
    stateDir: string,
  ) {
    this.resolver = new EndpointResolver(options);
    const sources = new BlobSources(join(stateDir));
    this.puller = new Puller(images, options, this.resolver, this.tokens, sources, this.gunzip);
    this.pusher = new Pusher(images, options, this.resolver, this.tokens, sources, this.digests);
  }

  pull(request: PullRequest, progress: Writable, signal: AbortSignal): Promise<PullResult> {
    return this.puller.pull(request, new Progress(progress), signal);
  }

  push(request: PushRequest, progress: Writable, signal: AbortSignal): Promise<PushResult> {
    return this.pusher.push(request, new Progress(progress), signal);
  }

  login(auth: RegistryAuth, signal: AbortSignal): Promise<LoginResult> {
    return login(auth, this.resolver, this.tokens, this.options, signal);
  }
}
