import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { Writable } from 'node:stream';
import {
  type ExecDriver,
  ExecDriverCapability,
  type GraphDriver,
  GraphDriverCapability,
  type ImageService,
  ImageServiceCapability,
  EngineError,
  definePlugin,
} from '@tsengine/core';
import { BuildCache } from './cache.js';
import { Build } from './builder.js';

export { Build, BuildStepError, DEFAULT_PATH, PROXY_ARGS, parseGoDuration, type BuilderServices } from './builder.js';
export { BuildCache, cacheKey } from './cache.js';
export { IgnoreMatcher, pruneContext } from './dockerignore.js';
export { expandWord, expandWords, jsonForm, parseDockerfile, parseFlags, parseNameValues, splitWords, type Dockerfile, type Instruction } from './parser.js';
export { resolveInScope, mkdirInScope } from './scope.js';
export { copyInto, digestSources, resolveChown } from './copy.js';

/** image.build: Dockerfile builds with the legacy builder's semantics and output stream. */
export default definePlugin({
  name: '@tsengine/builder',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'Dockerfile builds (the legacy builder API): RUN through the exec driver, layers through the graph driver, images through the image service.',
  provides: [],
  requires: [GraphDriverCapability.name, ExecDriverCapability.name, ImageServiceCapability.name],
  async register(container, ctx) {
    const root = join(ctx.settings.dataRoot, 'builder');
    const cache = new BuildCache(root, ctx.logger);
    await cache.restore();
    const graph = container.resolve<GraphDriver>(GraphDriverCapability.token);
    const exec = container.resolve<ExecDriver>(ExecDriverCapability.token);
    const images = container.resolve<ImageService>(ImageServiceCapability.token);
    const tmpRoot = join(root, 'tmp');
    const stopping = new AbortController();
    const active = new Set<Promise<unknown>>();
    // Contexts of builds that died with an earlier daemon.
    await rm(tmpRoot, { recursive: true, force: true });
    ctx.handle('image.build', async (job) => {
      const pull = ctx.engine.has('image.pull')
        ? async (reference: string, progress: Writable, signal: AbortSignal) => {
            const { image, tag } = splitTag(reference);
            await ctx.engine.run('image.pull', { image, ...(tag ? { tag } : {}) }, { stdout: progress, signal });
          }
        : undefined;
      const build = new Build({ graph, exec, images, cache, tmpRoot, log: job.log, ...(pull ? { pull } : {}) }, job.input, job.stdout, AbortSignal.any([job.signal, stopping.signal]));
      const running = build.run(job.stdin);
      active.add(running);
      try {
        return await running;
      } finally {
        active.delete(running);
      }
    });
    // At shutdown running builds are cancelled (their RUN processes killed, scratch layers removed) and awaited.
    ctx.onShutdown(async () => {
      stopping.abort(new EngineError('cancelled', 'the daemon is shutting down'));
      await Promise.allSettled([...active]);
    });
  },
});

/** "name:tag" → name and tag (a port in the registry host is not a tag; digests stay in the name). */
function splitTag(reference: string): { image: string; tag?: string } {
  if (reference.includes('@')) return { image: reference };
  const colon = reference.lastIndexOf(':');
  if (colon > reference.lastIndexOf('/')) return { image: reference.slice(0, colon), tag: reference.slice(colon + 1) };
  return { image: reference };
}
