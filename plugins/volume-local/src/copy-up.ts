import { spawn } from 'node:child_process';
import { lstat, readdir } from 'node:fs/promises';
import { systemError } from '@tsengine/core';
import { resolveInRoot } from '@tsengine/linux';

async function isEmptyDirectory(path: string): Promise<boolean> {
  return (await readdir(path)).length === 0;
}

/**
 * Docker's copy-up: when the volume is empty and the image has a directory at the destination, its
 * content (ownership, modes, times, symlinks as links, hard links) is copied into the volume. Returns
 * whether anything was copied. The container does not run yet, so the rootfs cannot change meanwhile.
 */
export async function copyUp(rootfs: string, destination: string, volumePath: string): Promise<boolean> {
  const source = resolveInRoot(rootfs, destination);
  const stat = await lstat(source).catch(() => undefined);
  if (!stat?.isDirectory()) return false;
  if (!(await isEmptyDirectory(volumePath))) return false;
  if (await isEmptyDirectory(source)) return false;
  // -d keeps symlinks as links (never followed, so nothing outside the rootfs is read); "src/." copies the
  // content and gives the volume's root the image folder's mode and owner, as Docker does.
  await run('cp', ['-dR', '--preserve=mode,ownership,timestamps,links', '--no-target-directory', `${source}/.`, volumePath]);
  return true;
}

function run(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', (err) => reject(systemError(`copying image content into the volume failed: ${err.message}`, err)));
    child.once('exit', (code) => {
      if (code === 0) resolve();
      else reject(systemError(`copying image content into the volume failed: ${stderr.trim() || `${command} exited with ${code}`}`));
    });
  });
}
