import type { Readable } from 'node:stream';
import { defineCapability } from '../capabilities/capability.js';

/**
 * Image jobs. Outputs use the Docker Engine API's JSON shapes (ImageSummary, ImageInspect, history
 * items, delete responses) so front ends pass them through unchanged.
 */

/** The OCI/Docker container config inside an image config (`config` and `container_config`). */
export interface ContainerConfig {
  Hostname?: string;
  Domainname?: string;
  User?: string;
  AttachStdin?: boolean;
  AttachStdout?: boolean;
  AttachStderr?: boolean;
  ExposedPorts?: Record<string, Record<string, never>> | null;
  Tty?: boolean;
  OpenStdin?: boolean;
  StdinOnce?: boolean;
  Env?: string[] | null;
  Cmd?: string[] | null;
  Healthcheck?: unknown;
  ArgsEscaped?: boolean;
  Image?: string;
  Volumes?: Record<string, Record<string, never>> | null;
  WorkingDir?: string;
  Entrypoint?: string[] | null;
  OnBuild?: string[] | null;
  Labels?: Record<string, string> | null;
  StopSignal?: string;
  Shell?: string[];
  [extra: string]: unknown;
}

export interface HistoryEntry {
  created?: string;
  created_by?: string;
  author?: string;
  comment?: string;
  empty_layer?: boolean;
}

/** An image config as stored (application/vnd.docker.container.image.v1+json / OCI image config). */
export interface ImageConfig {
  architecture: string;
  os: string;
  variant?: string;
  created?: string;
  author?: string;
  comment?: string;
  docker_version?: string;
  container?: string;
  container_config?: ContainerConfig;
  config?: ContainerConfig;
  parent?: string;
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: HistoryEntry[];
  [extra: string]: unknown;
}

/** GET /images/json item. */
export interface ImageSummary {
  Containers: number;
  Created: number;
  Id: string;
  Labels: Record<string, string> | null;
  ParentId: string;
  RepoDigests: string[] | null;
  RepoTags: string[] | null;
  SharedSize: number;
  Size: number;
  VirtualSize: number;
}

/** GET /images/{name}/json. */
export interface ImageInspect {
  Id: string;
  RepoTags: string[];
  RepoDigests: string[];
  Parent: string;
  Comment: string;
  Created: string;
  Container: string;
  ContainerConfig: ContainerConfig;
  DockerVersion: string;
  Author: string;
  Config: ContainerConfig;
  Architecture: string;
  Variant?: string;
  Os: string;
  Size: number;
  VirtualSize: number;
  GraphDriver: { Data: Record<string, string>; Name: string };
  RootFS: { Type: string; Layers: string[] };
  Metadata: { LastTagTime: string };
}

/** GET /images/{name}/history item. */
export interface ImageHistoryItem {
  Comment: string;
  Created: number;
  CreatedBy: string;
  Id: string;
  Size: number;
  Tags: string[] | null;
}

/** DELETE /images/{name} item: exactly one of the two keys. */
export type ImageDeleteItem = { Untagged: string } | { Deleted: string };

/** Docker's filter map as the API sends it: {"dangling":{"true":true}} or {"dangling":["true"]}. */
export type ImageFilters = Record<string, string[] | Record<string, boolean>>;

export interface ImageDiskUsage {
  LayersSize: number;
  Images: ImageSummary[];
}

/** What a container (or anything else) holding an image reports, for rmi and df. */
export interface ImageUser {
  kind: string;
  id: string;
  /** A running user makes the image impossible to delete even with force. */
  running: boolean;
}

/** Reports who uses an image; the container plugin registers one through ImageService.addUsageChecker. */
export type ImageUsageChecker = (imageId: string) => Promise<ImageUser[]>;

/** An image resolved for creating a container: its config and the graph driver id of its top layer. */
export interface ResolvedImage {
  id: string;
  config: ImageConfig;
  /** Graph driver id of the top layer (the rootfs parent of a container), null for an empty image. */
  topLayer: string | null;
  /** Chain IDs, bottom first. */
  chain: string[];
  repoTags: string[];
}

