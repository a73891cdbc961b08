import type { HostConfig } from '../contracts/containers.js';
import { defineCapability } from './capability.js';
import type { MountSpec } from './execdriver.js';

/** One entry of container inspect's Mounts (Docker's MountPoint). */
export interface MountPoint {
  Type: 'bind' | 'volume' | 'tmpfs';
  Name?: string;
  Source: string;
  Destination: string;
  Driver?: string;
  Mode: string;
  RW: boolean;
  Propagation: string;
}

export interface MountRequest {
  containerId: string;
  /** Read for Binds, Mounts, Tmpfs and VolumesFrom. */
  hostConfig: HostConfig;
  /**
   * VolumesFrom entries resolved by the containers plugin: full container ID plus optional ":ro"/":rw".
   */
  volumesFrom: string[];
  /** The image's Config.Volumes (anonymous volumes unless a mount covers the path). */
  imageVolumes: Record<string, unknown>;
}

/**
 * Volumes and mounts as the containers plugin sees them: one provider, "volumes". The provider owns
 * named and anonymous volumes, their drivers, and the per-container list of mount points.
 */
export interface VolumeService {
  /** At create: validates every mount (Docker's messages), creates missing volumes, records the mount points. */
  prepare(request: MountRequest): Promise<MountPoint[]>;
  /**
   * Before each start, with the container's rootfs mounted: the exec driver's mounts, in order.
   * An empty new volume is first filled from the rootfs content at its destination (Docker's copy-up).
   */
  mounts(containerId: string, rootfs: string): Promise<MountSpec[]>;
  /** After the container's exit: whatever the driver mounted for it is released. */
  release(containerId: string): Promise<void>;
  /** When the container is removed; its anonymous volumes go too when `removeAnonymous` (rm -v). */
  forget(containerId: string, removeAnonymous: boolean): Promise<void>;
  /** What inspect shows (empty when none). */
  mountPoints(containerId: string): MountPoint[];
}

export const VolumeServiceCapability = defineCapability<VolumeService>('volumes', { mode: 'one', preference: ['local'] });
