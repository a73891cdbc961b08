import type { Writable } from 'node:stream';
import { type EventBus, type EventFilter, type EngineEvent, eventMatches } from '@tsengine/core';

/** Writes past events since `since`, then live ones, as JSON lines until `until` or the signal. */
export async function serveEvents(bus: EventBus, input: { since?: number; until?: number; filter: EventFilter }, out: Writable | undefined, signal: AbortSignal): Promise<void> {
  if (!out) return;
  const untilNano = input.until !== undefined ? input.until * 1e9 : Number.POSITIVE_INFINITY;
  const written = new WeakSet<EngineEvent>();
  const write = (e: EngineEvent) => {
    if (written.has(e)) return;
    written.add(e);
    if (eventMatches(e, input.filter) && e.timeNano <= untilNano && !out.destroyed) out.write(JSON.stringify(e) + '\n');
  };
  let done!: () => void;
  const ended = new Promise<void>((resolve) => (done = resolve));
  const queued: EngineEvent[] = [];
  let replaying = true;
  const unsubscribe = bus.subscribe((e) => {
    if (replaying) queued.push(e);
    else write(e);
    if (e.timeNano > untilNano) done();
  });
  try {
    if (input.since !== undefined) for (const e of bus.history(input.since * 1e9, untilNano)) write(e);
    for (const e of queued) write(e);
    replaying = false;
    if (input.until !== undefined) {
      const ms = input.until * 1000 - Date.now();
      if (ms <= 0) return;
      const timer = setTimeout(done, ms);
      signal.addEventListener('abort', () => clearTimeout(timer), { once: true });
    }
    if (signal.aborted) return;
    signal.addEventListener('abort', () => done(), { once: true });
    await ended;
  } finally {
    unsubscribe();
  }
}
