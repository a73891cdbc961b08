import { join } from 'node:path';
import { type ImageService, ImageServiceCapability, type RegistryClient, RegistryClientCapability, definePlugin } from '@tsengine/core';
import { RegistryV2Client } from './client.js';
import { type RegistryOptions, parseOptions } from './options.js';

export { RegistryV2Client } from './client.js';
export { parseChallenges, TokenCache } from './auth.js';
export { loginDomain } from './login.js';
export { type RegistryOptions, DEFAULT_OPTIONS, parseOptions } from './options.js';

export default definePlugin<RegistryOptions>({
  name: '@tsengine/registry-v2',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'Registry HTTP API v2 client: docker pull, docker push and docker login.',
  provides: [{ capability: RegistryClientCapability.name, name: 'v2' }],
  requires: [ImageServiceCapability.name],
  parseOptions,
  register(container, ctx) {
    const stateDir = join(ctx.settings.dataRoot, 'registry-v2');
    // The image service exists only after the images plugin's init, so it is resolved on first use.
    let client: RegistryV2Client | undefined;
    const get = (): RegistryClient => (client ??= new RegistryV2Client(container.resolve<ImageService>(ImageServiceCapability.token), ctx.options, stateDir));
    ctx.onShutdown(() => Promise.all([client?.digests.close(), client?.gunzip.close()]));
    ctx.provide(RegistryClientCapability, 'v2', () => get());
    const active = () => container.resolve<RegistryClient>(RegistryClientCapability.token);
    ctx.handle('image.pull', async (job) => active().pull(job.input, job.stdout, job.signal));
    ctx.handle('image.push', async (job) => active().push(job.input, job.stdout, job.signal));
    ctx.handle('registry.login', async (job) => active().login(job.input, job.signal));
  },
});
