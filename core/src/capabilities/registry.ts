import type { Writable } from 'node:stream';
import { defineCapability } from './capability.js';

/**
 * Credentials for one registry, as the docker CLI sends them in X-Registry-Auth (base64 JSON) and in
 * POST /auth: a username and password, an identity token (an OAuth2 refresh token) or a ready
 * registry token. `auth` is config.json's base64 "user:password" form.
 */
export interface RegistryAuth {
  username?: string;
  password?: string;
  auth?: string;
  identitytoken?: string;
  registrytoken?: string;
  serveraddress?: string;
}

/** What a pull asks for: a reference in any Docker form plus an optional separate tag (the API's fromImage/tag). */
export interface PullRequest {
  image: string;
  tag?: string;
  /** os/arch[/variant]; the host's platform when omitted. */
  platform?: string;
  auth?: RegistryAuth;
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
  auth?: RegistryAuth;
}

export interface PushResult {
  digest: string;
  size: number;
}

export interface LoginResult {
  /** "Login Succeeded", what docker login prints. */
  Status: string;
  /** An OAuth2 refresh token when the registry's token server handed one out; the CLI stores it instead of the password. */
  IdentityToken?: string;
}

/**
 * Talks to an image registry. Progress goes to `progress` as Docker's JSON lines (one object a line),
 * exactly what the Engine API streams for pull and push.
 */
export interface RegistryClient {
  pull(request: PullRequest, progress: Writable, signal: AbortSignal): Promise<PullResult>;
  push(request: PushRequest, progress: Writable, signal: AbortSignal): Promise<PushResult>;
  /** Checks credentials against a registry (docker login). */
  login(auth: RegistryAuth, signal: AbortSignal): Promise<LoginResult>;
}

/** Provided by @tsengine/registry-v2 as registry "v2". */
export const RegistryClientCapability = defineCapability<RegistryClient>('registry', { mode: 'one', preference: ['v2'] });
