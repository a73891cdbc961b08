import type { Writable } from 'node:stream';
import { defineCapability } from './capability.js';

/** What a pull asks for: a reference in any Docker form plus an optional separate tag (the API's fromImage/tag). */
export interface PullRequest {
  image: string;
  tag?: string;
  /** os/arch[/variant]; the host's platform when omitted. */
  platform?: string;
}

export interface PullResult {
  /** Image ID: sha256 of the config. */
  id: string;
  /** Manifest digest the registry served. */
  digest: string;
}

export interface PushRequest {
  name: string;
  tag?: string;
}

export interface PushResult {
  digest: string;
  size: number;
}

/**
 * Talks to an image registry. Progress goes to `progress` as Docker's JSON lines (one object a line),
 * exactly what the Engine API streams for pull and push.
 */
export interface RegistryClient {
  pull(request: PullRequest, progress: Writable, signal: AbortSignal): Promise<PullResult>;
  push(request: PushRequest, progress: Writable, signal: AbortSignal): Promise<PushResult>;
}

/** Provided by @tsengine/registry-v2 as registry "v2". */
export const RegistryClientCapability = defineCapability<RegistryClient>('registry', { mode: 'one', preference: ['v2'] });
