/** A FIFO async lock; one per store so that metadata changes and layer garbage collection never interleave. */
export class Mutex {
  private tail: Promise<void> = Promise.resolve();

  async run<T>(fn: () => Promise<T>): Promise<T> {
    const previous = this.tail;
    let release!: () => void;
    this.tail = new Promise((resolve) => (release = resolve));
    await previous;
    try {
      return await fn();
    } finally {
      release();
    }
  }
}

/** Locks by key (a chain ID), so two jobs never create the same layer at once. */
export class KeyedMutex {
  private readonly locks = new Map<string, Mutex>();
  private readonly users = new Map<string, number>();

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    let lock = this.locks.get(key);
    if (!lock) this.locks.set(key, (lock = new Mutex()));
    this.users.set(key, (this.users.get(key) ?? 0) + 1);
    try {
      return await lock.run(fn);
    } finally {
      const left = this.users.get(key)! - 1;
      if (left === 0) {
        this.users.delete(key);
        this.locks.delete(key);
      } else this.users.set(key, left);
    }
  }
}

/** At most `limit` holders at once; the rest wait in FIFO order. */
export class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];

  constructor(private readonly limit: number) {}

  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.limit) await new Promise<void>((resolve) => this.waiting.push(resolve));
    else this.active++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      if (next) next();
      else this.active--;
    }
  }
}
