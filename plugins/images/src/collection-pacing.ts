import { setFlagsFromString } from 'node:v8';

/** How far the heap may grow past what survived the last full collection while layer data streams. */
const GROWING_PERCENT_WHILE_STREAMING = 300;

/**
 * Process-wide, as the V8 setting it stands for: how many layer transfers (pulls, loads) are under way.
 * A count per image service would let one service's end undo another's start.
 */
let streaming = 0;

/**
 * Runs `work` (which streams layer data) with V8 putting off full collections: its old-generation
 * limit becomes four times what survived the last full collection instead of a factor of its own.
 * V8 counts every new ArrayBuffer toward that limit, and the daemon keeps little (15 MB), so a pull's
 * 1 MiB chunks reached it every 15-20 MB: a dozen full collections per cold pull of a 200 MB image,
 * whose marking threads took a quarter of the pull's CPU. Once no transfer is left, V8's own factor
 * applies again from the next collection on; the last chunks wait longer to be freed (the memory
 * reducer collects them once the daemon is idle).
 */
export async function withCollectionsPutOff<T>(work: () => Promise<T>): Promise<T> {
  if (streaming++ === 0) setFlagsFromString(`--heap-growing-percent=${GROWING_PERCENT_WHILE_STREAMING}`);
  try {
    return await work();
  } finally {
    if (--streaming === 0) setFlagsFromString('--heap-growing-percent=0');
  }
}
