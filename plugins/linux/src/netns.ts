import { closeSync, openSync, unlinkSync, writeFileSync } from 'node:fs';
import { MNT, MS, mount, umount } from './mount.js';
import { CLONE, setns, unshare } from './namespaces.js';
import { setInterfaceUp } from './netif.js';

/**
 * Creates a network namespace that outlives every process in it by bind-mounting it on `path`
 * (as `ip netns add` does), with its loopback up. Only the main thread moves, briefly and
 * synchronously, so nothing else of the daemon runs in the new namespace.
 */
export function createNetworkNamespace(path: string): void {
  writeFileSync(path, '', { flag: 'wx', mode: 0o444 });
  const hostNs = openSync('/proc/thread-self/ns/net', 'r');
  try {
    unshare(CLONE.NEWNET);
    try {
      mount('/proc/thread-self/ns/net', path, null, MS.BIND);
      setInterfaceUp('lo');
    } finally {
      setns(hostNs, CLONE.NEWNET);
    }
  } catch (err) {
    try {
      umount(path, MNT.DETACH);
    } catch {
      // not mounted
    }
    unlinkSync(path);
    throw err;
  } finally {
    closeSync(hostNs);
  }
}

/** Unmounts and deletes a namespace file made by createNetworkNamespace; idempotent. */
export function removeNetworkNamespace(path: string): void {
  try {
    umount(path, MNT.DETACH);
  } catch {
    // not mounted (already removed, or a stale file after a reboot)
  }
  try {
    unlinkSync(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
}
