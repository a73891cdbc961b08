import type { HostConfig } from '@tsengine/core';

/** Docker's restart manager: the delay starts at 100 ms, doubles per restart, is capped at a minute and resets after 10 s of running. */
export const BACKOFF_START_MS = 100;
export const BACKOFF_MAX_MS = 60_000;
export const BACKOFF_RESET_AFTER_MS = 10_000;

export function nextBackoff(previousMs: number, ranForMs: number): number {
  if (ranForMs >= BACKOFF_RESET_AFTER_MS || previousMs <= 0) return BACKOFF_START_MS;
  return Math.min(previousMs * 2, BACKOFF_MAX_MS);
}

/** Whether a container that just exited on its own should run again (Docker's ShouldRestart). */
export function shouldRestart(host: HostConfig, exitCode: number, restartCount: number, manuallyStopped: boolean): boolean {
  if (manuallyStopped) return false;
  const name = host.RestartPolicy?.Name ?? 'no';
  if (name === 'always' || name === 'unless-stopped') return true;
  if (name === 'on-failure') {
    const max = host.RestartPolicy?.MaximumRetryCount ?? 0;
    return exitCode !== 0 && (max <= 0 || restartCount < max);
  }
  return false;
}

/** Whether the daemon starts the container again when it starts (it ran before and nobody stopped it). */
export function restartsWithDaemon(host: HostConfig, hasRun: boolean, manuallyStopped: boolean): boolean {
  const name = host.RestartPolicy?.Name ?? 'no';
  return hasRun && !manuallyStopped && (name === 'always' || name === 'unless-stopped');
}
