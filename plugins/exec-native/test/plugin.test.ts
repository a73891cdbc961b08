import assert from 'node:assert/strict';
import { it } from 'node:test';
import { ExecDriverCapability } from '@tsengine/core';
import plugin from '../src/index.js';

it('declares execdriver "native" and defaults the cgroup parent', () => {
  assert.equal(plugin.name, '@tsengine/exec-native');
  assert.deepEqual(plugin.provides, [{ capability: ExecDriverCapability.name, name: 'native' }]);
  assert.deepEqual(plugin.parseOptions!(undefined), { cgroupParent: 'tsengine', prestart: 1 });
  assert.deepEqual(plugin.parseOptions!({ cgroupParent: 'x/y', prestart: 0 }), { cgroupParent: 'x/y', prestart: 0 });
  assert.throws(() => plugin.parseOptions!({ cgroupParent: 3 }), /cgroupParent must be a string/);
  assert.throws(() => plugin.parseOptions!({ prestart: -1 }), /prestart must be an integer from 0 to 16/);
  assert.throws(() => plugin.parseOptions!({ prestart: '2' }), /prestart must be an integer from 0 to 16/);
});
