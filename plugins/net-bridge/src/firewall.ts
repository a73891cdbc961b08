import { runCommand } from './command.js';

/** What the rules of one bridge network depend on. */
export interface BridgeRules {
  bridge: string;
  subnet: string;
  internal: boolean;
  /** Containers on this bridge may talk to each other (Docker's icc). */
  icc: boolean;
  masquerade: boolean;
}

/** User chains and rule lines ("-A CHAIN …", as iptables-save prints them) of one table. */
interface TableState {
  chains: Set<string>;
  rules: string[];
}

/** Lines of an iptables-restore script, per table. */
type Script = Record<'filter' | 'nat', string[]>;

/** Our bridges' names start with this (tse0, tse-<network id>), apart from docker0 and br-<id>. */
export const BRIDGE_PREFIX = 'tse';

/**
 * iptables rules in chains of our own, per bridge: an ingress chain (packets forwarded into the
 * bridge), an egress chain (packets leaving it), and a nat chain for masquerade. Ingress jumps go
 * to the top of FORWARD and egress jumps to its end, so every network's ingress rules (isolation)
 * are decided before any network's egress accepts, whatever order the networks were made in.
 * Everything is created idempotently (a chain that exists is flushed and refilled) and removed
 * with the network, so no rule of ours outlives it. A network's set-up and tear-down each read the
 * tables once (iptables-save) and apply one `iptables-restore --noflush` script, an atomic
 * transaction that touches nothing but our chains and jumps, instead of spawning iptables per rule.
 */
export class Firewall {
  constructor(private readonly iptables = 'iptables') {}

  ingressChain(bridge: string): string {
    return `TSE-I-${bridge}`;
  }

  egressChain(bridge: string): string {
    return `TSE-E-${bridge}`;
  }

  natChain(bridge: string): string {
    return `TSE-N-${bridge}`;
  }

  async setUp(rules: BridgeRules): Promise<void> {
    const { bridge } = rules;
    const ingress = this.ingressChain(bridge);
    const egress = this.egressChain(bridge);
    const nat = this.natChain(bridge);
    await this.apply((tables) => {
      const filter = tables.get('filter') ?? emptyTable();
      const script: Script = {
        // In --noflush mode declaring a chain creates it, or flushes it when it exists.
        filter: [
          `:${ingress} - [0:0]`,
          `:${egress} - [0:0]`,
          `-A ${ingress} -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT`,
          `-A ${ingress} -i ${bridge} -j ${rules.icc ? 'ACCEPT' : 'DROP'}`,
          // Nothing is forwarded into the bridge from elsewhere (other networks, the outside) but replies.
          `-A ${ingress} -j DROP`,
          `-A ${egress} -j ${rules.internal ? 'DROP' : 'ACCEPT'}`,
          ...jumpTo(filter, 'FORWARD', `-o ${bridge} -j ${ingress}`, 'top'),
          ...jumpTo(filter, 'FORWARD', `-i ${bridge} ! -o ${bridge} -j ${egress}`, 'end'),
        ],
        nat: [],
      };
      const natTable = tables.get('nat') ?? emptyTable();
      if (rules.masquerade && !rules.internal) {
        script.nat.push(`:${nat} - [0:0]`, `-A ${nat} ! -o ${bridge} -j MASQUERADE`, ...jumpTo(natTable, 'POSTROUTING', `-s ${rules.subnet} -j ${nat}`, 'top'));
      } else {
        script.nat.push(...removal(natTable, nat, 'POSTROUTING'));
      }
      return script;
    });
  }

  async tearDown(bridge: string): Promise<void> {
    await this.apply((tables) => {
      const filter = tables.get('filter') ?? emptyTable();
      return {
        filter: [...removal(filter, this.ingressChain(bridge), 'FORWARD'), ...removal(filter, this.egressChain(bridge), 'FORWARD')],
        nat: removal(tables.get('nat') ?? emptyTable(), this.natChain(bridge), 'POSTROUTING'),
      };
    });
  }

