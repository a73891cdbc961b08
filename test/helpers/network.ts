import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

/** Routes of this machine as [destination, mask] pairs, in host byte order as /proc/net/route prints them. */
function routes(): Array<[number, number]> {
  const swap = (hex: string) => Number.parseInt(hex.match(/../g)!.reverse().join(''), 16) >>> 0;
  return readFileSync('/proc/net/route', 'utf8')
    .split('\n')
    .slice(1)
    .map((line) => line.trim().split(/\s+/))
    .filter((f) => f.length >= 8 && Number.parseInt(f[7]!, 16) !== 0)
    .map((f) => [swap(f[1]!), swap(f[7]!)]);
}

/**
 * `count` consecutive /24 prefixes ("10.x.y") in 10.0.0.0/8 that no route on this machine covers,
 * so a test daemon's bridges clash with nothing (docker0 included). `count` is a power of two.
 */
export function freeSubnets(count: number): string[] {
  const taken = routes();
  const mask = (0xffffff00 << Math.log2(count)) >>> 0;
  for (let attempt = 0; attempt < 200; attempt++) {
    const x = 100 + Math.floor(Math.random() * 150);
    const y = Math.floor(Math.random() * (256 / count)) * count;
    const base = ((10 << 24) | (x << 16) | (y << 8)) >>> 0;
    if (!taken.some(([dest, m]) => ((dest & Math.min(m, mask)) >>> 0) === ((base & Math.min(m, mask)) >>> 0))) {
      return Array.from({ length: count }, (_, i) => `10.${x}.${y + i}`);
    }
  }
  throw new Error(`no free block of ${count} /24 networks in 10.0.0.0/8`);
}

export function linkExists(name: string): boolean {
  try {
    execFileSync('ip', ['link', 'show', name], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Waits until the link is gone: the kernel deletes a veth pair after the engine has moved on. */
export async function linkGone(name: string, timeoutMs = 10_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (linkExists(name)) {
    if (Date.now() > deadline) return false;
    await sleep(20);
  }
  return true;
}
