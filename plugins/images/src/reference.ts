import { invalid } from '@tsengine/core';

/**
 * Docker's image references (distribution/reference): [domain/]path[:tag][@digest], normalised so
 * that `busybox` is docker.io/library/busybox:latest. Messages match Docker's.
 */
export interface Reference {
  /** Full name: docker.io/library/busybox, localhost:5000/x. */
  name: string;
  tag?: string;
  digest?: string;
}

export const DEFAULT_DOMAIN = 'docker.io';
const LEGACY_DOMAIN = 'index.docker.io';
const OFFICIAL_PREFIX = 'library/';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN = /^(?:(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*|\[[a-fA-F0-9:]+\])(?::[0-9]+)?$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*:[0-9a-fA-F]{32,}$/;
const FULL_ID = /^[a-f0-9]{64}$/;
const NAME_TOTAL_MAX = 255;

export const INVALID_FORMAT = 'invalid reference format';

/** Parses and normalises a reference; does not add a default tag. */
export function parseNormalized(input: string): Reference {
  if (FULL_ID.test(input)) throw invalid(`invalid repository name (${input}), cannot specify 64-byte hexadecimal strings`);
  const [domain, remainder] = splitDomain(input);
  const tagSep = remainder.indexOf(':');
  const atSep = remainder.indexOf('@');
  const remoteName = tagSep > -1 && (atSep === -1 || tagSep < atSep) ? remainder.slice(0, tagSep) : atSep > -1 ? remainder.slice(0, atSep) : remainder;
  if (remoteName.toLowerCase() !== remoteName) throw invalid(`${INVALID_FORMAT}: repository name (${remoteName}) must be lowercase`);
  return parse(`${domain}/${remainder}`);
}

/** Like parseNormalized, and adds :latest when neither tag nor digest is given. */
export function parseTagged(input: string): Reference {
  const ref = parseNormalized(input);
  if (!ref.tag && !ref.digest) ref.tag = 'latest';
  return ref;
}

function splitDomain(input: string): [string, string] {
  const i = input.indexOf('/');
  let domain: string;
  let remainder: string;
  const first = i === -1 ? '' : input.slice(0, i);
  if (i === -1 || (!first.includes('.') && !first.includes(':') && first !== 'localhost' && first.toLowerCase() === first)) {
    domain = DEFAULT_DOMAIN;
    remainder = input;
  } else {
    domain = first;
    remainder = input.slice(i + 1);
  }
  if (domain === LEGACY_DOMAIN) domain = DEFAULT_DOMAIN;
  if (domain === DEFAULT_DOMAIN && !remainder.includes('/')) remainder = OFFICIAL_PREFIX + remainder;
  return [domain, remainder];
}

function parse(s: string): Reference {
  let rest = s;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at > -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) throw invalid(INVALID_FORMAT);
    if (digest.startsWith('sha256:') && !/^sha256:[a-f0-9]{64}$/.test(digest)) throw invalid(`${INVALID_FORMAT}: invalid checksum digest length`);
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) throw invalid(INVALID_FORMAT);
  }
  const slash = rest.indexOf('/');
  if (slash === -1) throw invalid(INVALID_FORMAT);
  const domain = rest.slice(0, slash);
  const path = rest.slice(slash + 1);
  if (!DOMAIN.test(domain)) throw invalid(INVALID_FORMAT);
  if (!path.split('/').every((c) => COMPONENT.test(c))) throw invalid(INVALID_FORMAT);
  if (rest.length > NAME_TOTAL_MAX) throw invalid(`${INVALID_FORMAT}: repository name must not be more than ${NAME_TOTAL_MAX} characters`);
  const ref: Reference = { name: rest };
  if (tag !== undefined) ref.tag = tag;
  if (digest !== undefined) ref.digest = digest;
  return ref;
}

/** The full string: docker.io/library/busybox:latest, or name@digest. */
export function referenceString(ref: Reference): string {
  return ref.name + (ref.tag ? `:${ref.tag}` : '') + (ref.digest ? `@${ref.digest}` : '');
}

/** Docker's familiar name: busybox, user/repo, localhost:5000/x. */
export function familiarName(name: string): string {
  if (!name.startsWith(DEFAULT_DOMAIN + '/')) return name;
  const path = name.slice(DEFAULT_DOMAIN.length + 1);
  return path.startsWith(OFFICIAL_PREFIX) && !path.slice(OFFICIAL_PREFIX.length).includes('/') ? path.slice(OFFICIAL_PREFIX.length) : path;
}

export function familiarString(ref: Reference): string {
  return familiarName(ref.name) + (ref.tag ? `:${ref.tag}` : '') + (ref.digest ? `@${ref.digest}` : '');
}

/** Parses a stored full reference string back (no normalisation needed). */
export function parseStored(full: string): Reference {
  return parse(full);
}

/** Docker's path.Match-style glob on a familiar or full name, for the `reference` filter. */
export function matchReference(pattern: string, ref: Reference): boolean {
  const re = globToRegExp(pattern);
  const fam = familiarName(ref.name);
  const candidates = [fam, ref.name];
  if (ref.tag) candidates.push(`${fam}:${ref.tag}`, `${ref.name}:${ref.tag}`);
  if (ref.digest) candidates.push(`${fam}@${ref.digest}`, `${ref.name}@${ref.digest}`);
  return candidates.some((c) => re.test(c));
}

function globToRegExp(pattern: string): RegExp {
  let out = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]!;
    if (c === '*') out += '[^/]*';
    else if (c === '?') out += '[^/]';
    else if (c === '[') {
      const end = pattern.indexOf(']', i);
      if (end === -1) out += '\\[';
      else {
        out += '[' + pattern.slice(i + 1, end).replace(/^\^/, '^').replace(/\\/g, '\\\\') + ']';
        i = end;
      }
    } else out += c.replace(/[.+^${}()|\\]/g, '\\$&');
  }
  return new RegExp(`^${out}$`);
}
