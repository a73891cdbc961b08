/** Daemon-wide settings every plugin may read (paths it owns live under dataRoot/execRoot). */
export interface DaemonSettings {
  /** Persistent state: images, layers, containers, volumes, networks. */
  dataRoot: string;
  /** Runtime state that dies with the machine: sockets, pid file, mounts. */
  execRoot: string;
  /** API endpoints, e.g. unix:///run/tsengine/tsengine.sock or tcp://127.0.0.1:2375. */
  hosts: string[];
  logLevel: string;
  pidfile: string;
  /** The tsengine version, for version/info. */
  version: string;
}

export const DaemonSettingsToken = Symbol.for('tsengine.settings');
export const EngineToken = Symbol.for('tsengine.engine');
export const LoggerToken = Symbol.for('tsengine.logger');
