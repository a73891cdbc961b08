import { type NetworkDriver, NetworkDriverCapability, definePlugin, invalid } from '@tsengine/core';

/**
 * Drivers without endpoints of their own: the controller gives "host" containers the daemon's
 * namespace and "null" containers an empty one with loopback up. There is one network of each.
 */
export class SandboxOnlyDriver implements NetworkDriver {
  constructor(
    readonly name: 'host' | 'null',
    readonly sandbox: 'host' | 'none',
  ) {}

  validateOptions(options: Record<string, string>): void {
    if (Object.keys(options).length > 0) throw invalid(`the ${this.name} driver takes no options`);
  }

  async up(): Promise<void> {}

  async down(): Promise<void> {}

  async join(): Promise<never> {
    throw invalid(`the ${this.name} network has no endpoints`);
  }

  async leave(): Promise<void> {}
}

export default definePlugin({
  name: '@tsengine/net-host',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'networkdriver "host" (the daemon\'s network namespace) and "null" (loopback only).',
  provides: [
    { capability: NetworkDriverCapability.name, name: 'host' },
    { capability: NetworkDriverCapability.name, name: 'null' },
  ],
  requires: [],
  register(_container, ctx) {
    ctx.provide(NetworkDriverCapability, 'host', () => new SandboxOnlyDriver('host', 'host'));
    ctx.provide(NetworkDriverCapability, 'null', () => new SandboxOnlyDriver('null', 'none'));
  },
});
