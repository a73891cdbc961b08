import { readFile, writeFile } from 'node:fs/promises';

export interface HostsEntry {
  address: string;
  names: string[];
}

const LOCALHOST = [
  '127.0.0.1\tlocalhost',
  '::1\tlocalhost ip6-localhost ip6-loopback',
  'fe00::0\tip6-localnet',
  'ff00::0\tip6-mcastprefix',
  'ff02::1\tip6-allnodes',
  'ff02::2\tip6-allrouters',
];

/** Docker's /etc/hosts: localhost lines, --add-host entries, legacy links, the container itself, then its peers. */
export function hostsContent(own: HostsEntry[], extra: HostsEntry[], links: HostsEntry[], peers: HostsEntry[]): string {
  const lines = [...LOCALHOST];
  for (const e of [...extra, ...links, ...own]) lines.push(`${e.address}\t${e.names.join(' ')}`);
  if (peers.length) {
    lines.push('# containers on the same user-defined networks (kept current by tsengine)');
    for (const e of peers) lines.push(`${e.address}\t${e.names.join(' ')}`);
  }
  return lines.join('\n') + '\n';
}

/** "name:ip" (ExtraHosts, --add-host); "host-gateway" becomes the default gateway when there is one. */
export function parseExtraHost(spec: string, gateway: string | undefined): HostsEntry {
  const at = spec.indexOf(':');
  const name = at > 0 ? spec.slice(0, at) : '';
  let address = at > 0 ? spec.slice(at + 1) : '';
  if (address.startsWith('[') && address.endsWith(']')) address = address.slice(1, -1);
  if (address === 'host-gateway') address = gateway ?? '127.0.0.1';
  if (!name || !address) throw new Error(`invalid IP address in add-host: "${spec}"`);
  return { address, names: [name] };
}

const DEFAULT_NAMESERVERS = ['8.8.8.8', '8.8.4.4'];

/**
 * Docker's resolv.conf: the host's, without loopback nameservers (unreachable from another
 * namespace; Google's when none is left), with --dns, --dns-search and --dns-option replacing
 * their parts.
 */
export async function resolvConfContent(opts: { dns: string[]; search: string[]; options: string[]; keepLoopback: boolean }): Promise<string> {
  let host = '';
  try {
    host = await readFile('/etc/resolv.conf', 'utf8');
  } catch {
    // no resolv.conf on the host
  }
  const lines = host.split('\n').map((l) => l.trim());
  let nameservers = lines.filter((l) => /^nameserver\s/.test(l)).map((l) => l.split(/\s+/)[1] ?? '');
  let search = lines.filter((l) => /^(search|domain)\s/.test(l)).flatMap((l) => l.split(/\s+/).slice(1));
  let options = lines.filter((l) => /^options\s/.test(l)).flatMap((l) => l.split(/\s+/).slice(1));
  if (!opts.keepLoopback) nameservers = nameservers.filter((n) => n && !n.startsWith('127.') && n !== '::1');
  if (opts.dns.length) nameservers = opts.dns;
  if (!nameservers.length && !opts.keepLoopback) nameservers = DEFAULT_NAMESERVERS;
  if (opts.search.length) search = opts.search.filter((s) => s !== '.');
  if (opts.options.length) options = opts.options;
  const out = nameservers.map((n) => `nameserver ${n}`);
  if (search.length) out.push(`search ${search.join(' ')}`);
  if (options.length) out.push(`options ${options.join(' ')}`);
  return out.join('\n') + '\n';
}

/** Rewrites a file in place: the container sees it through a bind mount of this very inode. */
export async function rewriteInPlace(path: string, content: string): Promise<void> {
  await writeFile(path, content, { flag: 'w' });
}
