import { NetworkDriverCapability, definePlugin } from '@tsengine/core';
import { BridgeDriver } from './driver.js';

export { BRIDGE_OPTIONS, BridgeDriver, bridgeNameOf } from './driver.js';
export { BRIDGE_PREFIX, Firewall } from './firewall.js';

export default definePlugin({
  name: '@tsengine/net-bridge',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'networkdriver "bridge": Linux bridges, veth pairs, NAT, isolation and published ports.',
  provides: [{ capability: NetworkDriverCapability.name, name: 'bridge' }],
  requires: [],
  register(_container, ctx) {
    const driver = new BridgeDriver(ctx.logger);
    ctx.provide(NetworkDriverCapability, 'bridge', () => driver);
    ctx.onShutdown(() => driver.closeAll());
  },
});