  /** With icc off: lets `from` reach `to` on these ports through the bridge (Docker's --link). */
  async link(bridge: string, from: string, to: string, ports: Array<{ port: number; protocol: 'tcp' | 'udp' }>, add: boolean): Promise<void> {
    const chain = this.ingressChain(bridge);
    for (const { port, protocol } of ports) {
      const forward = ['-i', bridge, '-o', bridge, '-s', from, '-d', to, '-p', protocol, '--dport', String(port), '-j', 'ACCEPT'];
      const back = ['-i', bridge, '-o', bridge, '-s', to, '-d', from, '-p', protocol, '--sport', String(port), '-j', 'ACCEPT'];
      for (const rule of [forward, back]) {
        if (add) {
          if (!(await this.exists('filter', chain, rule))) await this.ipt('filter', ['-I', chain, '2', ...rule]);
        } else {
          while (await this.exists('filter', chain, rule)) await this.ipt('filter', ['-D', chain, ...rule]);
        }
      }
    }
  }

  /** Rule lines of our chains (for tests and diagnostics). */
  async listChains(): Promise<string[]> {
    const out: string[] = [];
    for (const table of ['filter', 'nat']) {
      const rules = await runCommand(this.iptables, ['-w', '-t', table, '-S']);
      out.push(...rules.split('\n').filter((l) => l.includes('TSE-')));
    }
    return out;
  }

  /**
   * Reads the tables, builds a script from them and applies it. A script is all or nothing, so one
   * that lost a race (a rule it deletes vanished in between) changes nothing and is rebuilt once.
   */
  private async apply(build: (tables: Map<string, TableState>) => Script): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const script = build(parseSave(await runCommand(`${this.iptables}-save`, [])));
      const lines = (['filter', 'nat'] as const).flatMap((table) => (script[table].length ? [`*${table}`, ...script[table], 'COMMIT'] : []));
      if (lines.length === 0) return;
      try {
        await runCommand(`${this.iptables}-restore`, ['-w', '--noflush'], lines.join('\n') + '\n');
        return;
      } catch (err) {
        if (attempt === 2) throw err;
      }
    }
  }

  private async exists(table: string, chain: string, rule: string[]): Promise<boolean> {
    try {
      await this.ipt(table, ['-C', chain, ...rule]);
      return true;
    } catch {
      return false;
    }
  }

  private async ipt(table: string, args: string[]): Promise<void> {
    await runCommand(this.iptables, ['-w', '-t', table, ...args]);
  }
}

function emptyTable(): TableState {
  return { chains: new Set(), rules: [] };
}

/** iptables-save output by table. */
function parseSave(text: string): Map<string, TableState> {
  const tables = new Map<string, TableState>();
  let current: TableState | undefined;
  for (const line of text.split('\n')) {
    if (line.startsWith('*')) tables.set(line.slice(1).trim(), (current = emptyTable()));
    else if (line.startsWith(':') && current) current.chains.add(line.slice(1).split(' ')[0]!);
    else if (line.startsWith('-A ') && current) current.rules.push(line.trim());
  }
  return tables;
}

/** Rules of chain `from` that jump to `chain`. */
function jumpsTo(table: TableState, from: string, chain: string): string[] {
  return table.rules.filter((rule) => {
    const words = rule.split(/\s+/);
    return words[1] === from && words[words.length - 2] === '-j' && words[words.length - 1] === chain;
  });
}

/** `-D` for a saved `-A` line: the saved text is exactly what the rule matches. */
function deletion(rule: string): string {
  return `-D${rule.slice(2)}`;
}

/**
 * Lines that leave exactly one jump `-A FROM SPEC` (SPEC ends in `-j CHAIN`) in `from`: an
 * identical jump stays where it is; stale or duplicate jumps to the chain go.
 */
function jumpTo(table: TableState, from: string, spec: string, where: 'top' | 'end'): string[] {
  const wanted = `-A ${from} ${spec}`;
  const chain = spec.split(/\s+/).pop()!;
  const existing = jumpsTo(table, from, chain);
  const keep = existing.indexOf(wanted);
  const lines = existing.filter((_rule, i) => i !== keep).map(deletion);
  if (keep < 0) lines.push(where === 'top' ? `-I ${from} 1 ${spec}` : wanted);
  return lines;
}

/** Lines that remove `chain` and the jumps of `from` to it; none when the chain does not exist. */
function removal(table: TableState, chain: string, from: string): string[] {
  if (!table.chains.has(chain)) return [];
  return [...jumpsTo(table, from, chain).map(deletion), `-F ${chain}`, `-X ${chain}`];
}
