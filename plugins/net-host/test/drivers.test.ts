import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SandboxOnlyDriver } from '../src/index.js';

describe('host and null drivers', () => {
  it('give sandboxes without endpoints and take no options', async () => {
    const host = new SandboxOnlyDriver('host', 'host');
    assert.equal(host.sandbox, 'host');
    assert.throws(() => host.validateOptions({ a: 'b' }), /the host driver takes no options/);
    await assert.rejects(host.join(), /the host network has no endpoints/);
    await host.up();
    await host.down();
    await host.leave();
    assert.equal(new SandboxOnlyDriver('null', 'none').sandbox, 'none');
  });
});
