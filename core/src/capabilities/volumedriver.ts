import { defineCapability } from './capability.js';

/**
 * A volume driver stores volumes' data (Docker's volume.Driver). The volume service above it keeps
 * names, labels, creation times and which containers use what; a driver only creates, mounts and
 * removes. Names reaching a driver are already validated ([a-zA-Z0-9][a-zA-Z0-9_.-]+).
 */
export interface VolumeDriver {
  readonly name: string;
  /**
   * Creates the volume with the driver's options (`docker volume create -o`); unknown or inconsistent
   * options are refused (invalid) with nothing left behind. Creating an existing volume is a no-op.
   */
  create(name: string, options: Record<string, string>): Promise<void>;
  /** Deletes the volume and its data; the service only calls this for volumes nobody uses. */
  remove(name: string): Promise<void>;
  /** Names of the volumes the driver holds (also those created under an earlier daemon). */
  list(): Promise<string[]>;
  /** Where the data is on the host when mounted (inspect's Mountpoint). */
  path(name: string): string;
  /** The options the volume was created with (null when none). */
  options(name: string): Record<string, string> | null;
  /**
   * Makes the data available for `ref` (a container ID) and returns the host directory to bind into
   * the container. Mounts are counted by ref: the driver mounts on the first and unmounts on the last.
   */
  mount(name: string, ref: string): Promise<string>;
  unmount(name: string, ref: string): Promise<void>;
  /** Bytes used by the volume's data, or -1 when the driver cannot tell (e.g. a remote filesystem). */
  size(name: string): Promise<number>;
}

export const VolumeDriverCapability = defineCapability<VolumeDriver>('volumedriver', { mode: 'many', preference: ['local'] });
