import { ExecDriverCapability, PluginSkip, definePlugin, invalid } from '@tsengine/core';
import { NativeExecDriver } from './driver.js';

export { NativeExecDriver, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, type ExecOptions, type NativeExecDriverOptions } from './driver.js';
export { DEFAULT_CAPABILITIES, allCapabilities, containerCapabilities } from './capabilities.js';

export interface ExecNativeOptions {
  /** cgroup parent of every container group (default "tsengine"). */
  cgroupParent: string;
  /** Container inits kept started ahead of need (default 1; 0 disables). */
  prestart: number;
}

export default definePlugin<ExecNativeOptions>({
  name: '@tsengine/exec-native',
  version: '0.1.0',
  api: '^1.0.0',
  description: 'Runs containers as direct children of the daemon in their own namespaces and cgroup; no shim.',
  provides: [{ capability: 'execdriver', name: 'native' }],
  parseOptions(raw) {
    const options = (raw ?? {}) as Partial<ExecNativeOptions>;
    if (options.cgroupParent !== undefined && typeof options.cgroupParent !== 'string') throw invalid('cgroupParent must be a string');
    if (options.prestart !== undefined && !(Number.isInteger(options.prestart) && options.prestart >= 0 && options.prestart <= 16)) {
      throw invalid('prestart must be an integer from 0 to 16');
    }
    return { cgroupParent: options.cgroupParent ?? 'tsengine', prestart: options.prestart ?? 1 };
  },
  register(_container, ctx) {
    if (process.platform !== 'linux') throw new PluginSkip('needs Linux');
    if (process.getuid?.() !== 0) throw new PluginSkip('needs root (namespaces, mounts, cgroups)');
    let driver: NativeExecDriver | undefined;
    ctx.provide(ExecDriverCapability, 'native', () => (driver ??= new NativeExecDriver({ cgroupParent: ctx.options.cgroupParent, prestart: ctx.options.prestart })));
    // The containers plugin stops its containers first (hooks run in reverse load order), so the parent is
    // empty by now unless another daemon shares it; rmdir only removes an empty cgroup.
    ctx.onShutdown(async () => {
      await driver?.close();
      driver?.removeCgroupParent();
    });
  },
});
