import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeBusyboxRootfs } from './busybox.js';
import { type ArchiveOptions, type BuiltImage, imageArchive, tarDirectory } from '@tsengine/test';

export {
  type ArchiveOptions,
  type BuiltImage,
  type FileSpec,
  type LayerSpec,
  digestOf,
  imageArchive,
  imageConfigFor,
  layerTar,
  makeImageArchive,
  readTar,
  tarDirectory,
} from '@tsengine/test';

/** A busybox root filesystem (Debian's busybox-static) as a deterministic tar, for `docker import`. */
export async function busyboxRootfsTar(): Promise<Buffer> {
  const dir = await mkdtemp(join(tmpdir(), 'tsengine-busybox-'));
  try {
    makeBusyboxRootfs(dir);
    return await tarDirectory(dir);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The busybox image as a docker-archive (one layer, Cmd ["sh"]) for `docker load`. */
export async function busyboxArchive(options: ArchiveOptions = {}): Promise<{ archive: Buffer; image: BuiltImage }> {
  return imageArchive([await busyboxRootfsTar()], { repoTags: ['busybox:latest'], config: { Cmd: ['sh'], Env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'] }, ...options });
}
