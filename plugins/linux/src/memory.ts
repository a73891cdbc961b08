import koffi from 'koffi';
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

/**
 * A buffer whose first byte sits at a multiple of `alignment`, as O_DIRECT needs: cut from a slightly
 * larger one, so that V8 owns and frees it like any other.
 */
export function alignedBuffer(size: number, alignment = 4096): Buffer {
  const backing = Buffer.allocUnsafeSlow(size + alignment);
  const misalignment = Number((koffi.address(backing) as bigint) % BigInt(alignment));
  const start = misalignment === 0 ? 0 : alignment - misalignment;
  return backing.subarray(start, start + size);
}
