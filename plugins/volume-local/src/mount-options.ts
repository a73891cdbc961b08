import { MS } from '@tsengine/linux';

/** mount(8)-style flag words of the local driver's `o` option; every other word is filesystem data. */
const FLAGS: Record<string, [set: number, clear: number]> = {
  ro: [MS.RDONLY, 0],
  rw: [0, MS.RDONLY],
  nosuid: [MS.NOSUID, 0],
  suid: [0, MS.NOSUID],
  nodev: [MS.NODEV, 0],
  dev: [0, MS.NODEV],
  noexec: [MS.NOEXEC, 0],
  exec: [0, MS.NOEXEC],
  noatime: [MS.NOATIME, 0],
  relatime: [MS.RELATIME, 0],
  strictatime: [MS.STRICTATIME, 0],
  bind: [MS.BIND, 0],
  rbind: [MS.BIND | MS.REC, 0],
  defaults: [0, 0],
};

/** "size=64m,ro,uid=1000" → flags RDONLY and data "size=64m,uid=1000" (as Docker's mount.ParseOptions). */
export function parseMountOptions(o: string | undefined): { flags: number; data: string } {
  let flags = 0;
  const data: string[] = [];
  for (const word of (o ?? '').split(',')) {
    if (word === '') continue;
    const known = FLAGS[word];
    if (known) flags = (flags | known[0]) & ~known[1];
    else data.push(word);
  }
  return { flags, data: data.join(',') };
}
