import { EngineError } from '@tsengine/core';

export type ListenAddress = { kind: 'unix'; path: string; uri: string } | { kind: 'tcp'; host: string; port: number; uri: string };

/** `unix:///path` or `tcp://host:port` (port 2375 when omitted), as dockerd's -H takes them. */
export function parseHost(uri: string): ListenAddress {
  if (uri.startsWith('unix://')) {
    const path = uri.slice('unix://'.length);
    if (!path.startsWith('/')) throw new EngineError('invalid', `invalid host ${uri}: a unix socket needs an absolute path (unix:///run/tsengine/tsengine.sock)`);
    return { kind: 'unix', path, uri };
  }
  if (uri.startsWith('tcp://')) {
    let url: URL;
    try {
      url = new URL(uri);
    } catch {
      throw new EngineError('invalid', `invalid host ${uri}: expected tcp://HOST:PORT`);
    }
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1') || '127.0.0.1';
    const port = url.port === '' ? 2375 : Number(url.port);
    return { kind: 'tcp', host, port, uri };
  }
  throw new EngineError('invalid', `invalid host ${uri}: only unix:///path and tcp://host:port are supported`);
}
