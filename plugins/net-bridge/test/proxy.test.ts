import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import net from 'node:net';
import { describe, it } from 'node:test';
import { proxyTcp, proxyUdp } from '../src/proxy.js';

async function tcpEcho(): Promise<net.Server> {
  const server = net.createServer((s) => s.pipe(s));
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

describe('userland proxy', () => {
  it('relays TCP both ways and reports a taken port as EADDRINUSE', async () => {
    const echo = await tcpEcho();
    const target = (echo.address() as net.AddressInfo).port;
    const proxy = await proxyTcp('127.0.0.1', 0, '127.0.0.1', target);
    try {
      assert.ok(proxy.hostPort > 0);
      const reply = await new Promise<string>((resolve, reject) => {
        const client = net.connect(proxy.hostPort, '127.0.0.1', () => client.end('ping'));
        let data = '';
        client.on('data', (c: Buffer) => (data += c.toString()));
        client.on('end', () => resolve(data));
        client.on('error', reject);
      });
      assert.equal(reply, 'ping');
      await assert.rejects(proxyTcp('127.0.0.1', proxy.hostPort, '127.0.0.1', target), (err: NodeJS.ErrnoException) => err.code === 'EADDRINUSE');
    } finally {
      await proxy.close();
      echo.close();
    }
    // Closed means the port is free again.
    const again = await proxyTcp('127.0.0.1', proxy.hostPort, '127.0.0.1', target);
    await again.close();
  });

  it('relays UDP datagrams and their replies', async () => {
    const echo = dgram.createSocket('udp4');
    echo.on('message', (msg, rinfo) => echo.send(Buffer.concat([Buffer.from('re:'), msg]), rinfo.port, rinfo.address));
    await new Promise<void>((r) => echo.bind(0, '127.0.0.1', r));
    const proxy = await proxyUdp('127.0.0.1', 0, '127.0.0.1', echo.address().port);
    const client = dgram.createSocket('udp4');
    try {
      const reply = new Promise<string>((resolve) => client.once('message', (m) => resolve(m.toString())));
      client.send('hi', proxy.hostPort, '127.0.0.1');
      assert.equal(await reply, 're:hi');
    } finally {
      client.close();
      await proxy.close();
      echo.close();
    }
  });
});
