/**
 * Volume jobs. Inputs and outputs use the Docker Engine API's shapes (volume create body, Volume,
 * list and prune responses) so front ends pass them through unchanged.
 */

/** Docker's Volume object (GET /volumes/{name}). */
export interface Volume {
  /** RFC 3339, seconds. */
  CreatedAt: string;
  Driver: string;
  Labels: Record<string, string> | null;
  Mountpoint: string;
  Name: string;
  Options: Record<string, string> | null;
  Scope: 'local' | 'global';
  /** Only in system df: size in bytes (-1 when unknown) and how many containers use the volume. */
  UsageData?: { Size: number; RefCount: number };
}

/** POST /volumes/create body. An empty or absent Name creates an anonymous volume with a generated name. */
export interface VolumeCreateBody {
  Name?: string;
  Driver?: string;
  DriverOpts?: Record<string, string> | null;
  Labels?: Record<string, string> | null;
}

/** Docker's filters, name → values: list takes dangling, name, driver, label; prune takes label, label!, all. */
export type VolumeFilters = Record<string, string[]>;

declare module '../kernel/job-map.js' {
  interface JobMap {
    'volume.create': { in: VolumeCreateBody; out: Volume };
    'volume.list': { in: { filters?: VolumeFilters }; out: { Volumes: Volume[]; Warnings: string[] | null } };
    /** A missing volume is a notfound `get NAME: no such volume`. */
    'volume.inspect': { in: { name: string }; out: Volume };
    /** Refused (conflict) while a container uses it; `force` ignores a missing volume. */
    'volume.remove': { in: { name: string; force?: boolean }; out: void };
    /** Unused anonymous volumes of the local driver, or every unused one with the filter all=true. */
    'volume.prune': { in: { filters?: VolumeFilters }; out: { VolumesDeleted: string[]; SpaceReclaimed: number } };
    /** The Volumes part of GET /system/df. */
    'volume.df': { in: Record<string, never>; out: Volume[] };
  }
}
