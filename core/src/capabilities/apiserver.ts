import { defineCapability } from './capability.js';

/** A front end that serves the engine's jobs over some protocol (the Docker Engine API, …). */
export interface ApiServer {
  readonly name: string;
  /** Starts listening on each address (unix:///path or tcp://host:port); resolves once all listen. */
  listen(hosts: string[]): Promise<void>;
  close(): Promise<void>;
}

export const ApiServerCapability = defineCapability<ApiServer>('apiserver', { mode: 'many' });
