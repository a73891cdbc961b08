import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { BACKOFF_MAX_MS, nextBackoff, restartsWithDaemon, shouldRestart } from '../src/restart.js';
import { noNewPrivileges, resourcesOf, validateHostConfig } from '../src/resources.js';

describe('restart policies', () => {
  it("follows Docker's back-off: 100 ms doubling to a minute, reset after 10 s of running", () => {
    assert.equal(nextBackoff(0, 0), 100);
    assert.equal(nextBackoff(100, 50), 200);
    assert.equal(nextBackoff(40_000, 50), BACKOFF_MAX_MS);
    assert.equal(nextBackoff(6400, 10_000), 100);
  });

  it('restarts by policy, never after a manual stop', () => {
    const policy = (Name: string, MaximumRetryCount = 0) => ({ RestartPolicy: { Name, MaximumRetryCount } });
    assert.equal(shouldRestart(policy('no'), 1, 0, false), false);
    assert.equal(shouldRestart(policy('always'), 0, 5, false), true);
    assert.equal(shouldRestart(policy('always'), 0, 5, true), false);
    assert.equal(shouldRestart(policy('unless-stopped'), 0, 0, false), true);
    assert.equal(shouldRestart(policy('on-failure'), 0, 0, false), false);
    assert.equal(shouldRestart(policy('on-failure'), 1, 100, false), true);
    assert.equal(shouldRestart(policy('on-failure', 2), 1, 1, false), true);
    assert.equal(shouldRestart(policy('on-failure', 2), 1, 2, false), false);
    assert.equal(restartsWithDaemon(policy('always'), true, false), true);
    assert.equal(restartsWithDaemon(policy('always'), false, false), false);
    assert.equal(restartsWithDaemon(policy('unless-stopped'), true, true), false);
    assert.equal(restartsWithDaemon(policy('on-failure'), true, false), false);
  });
});

describe('host config', () => {
  it('maps limits to the exec driver', () => {
    assert.deepEqual(resourcesOf({ Memory: 64 << 20, MemorySwap: -1, NanoCpus: 1.5e9, CpuShares: 512, CpusetCpus: '0', PidsLimit: 10 }), {
      memory: 64 << 20,
      memorySwap: -1,
      nanoCpus: 1.5e9,
      cpuShares: 512,
      cpusetCpus: '0',
      pidsLimit: 10,
    });
    assert.deepEqual(resourcesOf({ CpuQuota: 50000, CpuPeriod: 100000, PidsLimit: -1, Memory: 0 }), { nanoCpus: 5e8 });
  });

  it("refuses what Docker refuses, with Docker's words", () => {
    assert.throws(() => validateHostConfig({ Memory: 1024 }), /Minimum memory limit allowed is 6MB/);
    assert.throws(() => validateHostConfig({ Memory: 64 << 20, MemorySwap: 32 << 20 }), /Minimum memoryswap limit should be larger than memory limit/);
    assert.throws(() => validateHostConfig({ CpusetCpus: '0-999' }), /Requested CPUs are not available/);
    assert.throws(() => validateHostConfig({ RestartPolicy: { Name: 'always' }, AutoRemove: true }), /AutoRemove/);
    assert.throws(() => validateHostConfig({ RestartPolicy: { Name: 'always', MaximumRetryCount: 3 } }), /maximum retry count/);
    assert.throws(() => validateHostConfig({ SecurityOpt: ['no-new-privileges=maybe'] }), /invalid --security-opt/);
    assert.equal(noNewPrivileges({ SecurityOpt: ['no-new-privileges'] }), true);
    assert.equal(noNewPrivileges({ SecurityOpt: ['no-new-privileges:true', 'no-new-privileges=false'] }), false);
    assert.equal(noNewPrivileges({ SecurityOpt: ['seccomp=unconfined'] }), false);
  });
});
