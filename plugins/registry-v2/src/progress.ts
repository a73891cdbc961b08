import type { Writable } from 'node:stream';

export interface ProgressMessage {
  status?: string;
  id?: string;
  progressDetail?: { current?: number; total?: number };
  progress?: string;
  aux?: unknown;
}

const BAR_WIDTH = 50;
const UNITS = ['B', 'kB', 'MB', 'GB', 'TB'];

/** go-units HumanSize: decimal units, four significant digits. */
function humanSize(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${Number(value.toPrecision(4))}${UNITS[unit]}`;
}

/** Docker's progress bar text: "[=====>      ]  1.2MB/2.4MB". */
export function progressBar(current: number, total: number): string {
  if (total <= 0) return humanSize(current);
  const filled = Math.min(BAR_WIDTH, Math.floor((current / total) * BAR_WIDTH));
  const bar = '='.repeat(Math.max(0, filled - 1)) + (filled > 0 ? (filled === BAR_WIDTH ? '=' : '>') : '') + ' '.repeat(BAR_WIDTH - filled);
  return `[${bar}] ${humanSize(current).padStart(8)}/${humanSize(total)}`;
}

/** Writes Docker JSON progress lines; byte progress is throttled so that big blobs do not flood the stream. */
export class Progress {
  private readonly lastReport = new Map<string, number>();

  constructor(private readonly out: Writable) {}

  line(message: ProgressMessage): void {
    this.out.write(JSON.stringify(message) + '\n');
  }

  status(status: string, id?: string): void {
    this.line(id === undefined ? { status } : { status, id });
  }

  bytes(status: string, id: string, current: number, total: number): void {
    const now = Date.now();
    if (current < total && now - (this.lastReport.get(id) ?? 0) < 100) return;
    this.lastReport.set(id, now);
    this.line({ status, progressDetail: { current, total }, progress: progressBar(current, total), id });
  }
}

export function shortId(digest: string): string {
  return digest.replace(/^sha256:/, '').slice(0, 12);
}
