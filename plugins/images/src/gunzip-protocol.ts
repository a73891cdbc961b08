/** Messages between GunzipWorker (main thread) and its thread (gunzip-thread.ts). */

/** Size of each decompressed chunk the thread hands over. */
export const GUNZIP_OUTPUT_BYTES = 1024 * 1024;

import type { RingSlice } from './shared-ring.js';

export type ToGunzipThread =
  /**
   * `plainToo`: input that does not start as gzip is passed on as it is (a registry blob of either kind).
   * `hashInput`: the input is hashed too, as it arrives; 'input-digest' asks for that digest.
   */
  | { op: 'open'; id: number; ring: SharedArrayBuffer; plainToo: boolean; checkCrc: boolean; hashInput: boolean }
  | { op: 'input'; id: number; slices: RingSlice[] }
  | { op: 'input-digest'; id: number }
  | { op: 'end'; id: number }
  | { op: 'credit'; id: number; chunks: number }
  | { op: 'close'; id: number };

export type FromGunzipThread =
  | { op: 'release'; id: number; bytes: number }
  /** `released`: ring bytes freed since the last message (saves a release message of its own). */
  | { op: 'output'; id: number; data: ArrayBuffer; length: number; released: number }
  | { op: 'input-digest'; id: number; digest: string }
  | { op: 'done'; id: number; digest: string }
  | { op: 'error'; id: number; message: string };
