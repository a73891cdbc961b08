import type { Writable } from 'node:stream';
import type { ImageService, PullRequest, PullResult, PushRequest, PushResult, RegistryClient } from '@tsengine/core';
import type { EndpointOptions } from './endpoint.js';
import { Progress } from './progress.js';
import { Puller } from './pull.js';
import { Pusher } from './push.js';

/** Registry HTTP API v2 client over the image service. */
export class RegistryV2Client implements RegistryClient {
  private readonly puller: Puller;
  private readonly pusher: Pusher;

  constructor(images: ImageService, options: EndpointOptions) {
    this.puller = new Puller(images, options);
    this.pusher = new Pusher(images, options);
  }

  pull(request: PullRequest, progress: Writable, signal: AbortSignal): Promise<PullResult> {
    return this.puller.pull(request, new Progress(progress), signal);
  }

  push(request: PushRequest, progress: Writable, signal: AbortSignal): Promise<PushResult> {
    return this.pusher.push(request, new Progress(progress), signal);
  }
}
