import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { humanDuration } from '@tsengine/core';
import { DEFAULT_PATH, commandOf, mergeConfig, processEnv, validateName } from '../src/config.js';

const ID = 'ab'.repeat(32);

describe('container config merge', () => {
  it('takes Cmd, Env, WorkingDir and User from the image where the body has none', () => {
    const config = mergeConfig({ Image: 'x', Env: ['A=own', 'C=3'] }, { Cmd: ['sh'], Env: ['A=img', 'B=2'], WorkingDir: '/w', User: 'nobody' }, ID);
    assert.deepEqual(config.Cmd, ['sh']);
    assert.deepEqual(config.Env, ['A=own', 'B=2', 'C=3']);
    assert.equal(config.WorkingDir, '/w');
    assert.equal(config.User, 'nobody');
    assert.equal(config.Hostname, ID.slice(0, 12));
    assert.deepEqual(commandOf(config), ['sh']);
  });

  it("drops the image's Cmd when the body sets an Entrypoint", () => {
    const config = mergeConfig({ Image: 'x', Entrypoint: ['/bin/echo'] }, { Cmd: ['sh'], Entrypoint: ['/init'] }, ID);
    assert.deepEqual(commandOf(config), ['/bin/echo']);
  });

  it('refuses a container without a command', () => {
    assert.throws(() => commandOf(mergeConfig({ Image: 'x' }, {}, ID)), /no command specified/);
  });

  it('adds PATH, HOSTNAME and TERM (with a TTY) to the process environment', () => {
    assert.deepEqual(processEnv({ Hostname: 'h', Tty: true, Env: ['X=1'] }), [DEFAULT_PATH, 'HOSTNAME=h', 'TERM=xterm', 'X=1']);
    assert.deepEqual(processEnv({ Hostname: 'h', Env: ['PATH=/bin'] }), ['HOSTNAME=h', 'PATH=/bin']);
  });

  it("checks names with Docker's rule and formats durations like Docker", () => {
    assert.equal(validateName('web-1'), '/web-1');
    assert.throws(() => validateName('-bad'), /Invalid container name \(-bad\)/);
    assert.equal(humanDuration(500), 'Less than a second');
    assert.equal(humanDuration(30_000), '30 seconds');
    assert.equal(humanDuration(90_000), 'About a minute');
    assert.equal(humanDuration(3 * 3600_000), '3 hours');
  });
});
