import { Readable } from 'node:stream';

/** The small part of a streamx Writable (tar-stream's) that feeding needs. */
export interface StreamxSink {
  write(chunk: Buffer): boolean;
  end(data?: unknown): unknown;
  destroy(err?: Error): void;
  once(event: 'drain' | 'close', fn: () => void): unknown;
  off(event: 'drain' | 'close', fn: () => void): unknown;
  destroyed: boolean;
}

/** Writes a Node stream into a streamx writable with backpressure; errors destroy the sink. */
export async function feed(source: AsyncIterable<Buffer | string>, sink: StreamxSink): Promise<void> {
  try {
    for await (const chunk of source) {
      if (sink.destroyed) throw new Error('stream closed');
      if (!sink.write(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)) await drained(sink);
    }
    sink.end();
  } catch (err) {
    sink.destroy(err as Error);
    throw err;
  }
}

function drained(sink: StreamxSink): Promise<void> {
  return new Promise((resolve, reject) => {
    const onDrain = () => {
      sink.off('close', onClose);
      resolve();
    };
    const onClose = () => {
      sink.off('drain', onDrain);
      reject(new Error('stream closed'));
    };
    sink.once('drain', onDrain);
    sink.once('close', onClose);
  });
}

/** A Node byte stream over tar-stream's (streamx) output, for callers that expect node:stream. */
export function toNodeReadable(source: AsyncIterable<unknown>): Readable {
  return Readable.from(source, { objectMode: false });
}
