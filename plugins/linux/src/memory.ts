import { libc } from './libc.js';

const mallocTrim = libc.func('int malloc_trim(size_t pad)') as (pad: number) => number;

/**
 * Hands the C heap's free pages back to the kernel. glibc keeps freed memory for reuse, and after a
 * burst of large buffers (a pull's layer data, freed by V8 once it is garbage) that is tens of MB of
 * resident memory nothing uses. Returns whether any was released.
 */
export function releaseFreeHeap(): boolean {
  return mallocTrim(0) === 1;
}
