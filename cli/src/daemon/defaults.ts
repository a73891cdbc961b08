/** The daemon's defaults (kept free of imports so that client commands load fast). */

export const DEFAULT_PLUGINS = [
  '@tsengine/api-server',
  '@tsengine/system',
  '@tsengine/images',
  '@tsengine/registry-v2',
  '@tsengine/graphdriver-overlay',
  '@tsengine/graphdriver-vfs',
  '@tsengine/exec-native',
  '@tsengine/logdriver-json-file',
  '@tsengine/networks',
  '@tsengine/net-bridge',
  '@tsengine/net-host',
  '@tsengine/volume-local',
  '@tsengine/containers',
  '@tsengine/builder',
];

export const DEFAULTS = {
  dataRoot: '/var/lib/tsengine',
  execRoot: '/run/tsengine',
  host: 'unix:///run/tsengine/tsengine.sock',
  logLevel: 'info',
};

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];
