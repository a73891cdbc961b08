import type { Readable } from 'node:stream';
import { defineCapability } from './capability.js';

/** A change in a layer relative to its parent, with Docker's kinds (0 modified, 1 added, 2 deleted). */
export interface Change {
  path: string;
  kind: ChangeKind;
}

export enum ChangeKind {
  Modified = 0,
  Added = 1,
  Deleted = 2,
}

/**
 * Docker's graphdriver.Driver: layers identified by id, each optionally on a parent. get/put are
 * reference counted: a layer mounted twice is unmounted once both callers have put it.
 */
export interface GraphDriver {
  readonly name: string;
  /**
   * True when a layer's directory holds only its own diff and applyDiff needs no view of the layers
   * below (overlay), so several layers of one image may be applied at once; false when a layer
   * starts as a copy of its parent (vfs).
   */
  readonly independentDiffs: boolean;
  /** Name/value pairs for `docker info`'s Storage Driver section. */
  status(): Promise<Array<[string, string]>>;
  /** A read-only image layer. */
  create(id: string, parent: string | null): Promise<void>;
  /** A writable container layer. */
  createReadWrite(id: string, parent: string | null): Promise<void>;
  remove(id: string): Promise<void>;
  /** Mounts (or reuses the mount of) the layer's full filesystem and returns its path. */
  get(id: string): Promise<string>;
  put(id: string): Promise<void>;
  exists(id: string): Promise<boolean>;
  /** Releases everything the driver holds (mounts) at shutdown. */
  cleanup(): Promise<void>;
  /** A tar stream of the layer's changes against its parent, with OCI whiteouts. */
  diff(id: string, parent: string | null): Promise<Readable>;
  changes(id: string, parent: string | null): Promise<Change[]>;
  /** Extracts a layer tar (plain or gzip) into the layer; returns the bytes of content applied. */
  applyDiff(id: string, parent: string | null, diff: Readable): Promise<number>;
  diffSize(id: string, parent: string | null): Promise<number>;
}

export const GraphDriverCapability = defineCapability<GraphDriver>('graphdriver', { mode: 'one', preference: ['overlay', 'vfs'] });
