import { type ImageService, ImageServiceCapability, type RegistryClient, RegistryClientCapability, definePlugin, invalid } from '@tsengine/core';
import { RegistryV2Client } from './client.js';
import type { EndpointOptions } from './endpoint.js';

export { RegistryV2Client } from './client.js';
export type { EndpointOptions } from './endpoint.js';

function parseOptions(raw: unknown): EndpointOptions {
  if (raw === undefined || raw === null) return { insecureRegistries: [] };
  if (typeof raw !== 'object' || Array.isArray(raw)) throw invalid('options must be an object like {"insecureRegistries": ["host:port"]}');
  const list = (raw as { insecureRegistries?: unknown }).insecureRegistries ?? [];
  if (!Array.isArray(list) || !list.every((h) => typeof h === 'string')) throw invalid('insecureRegistries must be a list of host[:port] strings');
  return { insecureRegistries: list as string[] };
}

export default definePlugin({
  name: '@tsengine/registry-v2',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'Registry HTTP API v2 client: docker pull and docker push.',
  provides: [{ capability: RegistryClientCapability.name, name: 'v2' }],
  requires: [ImageServiceCapability.name],
  parseOptions,
  register(container, ctx) {
    let client: RegistryClient | undefined;
    // The image service exists only after the images plugin's init, so it is resolved on first use.
    const get = (): RegistryClient => (client ??= new RegistryV2Client(container.resolve<ImageService>(ImageServiceCapability.token), ctx.options));
    ctx.provide(RegistryClientCapability, 'v2', () => get());
    ctx.handle('image.pull', async (job) => container.resolve<RegistryClient>(RegistryClientCapability.token).pull(job.input, job.stdout, job.signal));
    ctx.handle('image.push', async (job) => container.resolve<RegistryClient>(RegistryClientCapability.token).push(job.input, job.stdout, job.signal));
  },
});
