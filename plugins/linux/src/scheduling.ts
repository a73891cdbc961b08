import { readdirSync } from 'node:fs';
import { libc } from './libc.js';

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;

const schedGetscheduler = libc.func('int sched_getscheduler(int pid)') as (tid: number) => number;
const schedSetscheduler = libc.func('int sched_setscheduler(int pid, int policy, const int *param)') as (
  tid: number,
  policy: number,
  param: number[],
) => number;

/**
 * Puts every thread of this process except the main one under SCHED_BATCH, so that a helper the
 * main thread wakes (a thread-pool write, a worker's message, a V8 collector) no longer preempts
 * it on that CPU. The main thread hands out all the work; while it waits for a helper's time
 * slice, every other helper waits too. Threads under another policy than the default, which an
 * administrator chose, are left alone, and so are threads that end while this runs. A thread
 * created later by the main thread takes the main thread's policy: call this again once it runs.
 * Returns how many threads changed.
 */
export function batchHelperThreads(): number {
  let changed = 0;
  for (const entry of readdirSync('/proc/self/task')) {
    const tid = Number(entry);
    if (tid === process.pid) continue;
    if (schedGetscheduler(tid) !== SCHED_OTHER) continue;
    if (schedSetscheduler(tid, SCHED_BATCH, [0]) === 0) changed++;
  }
  return changed;
}
