import { randomBytes } from 'node:crypto';
import { invalid } from '@tsengine/core';

const VOLUME_NAME = /^[a-zA-Z0-9][a-zA-Z0-9_.-]*$/;

/** Docker's local volume name rule, with its messages. */
export function validateVolumeName(name: string): void {
  if (name.length === 1) throw invalid('volume name is too short, names should be at least two alphanumeric characters');
  if (!VOLUME_NAME.test(name)) {
    throw invalid(`"${name}" includes invalid characters for a local volume name, only "[a-zA-Z0-9][a-zA-Z0-9_.-]" are allowed. If you intended to pass a host directory, use absolute path`);
  }
}

/** What docker names anonymous volumes: 64 hex characters. */
export function generateVolumeName(): string {
  return randomBytes(32).toString('hex');
}

/** The label docker (v23+) puts on volumes created without a name; prune removes only these by default. */
export const ANONYMOUS_LABEL = 'com.docker.volume.anonymous';
