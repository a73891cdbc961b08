import { readFile } from 'node:fs/promises';
import { CapabilityProviders, type DependencyContainer, type Logger, type VolumeDriver } from '@tsengine/core';

/** A logger that drops everything (the plugin logs through pino in the daemon). */
export const silentLogger = new Proxy({}, { get: (_t, key) => (key === 'child' ? () => silentLogger : () => undefined) }) as unknown as Logger;

/** The providers the service looks drivers up in, as the loader would build them. */
export function providersOf(...drivers: VolumeDriver[]): CapabilityProviders<VolumeDriver> {
  const registrations = new Map(drivers.map((d) => [d.name, { capability: 'volumedriver', name: d.name, plugin: 'test', factory: () => d }]));
  return new CapabilityProviders('volumedriver', registrations, {} as DependencyContainer, 'local');
}

export async function mountPointsUnder(dir: string): Promise<string[]> {
  const lines = (await readFile('/proc/self/mountinfo', 'utf8')).split('\n');
  return lines.map((l) => l.split(' ')[4] ?? '').filter((p) => p === dir || p.startsWith(`${dir}/`));
}
