/**
 * The gunzip worker's program (see gunzip-worker.ts for the protocol's other side). For each stream it
 * inflates the compressed bytes the main thread copied into the stream's ring, hashes the output (the
 * layer's diff ID) and, where asked, the input (the blob's digest), and hands the output over in
 * chunks whose memory moves to the main thread without a copy. It produces only as many chunks as the
 * main thread has asked for, so a gzip bomb stalls here instead of filling memory.
 */
import { type Hash, createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';
import { GzipInflater } from '@tsengine/linux';
import { type FromGunzipThread, GUNZIP_OUTPUT_BYTES, type ToGunzipThread } from './gunzip-protocol.js';
import type { RingSlice } from './shared-ring.js';

interface Stream {
  ring: Uint8Array;
  /** 'sniff' until the first two bytes show whether the input is gzip (only for streams opened plainToo). */
  kind: 'sniff' | 'gzip' | 'plain';
  inflater: GzipInflater;
  /** Of the output (the tar). */
  hash: Hash;
  /** Of the input, as it arrives (a registry blob's digest), when the stream was opened hashInput. */
  inputHash: Hash | undefined;
  queue: RingSlice[];
  /** Bytes of queue[0] already inflated. */
  consumed: number;
  ended: boolean;
  /** Output chunks the main thread has room for. */
  credit: number;
  out: Uint8Array | undefined;
  outLength: number;
  /** Inside a gzip member: input ending here would be a truncated stream. */
  inMember: boolean;
  members: number;
  /** Ring bytes inflated and not yet handed back. */
  released: number;
}

const port = parentPort!;
const streams = new Map<number, Stream>();

function send(message: FromGunzipThread, transfer?: ArrayBuffer[]): void {
  port.postMessage(message, transfer);
}

function emit(id: number, stream: Stream): void {
  const out = stream.out!;
  stream.hash.update(out.subarray(0, stream.outLength));
  send({ op: 'output', id, data: out.buffer as ArrayBuffer, length: stream.outLength, released: stream.released }, [out.buffer as ArrayBuffer]);
  stream.released = 0;
  stream.credit--;
  stream.out = undefined;
  stream.outLength = 0;
}

function finish(id: number, stream: Stream): void {
  if (stream.kind !== 'plain' && (stream.inMember || stream.members === 0)) throw new Error('gzip: unexpected end of data (the layer is truncated)');
  if (stream.outLength > 0) emit(id, stream);
  streams.delete(id);
  stream.inflater.close();
  send({ op: 'done', id, digest: 'sha256:' + stream.hash.digest('hex') });
}

/** Settles a 'sniff' stream's kind once two bytes (or the end) are in; false while it must wait. */
function sniff(stream: Stream): boolean {
  const head: number[] = [];
  for (const slice of stream.queue) {
    for (let i = 0; i < slice.length && head.length < 2; i++) head.push(stream.ring[slice.at + i]!);
    if (head.length === 2) break;
  }
  if (head.length < 2 && !stream.ended) return false;
  stream.kind = head[0] === 0x1f && head[1] === 0x8b ? 'gzip' : 'plain';
  return true;
}

/** Inflates (or, for plain input, copies) what has arrived, as far as the credit allows. */
function pump(id: number, stream: Stream): void {
  if (stream.kind === 'sniff' && !sniff(stream)) return;
  for (;;) {
    const slice = stream.queue[0];
    if (!slice) {
      if (stream.ended && (stream.credit > 0 || stream.outLength === 0)) finish(id, stream);
      return;
    }
    if (!stream.out) {
      if (stream.credit === 0) return;
      // Not zero-filled: zlib writes every byte that is handed over.
      stream.out = Buffer.allocUnsafeSlow(GUNZIP_OUTPUT_BYTES);
    }
    if (stream.kind === 'plain') {
      const length = Math.min(slice.length - stream.consumed, stream.out.length - stream.outLength);
      stream.out.set(stream.ring.subarray(slice.at + stream.consumed, slice.at + stream.consumed + length), stream.outLength);
      stream.consumed += length;
      stream.outLength += length;
      if (stream.consumed === slice.length) {
        stream.queue.shift();
        stream.consumed = 0;
        stream.released += slice.release;
      }
      if (stream.outLength === stream.out.length) emit(id, stream);
      continue;
    }
    if (!stream.inMember) {
      // Bytes after a member are another member (as gzip and docker read them), or an error.
      stream.inflater.reset();
      stream.inMember = true;
    }
    const input = stream.ring.subarray(slice.at + stream.consumed, slice.at + slice.length);
    const step = stream.inflater.inflate(input, stream.out.subarray(stream.outLength));
    stream.consumed += step.read;
    stream.outLength += step.written;
    if (step.memberEnded) {
      stream.inMember = false;
      stream.members++;
    }
    if (stream.consumed === slice.length) {
      stream.queue.shift();
      stream.consumed = 0;
      stream.released += slice.release;
    }
    if (stream.outLength === stream.out.length) emit(id, stream);
    else if (step.read === 0 && step.written === 0 && !step.memberEnded) throw new Error('gzip: the decompressor made no progress');
  }
}

function run(id: number, stream: Stream): void {
  try {
    pump(id, stream);
  } catch (err) {
    streams.delete(id);
    stream.inflater.close();
    send({ op: 'error', id, message: (err as Error).message });
    return;
  }
  if (stream.released > 0 && streams.has(id)) {
    send({ op: 'release', id, bytes: stream.released });
    stream.released = 0;
  }
}

port.on('message', (message: ToGunzipThread) => {
  if (message.op === 'open') {
    let inflater: GzipInflater;
    try {
      inflater = new GzipInflater({ checkCrc: message.checkCrc });
    } catch (err) {
      send({ op: 'error', id: message.id, message: (err as Error).message });
      return;
    }
    streams.set(message.id, {
      ring: new Uint8Array(message.ring),
      kind: message.plainToo ? 'sniff' : 'gzip',
      inflater,
      hash: createHash('sha256'),
      inputHash: message.hashInput ? createHash('sha256') : undefined,
      queue: [],
      consumed: 0,
      ended: false,
      credit: 0,
      out: undefined,
      outLength: 0,
      inMember: true,
      members: 0,
      released: 0,
    });
    return;
  }
  const stream = streams.get(message.id);
  if (!stream) return; // failed or closed already; late messages are moot
  switch (message.op) {
    case 'input':
      for (const slice of message.slices) stream.inputHash?.update(stream.ring.subarray(slice.at, slice.at + slice.length));
      stream.queue.push(...message.slices);
      break;
    case 'input-digest': {
      // Messages arrive in order: every input message of this stream so far has been hashed.
      const digest = stream.inputHash ? 'sha256:' + stream.inputHash.digest('hex') : '';
      stream.inputHash = undefined;
      send({ op: 'input-digest', id: message.id, digest });
      return;
    }
    case 'end':
      stream.ended = true;
      break;
    case 'credit':
      stream.credit += message.chunks;
      break;
    case 'close':
      streams.delete(message.id);
      stream.inflater.close();
      return;
  }
  run(message.id, stream);
});
