import { readFile } from 'node:fs/promises';

/** Undoes the octal escapes (\040 for a space) that /proc/self/mountinfo uses in paths. */
function unescapeMountPath(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_m, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Mount points at or below `dir` in this process's mount namespace, deepest first (the order to unmount them). */
export async function mountsUnder(dir: string): Promise<string[]> {
  const text = await readFile('/proc/self/mountinfo', 'utf8');
  const prefix = dir.replace(/\/+$/, '');
  const found = new Set<string>();
  for (const line of text.split('\n')) {
    const field = line.split(' ')[4];
    if (!field) continue;
    const point = unescapeMountPath(field);
    if (point === prefix || point.startsWith(`${prefix}/`)) found.add(point);
  }
  return [...found].sort((a, b) => b.length - a.length);
}
