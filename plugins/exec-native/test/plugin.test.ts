import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ExecDriverCapability } from '@tsengine/core';
import plugin from '../src/index.js';

it('declares execdriver "native" and defaults the cgroup parent', () => {
  assert.equal(plugin.name, '@tsengine/exec-native');
  assert.deepEqual(plugin.provides, [{ capability: ExecDriverCapability.name, name: 'native' }]);
  assert.deepEqual(plugin.parseOptions!(undefined), { cgroupParent: 'tsengine' });
  assert.deepEqual(plugin.parseOptions!({ cgroupParent: 'x/y' }), { cgroupParent: 'x/y' });
  assert.throws(() => plugin.parseOptions!({ cgroupParent: 3 }), /cgroupParent must be a string/);
});
