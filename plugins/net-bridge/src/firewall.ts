import { CommandError, runCommand } from './command.js';

/** What the rules of one bridge network depend on. */
export interface BridgeRules {
  bridge: string;
  subnet: string;
  internal: boolean;
  /** Containers on this bridge may talk to each other (Docker's icc). */
  icc: boolean;
  masquerade: boolean;
}

/** Our bridges' names start with this (tse0, tse-<network id>), apart from docker0 and br-<id>. */
export const BRIDGE_PREFIX = 'tse';

/**
 * iptables rules in chains of our own, per bridge: an ingress chain (packets forwarded into the
 * bridge), an egress chain (packets leaving it), and a nat chain for masquerade. Ingress jumps go
 * to the top of FORWARD and egress jumps to its end, so every network's ingress rules (isolation)
 * are decided before any network's egress accepts, whatever order the networks were made in.
 * Everything is created idempotently (a chain that exists is flushed and refilled) and removed
 * with the network, so no rule of ours outlives it.
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
    await this.ensureChain('filter', ingress);
    await this.ipt('filter', ['-A', ingress, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT']);
    await this.ipt('filter', ['-A', ingress, '-i', bridge, '-j', rules.icc ? 'ACCEPT' : 'DROP']);
    // Nothing is forwarded into the bridge from elsewhere (other networks, the outside) but replies.
    await this.ipt('filter', ['-A', ingress, '-j', 'DROP']);
    await this.ensureJump('filter', 'FORWARD', ['-o', bridge, '-j', ingress], 'top');

    const egress = this.egressChain(bridge);
    await this.ensureChain('filter', egress);
    await this.ipt('filter', ['-A', egress, '-j', rules.internal ? 'DROP' : 'ACCEPT']);
    await this.ensureJump('filter', 'FORWARD', ['-i', bridge, '!', '-o', bridge, '-j', egress], 'end');

    const nat = this.natChain(bridge);
    if (rules.masquerade && !rules.internal) {
      await this.ensureChain('nat', nat);
      await this.ipt('nat', ['-A', nat, '!', '-o', bridge, '-j', 'MASQUERADE']);
      await this.ensureJump('nat', 'POSTROUTING', ['-s', rules.subnet, '-j', nat], 'top');
    } else {
      await this.removeChain('nat', nat, 'POSTROUTING');
    }
  }

  async tearDown(bridge: string): Promise<void> {
    await this.removeChain('filter', this.ingressChain(bridge), 'FORWARD');
    await this.removeChain('filter', this.egressChain(bridge), 'FORWARD');
    await this.removeChain('nat', this.natChain(bridge), 'POSTROUTING');
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

  private async ensureChain(table: string, chain: string): Promise<void> {
    try {
      await this.ipt(table, ['-N', chain]);
    } catch (err) {
      if (!(err instanceof CommandError) || !/exists/i.test(err.stderr)) throw err;
    }
    await this.ipt(table, ['-F', chain]);
  }

  private async ensureJump(table: string, from: string, rule: string[], where: 'top' | 'end'): Promise<void> {
    if (await this.exists(table, from, rule)) return;
    await this.ipt(table, where === 'top' ? ['-I', from, '1', ...rule] : ['-A', from, ...rule]);
  }

  private async removeChain(table: string, chain: string, from: string): Promise<void> {
    const rules = await runCommand(this.iptables, ['-w', '-t', table, '-S', from]).catch(() => '');
    for (const line of rules.split('\n')) {
      const words = line.trim().split(/\s+/);
      if (words[0] !== '-A' || words[words.length - 1] !== chain || words[words.length - 2] !== '-j') continue;
      await this.ipt(table, ['-D', ...words.slice(1)]).catch(() => undefined);
    }
    await this.ipt(table, ['-F', chain]).catch(() => undefined);
    await this.ipt(table, ['-X', chain]).catch(() => undefined);
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
