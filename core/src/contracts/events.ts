/**
 * The engine's event stream (Docker's GET /events). A tiny in-memory publish/subscribe bus with a
 * ring of recent events for `since`; one bus per Engine, found with eventBusOf(engine).
 */
export interface EngineEvent {
  Type: 'container' | 'image' | 'network' | 'volume' | 'daemon' | 'plugin';
  Action: string;
  Actor: { ID: string; Attributes: Record<string, string> };
  scope: 'local';
  time: number;
  timeNano: number;
  /** Legacy fields Docker still sends for containers and images. */
  status?: string;
  id?: string;
  from?: string;
}

export interface EventFilter {
  type?: string[];
  container?: string[];
  image?: string[];
  event?: string[];
  label?: string[];
}

type Listener = (event: EngineEvent) => void;

const RING_SIZE = 1024;

export class EventBus {
  private readonly ring: EngineEvent[] = [];
  private readonly listeners = new Set<Listener>();
  private lastNano = 0;

  /** Stamps the time (strictly increasing timeNano) and delivers the event. */
  publish(event: Omit<EngineEvent, 'scope' | 'time' | 'timeNano'>): EngineEvent {
    // Nanoseconds since the epoch exceed 2^53: a double steps in 256 ns there, so a microsecond is the
    // smallest increment that keeps the times distinct.
    let nano = Date.now() * 1e6;
    if (nano <= this.lastNano) nano = this.lastNano + 1000;
    this.lastNano = nano;
    const full: EngineEvent = { ...event, scope: 'local', time: Math.floor(nano / 1e9), timeNano: nano };
    if (full.Type === 'container' || full.Type === 'image') {
      full.status = full.Action;
      full.id = full.Actor.ID;
      if (full.Actor.Attributes.image) full.from = full.Actor.Attributes.image;
    }
    this.ring.push(full);
    if (this.ring.length > RING_SIZE) this.ring.shift();
    for (const listener of this.listeners) listener(full);
    return full;
  }

  /** Recent events with timeNano in [sinceNano, untilNano]. */
  history(sinceNano: number, untilNano = Number.POSITIVE_INFINITY): EngineEvent[] {
    return this.ring.filter((e) => e.timeNano >= sinceNano && e.timeNano <= untilNano);
  }

  subscribe(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

const buses = new WeakMap<object, EventBus>();

/** The bus of one engine (or any owner object), created on first use. */
export function eventBusOf(owner: object): EventBus {
  let bus = buses.get(owner);
  if (!bus) buses.set(owner, (bus = new EventBus()));
  return bus;
}

/** Docker's event filter semantics: within a key any value matches; every key must match. */
export function eventMatches(event: EngineEvent, filter: EventFilter): boolean {
  if (filter.type?.length && !filter.type.includes(event.Type)) return false;
  if (filter.event?.length && !filter.event.some((a) => event.Action === a || event.Action.startsWith(`${a}:`))) return false;
  if (filter.container?.length) {
    if (event.Type !== 'container') return false;
    const name = event.Actor.Attributes.name ?? '';
    if (!filter.container.some((c) => c === name || (c.length > 0 && event.Actor.ID.startsWith(c)))) return false;
  }
  if (filter.image?.length && !filter.image.some((i) => event.Actor.Attributes.image === i || event.from === i)) return false;
  if (filter.label?.length) {
    for (const label of filter.label) {
      const eq = label.indexOf('=');
      const key = eq < 0 ? label : label.slice(0, eq);
      if (!(key in event.Actor.Attributes)) return false;
      if (eq >= 0 && event.Actor.Attributes[key] !== label.slice(eq + 1)) return false;
    }
  }
  return true;
}

declare module '../kernel/job-map.js' {
  interface JobMap {
    /**
     * Writes matching events as JSON lines to job.stdout: the recent ones since `since`, then live
     * ones until `until` (unix seconds) or the job's signal.
     */
    'system.events': { in: { since?: number; until?: number; filter: EventFilter }; out: void };
  }
}
