/** The tsengine release, reported by `version`/`info` (kept here so that a bundled CLI needs no package.json). */
export const TSENGINE_VERSION = '0.1.0';
export { API_VERSION } from '@tsengine/core';