/** One new layer for createImage: a tar stream (plain or gzip), or null for an empty (metadata-only) step. */
export interface NewImageSpec {
  /** Image ID or reference the new image builds on; omitted for a base image. */
  parent?: string;
  layer: Readable | null;
  /** Container config of the new image (merged over nothing; callers pass the full config). */
  config: ContainerConfig;
  history: HistoryEntry;
  /** Fields copied into the top-level config (author, comment, container, container_config …). */
  meta?: Partial<Pick<ImageConfig, 'author' | 'comment' | 'container' | 'container_config' | 'architecture' | 'os' | 'variant' | 'created'>>;
  /** References to point at the new image. */
  tags?: string[];
}

/** The images plugin's service for other plugins (containers, registry, build). */
export interface ImageService {
  resolve(nameOrId: string): Promise<ResolvedImage>;
  /** Keeps the layer chain ending at `chainId` (and its parents) alive for `holder` (e.g. a container ID). */
  retainLayer(chainId: string, holder: string): Promise<void>;
  releaseLayers(holder: string): Promise<void>;
  /** Builds an image from a parent and one new layer (commit, build steps). Returns the image ID. */
  createImage(spec: NewImageSpec): Promise<string>;
  /**
   * Registers an image from its exact config bytes and one tar per diff_id (pull): layers that exist are
   * reused without calling openLayer. Returns the image ID (sha256 of the config bytes).
   */
  registerImage(config: Buffer, openLayer: (index: number, diffId: string) => Promise<Readable>, onLayer?: (index: number, state: 'exists' | 'applied') => void): Promise<string>;
  /** Points a reference (name:tag or name@digest) at an image. */
  tag(imageId: string, reference: string): Promise<void>;
  /** Exact config bytes, for push. */
  configBytes(imageId: string): Promise<Buffer>;
  /** A layer's tar (uncompressed, matching its diff_id), for push. */
  layerTar(chainId: string): Promise<Readable>;
  addUsageChecker(checker: ImageUsageChecker): void;
}

/** Provided by @tsengine/images as images "local"; other plugins list "images" in `requires`. */
export const ImageServiceCapability = defineCapability<ImageService>('images', { mode: 'one', preference: ['local'] });

declare module '../kernel/job-map.js' {
  interface JobMap {
    'image.list': { in: { all?: boolean; digests?: boolean; filters?: ImageFilters }; out: ImageSummary[] };
    'image.inspect': { in: { name: string }; out: ImageInspect };
    'image.history': { in: { name: string }; out: ImageHistoryItem[] };
    /** repo is any reference form (normalised here); tag defaults to latest. */
    'image.tag': { in: { source: string; repo: string; tag?: string }; out: void };
    'image.remove': { in: { name: string; force?: boolean; noprune?: boolean }; out: ImageDeleteItem[] };
    /** job.stdin: a rootfs tar (plain or gzip). Output: "sha256:<id>". */
    'image.import': { in: { repo?: string; tag?: string; changes?: string[]; message?: string; platform?: string }; out: { id: string } };
    /** job.stdin: a docker-archive or OCI layout tar; job.stdout: Docker's JSON-lines progress. */
    'image.load': { in: { quiet?: boolean }; out: { loaded: string[] } };
    /** job.stdout: a docker-archive tar (with OCI index.json/oci-layout) of the named images. */
    'image.save': { in: { names: string[] }; out: void };
    'image.prune': { in: { all?: boolean; filters?: ImageFilters }; out: { ImagesDeleted: ImageDeleteItem[] | null; SpaceReclaimed: number } };
    /** The Images/LayersSize part of GET /system/df. */
    'image.df': { in: Record<string, never>; out: ImageDiskUsage };
    /** For container create: resolves a name or ID to its config and top layer. */
    'image.resolve': { in: { name: string }; out: ResolvedImage };
  }
}
