import { defineCapability } from './capability.js';

/** One message of a container's output, as a log driver stores it. */
export interface LogEntry {
  stream: 'stdout' | 'stderr';
  /** RFC 3339 with nanoseconds (Docker's "time" field). */
  time: string;
  /** The message bytes, with its trailing newline when the program wrote one. */
  line: Buffer;
}

export interface LogReadOptions {
  /** Keep the stream open for new entries until the writer closes (the container stops). */
  follow?: boolean;
  /** Only the last N entries; undefined or negative = all. */
  tail?: number;
  /** Unix time in seconds (fractions allowed); entries strictly before it are skipped. */
  since?: number;
  /** Unix time in seconds; entries after it are skipped and a follow ends there. */
  until?: number;
  signal?: AbortSignal;
}

/** Receives one container run's output; chunks are split into lines by the driver. */
export interface LogWriter {
  write(stream: 'stdout' | 'stderr', chunk: Buffer): void;
  /** Flushes partial lines and closes; followers of this container end. */
  close(): void;
}

export interface LogDriver {
  readonly name: string;
  /** Where the container's log lives (inspect's LogPath), or "" when the driver keeps no file. */
  path(containerId: string): string;
  /** Opens (appending) the container's log for a new run; `options` are the container's --log-opt values. */
  open(containerId: string, options?: Record<string, string>): LogWriter;
  /** Refuses options the driver does not know or cannot use (at create, with Docker's message). */
  validateOptions?(options: Record<string, string>): void;
  /** Entries in order; with follow, also those written later, until the writer closes, `until` or the signal. */
  read(containerId: string, options: LogReadOptions): AsyncIterable<LogEntry>;
  /** Forgets the container's log (rm). */
  remove(containerId: string): Promise<void>;
}

export const LogDriverCapability = defineCapability<LogDriver>('logdriver', { mode: 'many', preference: ['json-file'] });
