import { API_VERSION, EngineError, MIN_API_VERSION } from '@tsengine/core';

export { API_VERSION, MIN_API_VERSION };

/** Splits `/v1.45/containers/json?all=1` into the version and the unprefixed URL; no prefix gives no version. */
export function splitVersionPrefix(url: string): { version: string | undefined; url: string } {
  const match = /^\/v(\d+\.\d+)(?=[/?]|$)/.exec(url);
  if (!match) return { version: undefined, url };
  let rest = url.slice(match[0].length);
  if (rest === '' || rest.startsWith('?')) rest = '/' + rest;
  return { version: match[1], url: rest };
}

function compareVersions(a: string, b: string): number {
  const [am = 0, an = 0] = a.split('.').map(Number);
  const [bm = 0, bn = 0] = b.split('.').map(Number);
  return am - bm || an - bn;
}

/** Docker's own wording, which clients show verbatim. */
export function checkApiVersion(version: string | undefined): void {
  if (version === undefined) return;
  if (compareVersions(version, API_VERSION) > 0) {
    throw new EngineError('invalid', `client version ${version} is too new. Maximum supported API version is ${API_VERSION}`);
  }
  if (compareVersions(version, MIN_API_VERSION) < 0) {
    throw new EngineError('invalid', `client version ${version} is too old. Minimum supported API version is ${MIN_API_VERSION}, please upgrade your client to a newer version`);
  }
}
