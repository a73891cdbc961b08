import koffi from 'koffi';

const Z_OK = 0;
const Z_STREAM_END = 1;
const Z_NEED_DICT = 2;
const Z_BUF_ERROR = -5;
const Z_NO_FLUSH = 0;
/** windowBits for inflateInit2: the largest window, gzip framing only (16 + 15). */
const GZIP_WINDOW_BITS = 31;

const zStream = koffi.struct('tsengine_z_stream', {
  next_in: 'void *',
  avail_in: 'uint',
  total_in: 'ulong',
  next_out: 'void *',
  avail_out: 'uint',
  total_out: 'ulong',
  msg: 'const char *',
  state: 'void *',
  zalloc: 'void *',
  zfree: 'void *',
  opaque: 'void *',
  data_type: 'int',
  adler: 'ulong',
  reserved: 'ulong',
});
const Z_STREAM_SIZE = koffi.sizeof(zStream);
const OFFSET = {
  nextIn: koffi.offsetof(zStream, 'next_in'),
  availIn: koffi.offsetof(zStream, 'avail_in'),
  nextOut: koffi.offsetof(zStream, 'next_out'),
  availOut: koffi.offsetof(zStream, 'avail_out'),
};

interface Libz {
  version: string;
  inflateInit2: (strm: Buffer, windowBits: number, version: string, size: number) => number;
  inflate: (strm: Buffer, flush: number) => number;
  inflateReset: (strm: Buffer) => number;
  inflateValidate: (strm: Buffer, check: number) => number;
  inflateEnd: (strm: Buffer) => number;
}

let libz: Libz | undefined;

/**
 * zlib, found on first use. Node carries its own zlib and exports its symbols to addons; where it does,
 * that is the one to call, because a separately loaded libz.so.1 would have its internal calls bound to
 * Node's copy (a different build, with different internal structures) and corrupt memory. Only a
 * Node without them falls back to the system's libz.so.1.
 */
function load(): Libz {
  if (libz) return libz;
  let lib: koffi.IKoffiLib;
  try {
    lib = koffi.load(null);
    lib.func('const char *zlibVersion()');
  } catch {
    try {
      lib = koffi.load('libz.so.1');
    } catch (err) {
      throw new Error(`gzip layers need zlib: this Node does not export its own, and libz.so.1 could not be loaded: ${(err as Error).message}`);
    }
  }
  const zlibVersion = lib.func('const char *zlibVersion()') as () => string;
  libz = {
    version: zlibVersion(),
    inflateInit2: lib.func('int inflateInit2_(void *strm, int windowBits, const char *version, int stream_size)') as Libz['inflateInit2'],
    inflate: lib.func('int inflate(void *strm, int flush)') as Libz['inflate'],
    inflateReset: lib.func('int inflateReset(void *strm)') as Libz['inflateReset'],
    inflateValidate: lib.func('int inflateValidate(void *strm, int check)') as Libz['inflateValidate'],
    inflateEnd: lib.func('int inflateEnd(void *strm)') as Libz['inflateEnd'],
  };
  return libz;
}

export interface InflateStep {
  /** Input bytes consumed. */
  read: number;
  /** Output bytes produced. */
  written: number;
  /** The gzip member ended here (its trailer's CRC and length checked, unless told not to); more input would be a new member. */
  memberEnded: boolean;
}

/**
 * Streaming gzip decompression through zlib's C interface, into buffers the caller owns. Node's own
 * zlib hands every output chunk back in a fresh buffer through the thread pool; this runs on the
 * calling thread (a worker's) and allocates nothing per call.
 */
export class GzipInflater {
  private readonly lib = load();
  /** The z_stream itself: zlib keeps a pointer back to it, and a Buffer's memory never moves. */
  private readonly strm = Buffer.alloc(Z_STREAM_SIZE);
  private closed = false;

  /**
   * `checkCrc: false` leaves out the CRC-32 of the output and the length in the trailer, for a caller
   * that checks the output's sha256 against a digest it already trusts (a layer's diff ID): the CRC
   * was a tenth of the gunzip thread's time on a pull, and told nothing the digest does not.
   */
  constructor(private readonly options: { checkCrc?: boolean } = {}) {
    const rc = this.lib.inflateInit2(this.strm, GZIP_WINDOW_BITS, this.lib.version, Z_STREAM_SIZE);
    if (rc !== Z_OK) throw new Error(`gzip: inflateInit2 failed (${rc})`);
    this.setValidation();
  }

  private setValidation(): void {
    if (this.options.checkCrc !== false) return;
    const rc = this.lib.inflateValidate(this.strm, 0);
    if (rc !== Z_OK) throw new Error(`gzip: inflateValidate failed (${rc})`);
  }

  /** Inflates from `input` into `output` until one of them is exhausted or the member ends. */
  inflate(input: Uint8Array, output: Uint8Array): InflateStep {
    if (this.closed) throw new Error('gzip: the inflater is closed');
    const strm = this.strm;
    strm.writeBigUInt64LE(koffi.address(input) as bigint, OFFSET.nextIn);
    strm.writeUInt32LE(input.length, OFFSET.availIn);
    strm.writeBigUInt64LE(koffi.address(output) as bigint, OFFSET.nextOut);
    strm.writeUInt32LE(output.length, OFFSET.availOut);
    const rc = this.lib.inflate(strm, Z_NO_FLUSH);
    const read = input.length - strm.readUInt32LE(OFFSET.availIn);
    const written = output.length - strm.readUInt32LE(OFFSET.availOut);
    // Nothing pointing into the caller's memory outlives the call.
    strm.writeBigUInt64LE(0n, OFFSET.nextIn);
    strm.writeBigUInt64LE(0n, OFFSET.nextOut);
    if (rc === Z_OK || rc === Z_BUF_ERROR) return { read, written, memberEnded: false };
    if (rc === Z_STREAM_END) return { read, written, memberEnded: true };
    if (rc === Z_NEED_DICT) throw new Error('gzip: the data asks for a preset dictionary, which gzip does not have');
    const msg = (koffi.decode(strm, zStream) as { msg: string | null }).msg;
    throw new Error(`gzip: ${msg ?? `inflate failed (${rc})`}`);
  }

  /** Starts over for the next gzip member of a multi-member stream. */
  reset(): void {
    const rc = this.lib.inflateReset(this.strm);
    if (rc !== Z_OK) throw new Error(`gzip: inflateReset failed (${rc})`);
    this.setValidation();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.lib.inflateEnd(this.strm);
  }
}
