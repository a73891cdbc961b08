/** Human-readable sizes and durations the way the docker CLI prints them (go-units). */
import { humanDuration } from '@tsengine/core';

export { humanDuration };

const DECIMAL = ['B', 'kB', 'MB', 'GB', 'TB', 'PB', 'EB', 'ZB', 'YB'];
const BINARY = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB', 'EiB', 'ZiB', 'YiB'];

function scaled(size: number, base: number, units: string[], precision: number): string {
  let value = size;
  let i = 0;
  while (value >= base && i < units.length - 1) {
    value /= base;
    i++;
  }
  // Go's %.<precision>g: significant digits, trailing zeros dropped.
  return `${Number(value.toPrecision(precision))}${units[i]}`;
}

/** Decimal units, 3 significant digits by default as in image and container sizes (1.24MB, 4.86kB); prune totals use 4. */
export function humanSize(bytes: number, precision = 3): string {
  return scaled(bytes, 1000, DECIMAL, precision);
}

/** Binary units with 4 significant digits, as in `docker info`'s Total Memory: 23.54GiB. */
export function bytesSize(bytes: number): string {
  return scaled(bytes, 1024, BINARY, 4);
}

/** "2 hours ago" for a time in the past (a Date, unix seconds, or an ISO string). */
export function timeAgo(time: Date | number | string, now: number = Date.now()): string {
  const at = time instanceof Date ? time.getTime() : typeof time === 'number' ? time * 1000 : Date.parse(time);
  return `${humanDuration(Math.max(0, now - at))} ago`;
}
