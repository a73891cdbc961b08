import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { it } from 'node:test';
import { Worker } from 'node:worker_threads';
import { batchHelperThreads } from '../src/index.js';

const SCHED_OTHER = 0;
const SCHED_BATCH = 3;
const SCHED_IDLE = 5;

/** The scheduling policy, field 41 of /proc/self/task/TID/stat (counted after the command's parentheses). */
function policyOf(tid: number): number {
  const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
  return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[38]);
}

function helperThreads(): number[] {
  return readdirSync('/proc/self/task').map(Number).filter((tid) => tid !== process.pid);
}

it('puts the helper threads under SCHED_BATCH, leaving the main thread and chosen policies alone', async () => {
  const worker = new Worker('setInterval(() => {}, 1000)', { eval: true });
  await new Promise((resolve) => worker.once('online', resolve));
  try {
    const helpers = helperThreads();
    assert.ok(helpers.length >= 2, `only ${helpers.length} helper threads`);
    const chosen = helpers[0]!;
    execFileSync('chrt', ['--idle', '--pid', '0', String(chosen)]);
    const before = helpers.filter((tid) => policyOf(tid) === SCHED_OTHER).length;
    assert.ok(before > 0, 'no helper thread has the default policy to begin with');

    assert.equal(batchHelperThreads(), before);

    assert.equal(policyOf(process.pid), SCHED_OTHER);
    assert.equal(policyOf(chosen), SCHED_IDLE);
    for (const tid of helpers.slice(1)) assert.equal(policyOf(tid), SCHED_BATCH, `thread ${tid}`);
    assert.equal(batchHelperThreads(), 0);
  } finally {
    await worker.terminate();
    for (const tid of helperThreads()) execFileSync('chrt', ['--other', '--pid', '0', String(tid)]);
  }
});
