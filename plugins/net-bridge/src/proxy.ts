import dgram from 'node:dgram';
import net from 'node:net';

/** One published port: the daemon listens on the host and relays to the container (Docker's userland proxy). */
export interface PortProxy {
  readonly hostIp: string;
  readonly hostPort: number;
  close(): Promise<void>;
}

const UDP_IDLE_MS = 60_000;

/** Listens on hostIp:hostPort (0 = any free port); rejects with the listen error (EADDRINUSE …). */
export async function proxyTcp(hostIp: string, hostPort: number, targetIp: string, targetPort: number): Promise<PortProxy> {
  const sockets = new Set<net.Socket>();
  // Half-open on both sides, so a client that sends and then shuts its side down still gets the answer.
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ host: targetIp, port: targetPort, allowHalfOpen: true });
    sockets.add(client);
    sockets.add(upstream);
    const drop = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on('error', drop);
    upstream.on('error', drop);
    client.on('close', () => {
      sockets.delete(client);
      upstream.end();
    });
    upstream.on('close', () => {
      sockets.delete(upstream);
      client.end();
    });
    client.pipe(upstream);
    upstream.pipe(client);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: hostIp, port: hostPort, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as net.AddressInfo;
  return {
    hostIp,
    hostPort: address.port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        sockets.clear();
        server.close(() => resolve());
      }),
  };
}

/** Relays datagrams; each client address gets its own upstream socket, dropped after a minute of silence. */
export async function proxyUdp(hostIp: string, hostPort: number, targetIp: string, targetPort: number): Promise<PortProxy> {
  const server = dgram.createSocket({ type: 'udp4', reuseAddr: false });
  const flows = new Map<string, { socket: dgram.Socket; timer: NodeJS.Timeout }>();
  const forget = (key: string) => {
    const flow = flows.get(key);
    if (!flow) return;
    clearTimeout(flow.timer);
    flow.socket.close();
    flows.delete(key);
  };
  server.on('message', (msg, rinfo) => {
    const key = `${rinfo.address}:${rinfo.port}`;
    let flow = flows.get(key);
    if (!flow) {
      const socket = dgram.createSocket('udp4');
      socket.on('message', (reply) => server.send(reply, rinfo.port, rinfo.address));
      socket.on('error', () => forget(key));
      flow = { socket, timer: setTimeout(() => forget(key), UDP_IDLE_MS) };
      flows.set(key, flow);
    }
    flow.timer.refresh();
    flow.socket.send(msg, targetPort, targetIp);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.bind({ address: hostIp, port: hostPort, exclusive: true }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', () => undefined);
  return {
    hostIp,
    hostPort: server.address().port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const key of [...flows.keys()]) forget(key);
        server.close(() => resolve());
      }),
  };
}
