import { runGraphDriverConformance } from '@tsengine/test';
import { OverlayDriver } from '../src/index.js';

runGraphDriverConformance(
  'overlay',
  async (root) => {
    const driver = new OverlayDriver(root);
    await driver.init();
    return driver;
  },
  { mounts: true },
);
