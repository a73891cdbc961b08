import { EngineError, type RegistryAuth } from '@tsengine/core';
import { type TransportSettings, readAll, send } from './http.js';

export interface Challenge {
  scheme: 'basic' | 'bearer';
  params: Record<string, string>;
}

/** WWW-Authenticate: `Bearer realm="…",service="…",scope="…"` or `Basic realm="…"`; several challenges may share one header. */
export function parseChallenges(header: string | string[] | undefined): Challenge[] {
  const values = header === undefined ? [] : Array.isArray(header) ? header : [header];
  const found: Array<{ scheme: string; params: Record<string, string> }> = [];
  for (const text of values) {
    let i = 0;
    let current: { scheme: string; params: Record<string, string> } | undefined;
    const token = (): string => {
      const start = i;
      while (i < text.length && /[\w.~+/!#$%&'*^`|-]/.test(text[i]!)) i++;
      return text.slice(start, i);
    };
    while (i < text.length) {
      while (i < text.length && /[\s,]/.test(text[i]!)) i++;
      const name = token();
      if (!name) {
        i++;
        continue;
      }
      while (text[i] === ' ') i++;
      if (text[i] === '=' && current) {
        i++;
        while (text[i] === ' ') i++;
        let value = '';
        if (text[i] === '"') {
          i++;
          while (i < text.length && text[i] !== '"') {
            if (text[i] === '\\') i++;
            value += text[i] ?? '';
            i++;
          }
          i++;
        } else {
          const start = i;
          while (i < text.length && !/[\s,]/.test(text[i]!)) i++;
          value = text.slice(start, i);
        }
        current.params[name.toLowerCase()] = value;
      } else {
        current = { scheme: name.toLowerCase(), params: {} };
        found.push(current);
      }
    }
  }
  return found.filter((c): c is Challenge => c.scheme === 'basic' || c.scheme === 'bearer');
}

export interface Credentials {
  username?: string;
  password?: string;
  identityToken?: string;
  registryToken?: string;
}

/** X-Registry-Auth / config.json credentials in one shape; `auth` (base64 user:password) fills in a missing username. */
export function credentialsOf(auth: RegistryAuth | undefined): Credentials | undefined {
  if (!auth) return undefined;
  let { username, password } = auth;
  if (!username && auth.auth) {
    const decoded = Buffer.from(auth.auth, 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    if (colon > 0) {
      username = decoded.slice(0, colon);
      password = decoded.slice(colon + 1);
    }
  }
  const creds: Credentials = {};
  if (username) creds.username = username;
  if (password) creds.password = password;
  if (auth.identitytoken) creds.identityToken = auth.identitytoken;
  if (auth.registrytoken) creds.registryToken = auth.registrytoken;
  return Object.keys(creds).length ? creds : undefined;
}

function basic(creds: Credentials): string {
  return 'Basic ' + Buffer.from(`${creds.username ?? ''}:${creds.password ?? ''}`).toString('base64');
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

const MIN_TOKEN_LIFETIME_S = 60;
/** Refresh a little before expiry so that a token does not lapse mid-request. */
const EARLY_REFRESH_MS = 5_000;

/** Bearer tokens by realm, service, scopes and credentials; shared by every job of one client. */
export class TokenCache {
  private readonly tokens = new Map<string, CachedToken>();

  constructor(private readonly now: () => number = Date.now) {}

  get(key: string): string | undefined {
    const hit = this.tokens.get(key);
    if (!hit) return undefined;
    if (hit.expiresAt - EARLY_REFRESH_MS <= this.now()) {
      this.tokens.delete(key);
      return undefined;
    }
    return hit.token;
  }

  set(key: string, token: string, lifetimeS: number): void {
    this.tokens.set(key, { token, expiresAt: this.now() + Math.max(lifetimeS, MIN_TOKEN_LIFETIME_S) * 1000 });
  }

  delete(key: string): void {
    this.tokens.delete(key);
  }
}

export interface TokenAnswer {
  token: string;
  expiresIn: number;
  refreshToken?: string;
}

function errorDetail(raw: string, status: number): string {
  try {
    const parsed = JSON.parse(raw) as { errors?: Array<{ code?: string; message?: string }>; details?: string; error?: string; error_description?: string };
    if (parsed.errors?.length) return parsed.errors.map((e) => `${(e.code ?? 'unknown').toLowerCase().replace(/_/g, ' ')}: ${e.message ?? ''}`).join(', ');
    if (parsed.error) return parsed.error_description ? `${parsed.error}: ${parsed.error_description}` : parsed.error;
    if (parsed.details) return parsed.details;
  } catch {
    // Not JSON: fall through to the text itself.
  }
  return raw.trim() || `HTTP ${status}`;
}

/**
 * Answers a registry's auth challenge for a set of scopes: Basic sends the credentials on every request;
 * Bearer asks the challenge's realm for a token (GET with Basic credentials, or POST with an identity
 * token as OAuth2 refresh token) and caches it until it expires.
 */
export class Authorizer {
  constructor(
    private readonly challenge: Challenge | undefined,
    private readonly creds: Credentials | undefined,
    private readonly cache: TokenCache,
    private readonly transport: (realm: URL) => TransportSettings,
    private readonly signal: AbortSignal,
  ) {}

  get scheme(): 'basic' | 'bearer' | undefined {
    return this.challenge?.scheme;
  }

  private key(scopes: string[]): string {
    const p = this.challenge?.params ?? {};
    const who = this.creds ? `${this.creds.username ?? ''}\0${this.creds.password ?? ''}\0${this.creds.identityToken ?? ''}` : '';
    return [p.realm, p.service, [...scopes].sort().join(' '), who].join('\n');
  }

  /** The Authorization header for these scopes, or undefined when the registry asked for none. */
  async header(scopes: string[]): Promise<string | undefined> {
    if (!this.challenge) return undefined;
    if (this.challenge.scheme === 'basic') return this.creds?.username ? basic(this.creds) : undefined;
    if (this.creds?.registryToken) return `Bearer ${this.creds.registryToken}`;
    const key = this.key(scopes);
    const cached = this.cache.get(key);
    if (cached) return `Bearer ${cached}`;
    const answer = await this.fetchToken(scopes, false);
    this.cache.set(key, answer.token, answer.expiresIn);
    return `Bearer ${answer.token}`;
  }

  /** Drops the cached token (the registry refused it), so that the next header() fetches a new one. */
  invalidate(scopes: string[]): void {
    this.cache.delete(this.key(scopes));
  }

  /** A token fetch with the credentials; `offline` also asks for a refresh token (docker login). */
  async fetchToken(scopes: string[], offline: boolean): Promise<TokenAnswer> {
    const params = this.challenge?.params ?? {};
    if (!params.realm) throw new EngineError('unavailable', 'the registry asked for a bearer token without naming a realm');
    let realm: URL;
    try {
      realm = new URL(params.realm);
    } catch {
      throw new EngineError('unavailable', `the registry named an invalid token realm ${JSON.stringify(params.realm)}`);
    }
    const transport = this.transport(realm);
    let response;
    if (this.creds?.identityToken) {
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: this.creds.identityToken, client_id: 'tsengine', access_type: 'offline' });
      if (params.service) form.set('service', params.service);
      if (scopes.length) form.set('scope', scopes.join(' '));
      response = await send({ method: 'POST', url: realm, headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, body: Buffer.from(form.toString()), signal: this.signal, transport });
    } else {
      const url = new URL(realm);
      if (params.service) url.searchParams.set('service', params.service);
      for (const scope of scopes) url.searchParams.append('scope', scope);
      if (this.creds?.username) url.searchParams.set('account', this.creds.username);
      if (offline) {
        url.searchParams.set('offline_token', 'true');
        url.searchParams.set('client_id', 'tsengine');
      }
      const headers: Record<string, string> = this.creds?.username ? { Authorization: basic(this.creds) } : {};
      response = await send({ method: 'GET', url, headers, signal: this.signal, transport });
    }
    const body = await readAll(response.body, 1024 * 1024, `token from ${realm.origin}`);
    if (response.status !== 200) {
      const kind = response.status === 401 ? 'unauthorized' : response.status === 403 ? 'forbidden' : 'unavailable';
      throw new EngineError(kind, `getting a token from ${realm.href} failed with status ${response.status}: ${errorDetail(body.toString('utf8'), response.status)}`);
    }
    let parsed: { token?: string; access_token?: string; expires_in?: number; refresh_token?: string };
    try {
      parsed = JSON.parse(body.toString('utf8')) as typeof parsed;
    } catch {
      throw new EngineError('unavailable', `the token server ${realm.href} answered something that is not JSON`);
    }
    const token = parsed.token ?? parsed.access_token;
    if (typeof token !== 'string' || token === '') throw new EngineError('unavailable', `the token server ${realm.href} answered without a token`);
    const answer: TokenAnswer = { token, expiresIn: typeof parsed.expires_in === 'number' ? parsed.expires_in : MIN_TOKEN_LIFETIME_S };
    if (parsed.refresh_token) answer.refreshToken = parsed.refresh_token;
    return answer;
  }
}

export { basic as basicHeader, errorDetail };
