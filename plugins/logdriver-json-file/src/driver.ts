import { closeSync, openSync, writeSync } from 'node:fs';
import { open, rm, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { EventEmitter } from 'node:events';
import type { LogDriver, LogEntry, LogReadOptions, LogWriter } from '@tsengine/core';

/** Docker's default max line before a partial message is flushed (bufio size in moby's copier). */
const MAX_LINE = 16 * 1024;

/** RFC 3339 with nine fraction digits, strictly increasing within the process (so --since is exact). */
let lastNanos = 0n;
export function nowRfc3339Nano(): string {
  let nanos = BigInt(Date.now()) * 1_000_000n + (process.hrtime.bigint() % 1_000_000n);
  if (nanos <= lastNanos) nanos = lastNanos + 1n;
  lastNanos = nanos;
  return rfc3339Nano(nanos);
}

let cachedSecond = -1;
let cachedPrefix = '';
function rfc3339Nano(nanos: bigint): string {
  const second = Number(nanos / 1_000_000_000n);
  // Formatting a date is the costly part of a log line; it changes once a second.
  if (second !== cachedSecond) {
    cachedSecond = second;
    cachedPrefix = new Date(second * 1000).toISOString().slice(0, 19);
  }
  return `${cachedPrefix}.${(nanos % 1_000_000_000n).toString().padStart(9, '0')}Z`;
}

/** Seconds since the epoch (with fraction) of an RFC 3339 Nano time. */
export function timeSeconds(time: string): number {
  const m = /\.(\d+)Z$/.exec(time);
  const whole = Date.parse(time.replace(/\.\d+Z$/, 'Z')) / 1000;
  return m ? whole + Number(`0.${m[1]}`) : whole;
}

interface JsonLine {
  log: string;
  stream: 'stdout' | 'stderr';
  time: string;
}

function toEntry(text: string): LogEntry | undefined {
  try {
    const j = JSON.parse(text) as JsonLine;
    return { stream: j.stream === 'stderr' ? 'stderr' : 'stdout', time: j.time, line: Buffer.from(j.log, 'utf8') };
  } catch {
    return undefined;
  }
}

/** A container's open log, for followers. */
class Live extends EventEmitter {
  closed = false;
}

/**
 * Docker's json-file driver: <root>/<id>/<id>-json.log, one {"log","stream","time"} object per line.
 * Writes are synchronous appends, each followed by its live event, so a follower's file snapshot
 * and its subscription meet with nothing lost.
 */
export class JsonFileLogDriver implements LogDriver {
  readonly name = 'json-file';
  private readonly live = new Map<string, Live>();

  constructor(private readonly root: string) {}

  path(containerId: string): string {
    return join(this.root, containerId, `${containerId}-json.log`);
  }

  open(containerId: string): LogWriter {
    this.live.get(containerId)?.emit('close');
    const fd = openSync(this.path(containerId), 'a', 0o640);
    const live = new Live();
    live.setMaxListeners(0);
    this.live.set(containerId, live);
    const partial: Record<'stdout' | 'stderr', Buffer[]> = { stdout: [], stderr: [] };
    // Lines of one chunk go to the file in one write, then to followers, in order.
    let pending: LogEntry[] = [];
    const emit = (stream: 'stdout' | 'stderr', line: Buffer) => {
      pending.push({ stream, time: nowRfc3339Nano(), line });
    };
    const commit = () => {
      if (pending.length === 0) return;
      const entries = pending;
      pending = [];
      writeSync(fd, entries.map((e) => JSON.stringify({ log: e.line.toString('utf8'), stream: e.stream, time: e.time })).join('\n') + '\n');
      if (live.listenerCount('entry') > 0) for (const e of entries) live.emit('entry', e);
    };
    const flush = (stream: 'stdout' | 'stderr') => {
      if (partial[stream].length) emit(stream, Buffer.concat(partial[stream]));
      partial[stream] = [];
    };
    return {
      write: (stream, chunk) => {
        if (live.closed) return;
        let start = 0;
        for (;;) {
          const nl = chunk.indexOf(10, start);
          if (nl < 0) break;
          partial[stream].push(chunk.subarray(start, nl + 1));
          emit(stream, Buffer.concat(partial[stream]));
          partial[stream] = [];
          start = nl + 1;
        }
        if (start < chunk.length) {
          partial[stream].push(Buffer.from(chunk.subarray(start)));
          if (partial[stream].reduce((n, b) => n + b.length, 0) >= MAX_LINE) flush(stream);
        }
        commit();
      },
      close: () => {
        if (live.closed) return;
        flush('stdout');
        flush('stderr');
        commit();
        live.closed = true;
        closeSync(fd);
        if (this.live.get(containerId) === live) this.live.delete(containerId);
        live.emit('close');
      },
    };
  }

  async *read(containerId: string, options: LogReadOptions): AsyncIterable<LogEntry> {
    const path = this.path(containerId);
    const live = options.follow ? this.live.get(containerId) : undefined;
    // Snapshot and subscription in one synchronous step: see the class comment.
    const queue: LogEntry[] = [];
    let ended = !live;
    let wake: (() => void) | undefined;
    const onEntry = (e: LogEntry) => {
      queue.push(e);
      wake?.();
    };
    const onClose = () => {
      ended = true;
      wake?.();
    };
    // Subscribed before the file's size is taken: an entry written in between is in both, and the
    // queue skips it by its (strictly increasing) time.
    live?.on('entry', onEntry);
    live?.once('close', onClose);
    let size = 0;
    try {
      size = (await stat(path)).size;
    } catch {
      size = 0;
    }
    const onAbort = () => onClose();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const snapshot = await readEntries(path, size);
      const inWindow = (e: LogEntry) => {
        const t = timeSeconds(e.time);
        return (options.since === undefined || t >= options.since) && (options.until === undefined || t <= options.until);
      };
      let entries = snapshot.filter(inWindow);
      if (options.tail !== undefined && options.tail >= 0) entries = options.tail === 0 ? [] : entries.slice(-options.tail);
      const lastTime = snapshot.length ? snapshot[snapshot.length - 1]!.time : '';
      for (const e of entries) yield e;
      if (!live) return;
      for (;;) {
        while (queue.length) {
          const e = queue.shift()!;
          if (lastTime && e.time <= lastTime) continue;
          if (options.until !== undefined && timeSeconds(e.time) > options.until) return;
          if (inWindow(e)) yield e;
        }
        if (ended || options.signal?.aborted) return;
        if (options.until !== undefined && Date.now() / 1000 > options.until) return;
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (options.until !== undefined) setTimeout(resolve, Math.max(0, options.until * 1000 - Date.now()) + 10).unref();
        });
        wake = undefined;
      }
    } finally {
      live?.off('entry', onEntry);
      live?.off('close', onClose);
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  async remove(containerId: string): Promise<void> {
    this.live.get(containerId)?.emit('close');
    this.live.delete(containerId);
    await rm(this.path(containerId), { force: true });
  }
}

async function readEntries(path: string, size: number): Promise<LogEntry[]> {
  if (size === 0) return [];
  const handle = await open(path, 'r').catch(() => undefined);
  if (!handle) return [];
  try {
    const buffer = Buffer.alloc(size);
    const { bytesRead } = await handle.read(buffer, 0, size, 0);
    const text = buffer.subarray(0, bytesRead).toString('utf8');
    const out: LogEntry[] = [];
    for (const line of text.split('\n')) {
      if (!line) continue;
      const e = toEntry(line);
      if (e) out.push(e);
    }
    return out;
  } finally {
    await handle.close();
  }
}
