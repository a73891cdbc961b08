import { readFileSync } from 'node:fs';
import { invalid } from '@tsengine/core';
import { CAPABILITIES, lastCapability } from '@tsengine/linux';

/** Docker's default set for a non-privileged container (CapEff 00000000a80425fb for root). */
export const DEFAULT_CAPABILITIES = ['CHOWN', 'DAC_OVERRIDE', 'FSETID', 'FOWNER', 'MKNOD', 'NET_RAW', 'SETGID', 'SETUID', 'SETFCAP', 'SETPCAP', 'NET_BIND_SERVICE', 'SYS_CHROOT', 'KILL', 'AUDIT_WRITE'];

function hostLastCapability(): number {
  return lastCapability((p) => readFileSync(p, 'utf8'));
}

/** The daemon's own bounding set: a container can never hold more (this host may lack some). */
function daemonCapabilities(): bigint {
  const bounding = /^CapBnd:\s+([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1];
  const known = (1n << BigInt(hostLastCapability() + 1)) - 1n;
  return bounding ? BigInt(`0x${bounding}`) & known : known;
}

/** Every capability the daemon can give (privileged containers), as a bit mask. */
export function allCapabilities(): bigint {
  return daemonCapabilities();
}

/** "net_admin", "CAP_NET_ADMIN" → "NET_ADMIN"; "all" → "ALL". */
function normalise(name: string): string {
  const upper = name.trim().toUpperCase();
  if (upper === 'ALL') return upper;
  const bare = upper.startsWith('CAP_') ? upper.slice(4) : upper;
  if (CAPABILITIES[bare] === undefined) throw invalid(`invalid CapAdd: unknown capability: "CAP_${bare}"`);
  return bare;
}

/** Docker's rule: ALL in cap-add → everything minus drops; ALL in cap-drop → only the adds; else defaults − drops + adds. */
export function containerCapabilities(capAdd: string[], capDrop: string[]): bigint {
  const adds = capAdd.map(normalise);
  const drops = capDrop.map(normalise);
  const available = daemonCapabilities();
  let names: string[];
  if (adds.includes('ALL')) names = Object.keys(CAPABILITIES).filter((c) => (available >> BigInt(CAPABILITIES[c]!)) & 1n && !drops.includes(c));
  else if (drops.includes('ALL')) names = adds;
  else names = [...DEFAULT_CAPABILITIES.filter((c) => !drops.includes(c)), ...adds];
  let mask = 0n;
  for (const name of names) {
    const bit = BigInt(CAPABILITIES[name]!);
    if (!((available >> bit) & 1n)) throw invalid(`capability CAP_${name} is not available to the daemon`);
    mask |= 1n << bit;
  }
  return mask;
}
