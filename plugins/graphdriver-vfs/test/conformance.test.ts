import { runGraphDriverConformance } from '@tsengine/test';
import { VfsDriver } from '../src/index.js';

runGraphDriverConformance('vfs', async (root) => {
  const driver = new VfsDriver(root);
  await driver.init();
  return driver;
});
