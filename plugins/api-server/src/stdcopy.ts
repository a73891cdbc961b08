import { Writable } from 'node:stream';

/** Docker's multiplexed stream ids for non-TTY attach/logs/exec output. */
export const StdStream = { stdin: 0, stdout: 1, stderr: 2 } as const;
export type StdStreamId = (typeof StdStream)[keyof typeof StdStream];

/** One stdcopy frame: `[stream][0,0,0][uint32 BE length]` then the payload. */
export function stdcopyFrame(stream: StdStreamId, payload: Uint8Array): Buffer {
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

/** A Writable that frames every chunk written to it as one stream's output and writes it to `out` (which it never ends). */
export function stdcopyWriter(out: Writable, stream: StdStreamId): Writable {
  return new Writable({
    write(chunk: Buffer, _encoding, done) {
      if (chunk.length === 0) return done();
      if (out.write(stdcopyFrame(stream, chunk))) done();
      else out.once('drain', () => done());
    },
  });
}
