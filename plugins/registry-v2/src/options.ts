import { invalid } from '@tsengine/core';

/** The plugin's options (the daemon config's `insecure-registries`, `registry-mirrors` and certs.d live here). */
export interface RegistryOptions {
  /** host[:port] names or IPv4 CIDRs spoken to without TLS verification, falling back to plain HTTP. */
  insecureRegistries: string[];
  /** Mirrors of Docker Hub (URLs like https://mirror.example:5000), tried in order before the Hub itself. */
  registryMirrors: string[];
  /** Per-registry TLS material: <certsDir>/<host:port>/ca.crt (any *.crt), client.cert + client.key. */
  certsDir: string;
  /** Docker treats 127.0.0.0/8 as insecure; false makes loopback registries need TLS like any other. */
  insecureLoopback: boolean;
  /** A response that delivers fewer than `stallBytes` within this window (headers or body) is aborted. */
  stallTimeoutMs: number;
  stallBytes: number;
  /** Attempts after the first for a blob download or a request that failed in transit (not for HTTP errors). */
  retries: number;
  /** First retry delay; doubles on each further attempt. */
  retryDelayMs: number;
  /** Largest manifest accepted (docker's limit is 4 MiB). */
  maxManifestBytes: number;
  /**
   * Layers downloaded at once (docker's max-concurrent-downloads): while one layer is extracted, the
   * next ones download into memory, each up to prefetchBytes / (maxConcurrentDownloads - 1), then wait.
   */
  maxConcurrentDownloads: number;
  prefetchBytes: number;
  /** Upload chunk size in bytes; 0 sends each blob in one PATCH (docker's way). */
  uploadChunkBytes: number;
  /** Push layers gzip-compressed (docker's way); false pushes plain tars. */
  compressLayers: boolean;
}

export const DEFAULT_OPTIONS: RegistryOptions = {
  insecureRegistries: [],
  registryMirrors: [],
  certsDir: '/etc/tsengine/certs.d',
  insecureLoopback: true,
  stallTimeoutMs: 30_000,
  stallBytes: 1024,
  retries: 5,
  retryDelayMs: 1000,
  maxManifestBytes: 4 * 1024 * 1024,
  maxConcurrentDownloads: 3,
  prefetchBytes: 64 * 1024 * 1024,
  uploadChunkBytes: 0,
  compressLayers: true,
};

const EXAMPLE = '{"insecureRegistries": ["host:port"], "registryMirrors": ["https://mirror:5000"], "certsDir": "/etc/tsengine/certs.d"}';

function stringList(raw: Record<string, unknown>, key: string): string[] | undefined {
  const value = raw[key];
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || !value.every((v) => typeof v === 'string')) throw invalid(`${key} must be a list of strings, like ${EXAMPLE}`);
  return value as string[];
}

function number(raw: Record<string, unknown>, key: string, min: number): number | undefined {
  const value = raw[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) throw invalid(`${key} must be a number >= ${min}`);
  return value;
}

export function parseOptions(raw: unknown): RegistryOptions {
  if (raw === undefined || raw === null) return { ...DEFAULT_OPTIONS };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw invalid(`options must be an object like ${EXAMPLE}`);
  const o = raw as Record<string, unknown>;
  const known = new Set([...Object.keys(DEFAULT_OPTIONS), 'insecure-registries', 'registry-mirrors']);
  for (const key of Object.keys(o)) if (!known.has(key)) throw invalid(`unknown option ${JSON.stringify(key)}; known: ${[...known].join(', ')}`);
  const mirrors = stringList(o, 'registryMirrors') ?? stringList(o, 'registry-mirrors') ?? [];
  for (const mirror of mirrors) {
    let url: URL;
    try {
      url = new URL(mirror);
    } catch {
      throw invalid(`invalid mirror ${JSON.stringify(mirror)}: expected a URL like https://mirror.example:5000`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') throw invalid(`invalid mirror ${JSON.stringify(mirror)}: the scheme must be http or https`);
  }
  const certsDir = o.certsDir;
  if (certsDir !== undefined && (typeof certsDir !== 'string' || certsDir === '')) throw invalid('certsDir must be a directory path');
  for (const key of ['insecureLoopback', 'compressLayers']) if (o[key] !== undefined && typeof o[key] !== 'boolean') throw invalid(`${key} must be true or false`);
  return {
    insecureRegistries: stringList(o, 'insecureRegistries') ?? stringList(o, 'insecure-registries') ?? [],
    registryMirrors: mirrors,
    certsDir: (certsDir as string | undefined) ?? DEFAULT_OPTIONS.certsDir,
    insecureLoopback: (o.insecureLoopback as boolean | undefined) ?? DEFAULT_OPTIONS.insecureLoopback,
    stallTimeoutMs: number(o, 'stallTimeoutMs', 1) ?? DEFAULT_OPTIONS.stallTimeoutMs,
    stallBytes: number(o, 'stallBytes', 0) ?? DEFAULT_OPTIONS.stallBytes,
    retries: number(o, 'retries', 0) ?? DEFAULT_OPTIONS.retries,
    retryDelayMs: number(o, 'retryDelayMs', 0) ?? DEFAULT_OPTIONS.retryDelayMs,
    maxManifestBytes: number(o, 'maxManifestBytes', 1024) ?? DEFAULT_OPTIONS.maxManifestBytes,
    maxConcurrentDownloads: number(o, 'maxConcurrentDownloads', 1) ?? DEFAULT_OPTIONS.maxConcurrentDownloads,
    prefetchBytes: number(o, 'prefetchBytes', 0) ?? DEFAULT_OPTIONS.prefetchBytes,
    uploadChunkBytes: number(o, 'uploadChunkBytes', 0) ?? DEFAULT_OPTIONS.uploadChunkBytes,
    compressLayers: (o.compressLayers as boolean | undefined) ?? DEFAULT_OPTIONS.compressLayers,
  };
}
