import { STATUS_CODES } from 'node:http';
import { EngineError, type LoginResult, type RegistryAuth } from '@tsengine/core';
import { DEFAULT_DOMAIN } from '@tsengine/images';
import type { TokenCache } from './auth.js';
import { type EndpointResolver, Session } from './endpoint.js';
import type { RegistryOptions } from './options.js';

const HUB_ADDRESSES = new Set(['', 'docker.io', 'index.docker.io', 'registry-1.docker.io']);

/** POST /auth's serveraddress ("https://index.docker.io/v1/", "127.0.0.1:5000", "http://host:5000/") as a registry domain. */
export function loginDomain(serveraddress: string | undefined): string {
  let address = (serveraddress ?? '').trim();
  address = address.replace(/^[a-z]+:\/\//i, '').replace(/\/.*$/, '');
  return HUB_ADDRESSES.has(address.toLowerCase()) ? DEFAULT_DOMAIN : address;
}

/** docker login: the registry's challenge answered with the credentials, against /v2/ itself or the token realm. */
export async function login(auth: RegistryAuth, resolver: EndpointResolver, tokens: TokenCache, options: RegistryOptions, signal: AbortSignal): Promise<LoginResult> {
  const domain = loginDomain(auth.serveraddress);
  const session = await Session.open(domain, await resolver.endpoints(domain, false), auth, tokens, options, signal);
  const base = session.base.href;
  if (session.authorizer.scheme === 'bearer') {
    try {
      const answer = await session.authorizer.fetchToken([], true);
      return { Status: 'Login Succeeded', IdentityToken: answer.refreshToken ?? '' };
    } catch (err) {
      if (err instanceof EngineError && (err.kind === 'unauthorized' || err.kind === 'forbidden')) throw new EngineError('unauthorized', `Get "${base}": unauthorized: ${err.message}`, { cause: err });
      throw err;
    }
  }
  if (session.authorizer.scheme === 'basic') {
    const status = await session.checkLogin();
    if (status !== 200) throw new EngineError('unauthorized', `login attempt to ${base} failed with status: ${status} ${STATUS_CODES[status] ?? ''}`.trimEnd());
  }
  return { Status: 'Login Succeeded', IdentityToken: '' };
}
