import { EventEmitter } from 'node:events';
import { basename, dirname, join } from 'node:path';
import type { LogDriver, LogEntry, LogReadOptions, LogWriter } from '@tsengine/core';
import { Compressor, RotatingFile, closeFiles, lastLinesOf, linesOf, openLogFiles, removeLogFiles, type OpenedFile } from './files.js';
import { DEFAULT_OPTIONS, parseJsonFileOptions } from './options.js';

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
 * Docker's json-file driver: <root>/<id>/<id>-json.log, one {"log","stream","time"} object per line,
 * rotated by max-size/max-file (and gzipped with compress) as Docker does. Writes are synchronous
 * appends, each followed by its live event, and a read opens its files and subscribes in one
 * synchronous step, so a follower's snapshot and its subscription meet with nothing lost or doubled.
 */
export class JsonFileLogDriver implements LogDriver {
  readonly name = 'json-file';
  private readonly live = new Map<string, Live>();
  private readonly compressor: Compressor;

  constructor(
    private readonly root: string,
    private readonly onError: (containerId: string, message: string, err: unknown) => void = () => undefined,
  ) {
    this.compressor = new Compressor((file, err) => this.onError(basename(dirname(file)), 'compressing a rotated log file failed', err));
  }

  path(containerId: string): string {
    return join(this.root, containerId, `${containerId}-json.log`);
  }

  validateOptions(options: Record<string, string>): void {
    parseJsonFileOptions(options);
  }

  /** Resolves when background compressions of rotated files have ended (for tests and shutdown). */
  idle(): Promise<void> {
    return this.compressor.idle();
  }

  open(containerId: string, options?: Record<string, string>): LogWriter {
    const settings = options ? parseJsonFileOptions(options) : DEFAULT_OPTIONS;
    this.live.get(containerId)?.emit('close');
    const file = new RotatingFile(this.path(containerId), settings, this.compressor);
    const live = new Live();
    live.setMaxListeners(0);
    this.live.set(containerId, live);
    const partial: Record<'stdout' | 'stderr', Buffer[]> = { stdout: [], stderr: [] };
    let failed = false;
    // Lines of one chunk go to the file(s) together, then to followers, in order.
    let pending: LogEntry[] = [];
    const emit = (stream: 'stdout' | 'stderr', line: Buffer) => {
      pending.push({ stream, time: nowRfc3339Nano(), line });
    };
    const commit = () => {
      if (pending.length === 0) return;
      const entries = pending;
      pending = [];
      if (!failed) {
        try {
          file.append(entries.map((e) => JSON.stringify({ log: e.line.toString('utf8'), stream: e.stream, time: e.time }) + '\n'));
        } catch (err) {
          // The container keeps running; its output is no longer kept (Docker logs and drops it too).
          failed = true;
          this.onError(containerId, 'writing the container log failed; further output is not kept', err);
        }
      }
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
        try {
          file.close();
        } catch (err) {
          this.onError(containerId, 'closing the container log failed', err);
        }
        if (this.live.get(containerId) === live) this.live.delete(containerId);
        live.emit('close');
      },
    };
  }

  async *read(containerId: string, options: LogReadOptions): AsyncIterable<LogEntry> {
    const live = options.follow ? this.live.get(containerId) : undefined;
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
    // Subscription and snapshot in one synchronous step: see the class comment.
    live?.on('entry', onEntry);
    live?.once('close', onClose);
    let files: OpenedFile[] = [];
    try {
      files = openLogFiles(this.path(containerId));
    } catch (err) {
      live?.off('entry', onEntry);
      live?.off('close', onClose);
      throw err;
    }
    const onAbort = () => onClose();
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const inWindow = (e: LogEntry) => {
        const t = timeSeconds(e.time);
        return (options.since === undefined || t >= options.since) && (options.until === undefined || t <= options.until);
      };
      const tail = options.tail !== undefined && options.tail >= 0 ? options.tail : undefined;
      if (tail === 0) closeFiles(files);
      else if (tail !== undefined && options.since === undefined && options.until === undefined) {
        // Newest file first, each read from its end, until the tail is complete.
        const newestFirst: LogEntry[][] = [];
        let missing = tail;
        for (const file of [...files].reverse()) {
          if (missing <= 0) break;
          const entries = await lastLinesOf(file, missing, toEntry);
          newestFirst.push(entries);
          missing -= entries.length;
        }
        closeFiles(files);
        for (const entries of newestFirst.reverse()) for (const e of entries) yield e;
      } else {
        // Only the last `tail` entries are kept while reading, never the whole log.
        let kept: LogEntry[] = [];
        for (const file of files) {
          for await (const text of linesOf(file)) {
            const e = toEntry(text);
            if (!e || !inWindow(e)) continue;
            if (tail === undefined) {
              yield e;
              continue;
            }
            kept.push(e);
            if (kept.length >= 2 * tail) kept = kept.slice(-tail);
          }
        }
        if (tail !== undefined) for (const e of kept.slice(-tail)) yield e;
      }
      if (!live) return;
      for (;;) {
        while (queue.length) {
          const e = queue.shift()!;
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
      closeFiles(files);
      live?.off('entry', onEntry);
      live?.off('close', onClose);
      options.signal?.removeEventListener('abort', onAbort);
    }
  }

  async remove(containerId: string): Promise<void> {
    this.live.get(containerId)?.emit('close');
    this.live.delete(containerId);
    const path = this.path(containerId);
    this.compressor.cancelAll(path);
    removeLogFiles(path);
  }
}
