import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';

/**
 * Returns the stream's content, gunzipped when it starts with gzip's magic (1f 8b). Reads only
 * the first bytes to decide; everything is streamed.
 */
export async function decompressed(input: Readable): Promise<Readable> {
  const head = await readHead(input, 2);
  const isGzip = head.length >= 2 && head[0] === 0x1f && head[1] === 0x8b;
  // Large buffers: a layer's chunks (256 KiB and up) would otherwise stall this hop on each one.
  const out = isGzip ? createGunzip({ chunkSize: 256 * 1024 }) : new PassThrough({ highWaterMark: 1024 * 1024 });
  out.write(head);
  pipeline(input, out).catch((err: unknown) => out.destroy(err as Error));
  return out;
}

async function readHead(input: Readable, size: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  while (length < size) {
    const chunk = input.read() as Buffer | string | null;
    if (chunk !== null) {
      const buf = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
      chunks.push(buf);
      length += buf.length;
      continue;
    }
    if (input.readableEnded || input.destroyed) break;
    const ended = await new Promise<boolean>((resolve, reject) => {
      const cleanup = () => {
        input.off('readable', onReadable);
        input.off('end', onEnd);
        input.off('error', onError);
        input.off('close', onClose);
      };
      const onReadable = () => (cleanup(), resolve(false));
      const onEnd = () => (cleanup(), resolve(true));
      const onError = (err: Error) => (cleanup(), reject(err));
      // Destroyed without an error (its consumer gave up): nothing more will come.
      const onClose = () => (cleanup(), reject(new Error('the layer stream was closed before its first bytes')));
      input.on('readable', onReadable);
      input.on('end', onEnd);
      input.on('error', onError);
      input.on('close', onClose);
    });
    if (ended) break;
  }
  return Buffer.concat(chunks);
}
