import type { ContainerConfig } from './images.js';

/**
 * Jobs over a container's filesystem: diff, export, commit and the archive (cp) endpoints. Outputs
 * use the Docker Engine API's JSON shapes.
 */

/** GET /containers/{id}/changes item: Kind 0 modified, 1 added, 2 deleted. */
export interface ContainerChangeItem {
  Path: string;
  Kind: 0 | 1 | 2;
}

/**
 * The X-Docker-Container-Path-Stat header (base64 JSON). `mode` uses Go's os.FileMode bits
 * (directory 1<<31, symlink 1<<27, …, permissions in the low 9 bits); `mtime` is RFC 3339.
 */
export interface ContainerPathStat {
  name: string;
  size: number;
  mode: number;
  mtime: string;
  /** The link's target resolved inside the container's root (absolute), or "" for a non-link. */
  linkTarget: string;
}

/** POST /commit query and body. */
export interface ContainerCommitRequest {
  container: string;
  /** Any reference form; normalised like `docker tag`. */
  repo?: string;
  tag?: string;
  comment?: string;
  author?: string;
  /** Freeze a running container while its layer is read (default true, as in Docker). */
  pause?: boolean;
  /** Dockerfile instructions (`-c`): CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR. */
  changes?: string[];
  /** The request body: a config that replaces the container's (fields left empty are taken from it). */
  config?: ContainerConfig | null;
}

declare module '../kernel/job-map.js' {
  interface JobMap {
    /** The container layer's changes against its image, sorted by path. */
    'container.changes': { in: { id: string }; out: ContainerChangeItem[] };
    /** job.stdout: a tar of the container's whole root filesystem. */
    'container.export': { in: { id: string }; out: void };
    'container.commit': { in: ContainerCommitRequest; out: { Id: string } };
    /** HEAD /containers/{id}/archive: notfound "Could not find the file PATH in container REF". */
    'container.archive.stat': { in: { id: string; path: string }; out: ContainerPathStat };
    /** job.stdout: a tar of the path (entries named after the path's last element). */
    'container.archive.get': { in: { id: string; path: string }; out: ContainerPathStat };
    /** job.stdin: a tar extracted into the directory `path` (the last element may be a symlink to one). */
    'container.archive.put': { in: { id: string; path: string; noOverwriteDirNonDir?: boolean; copyUIDGID?: boolean }; out: void };
  }
}

export {};
