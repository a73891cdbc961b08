import { invalid } from '@tsengine/core';

/** What the json-file driver does with a container's --log-opt values. */
export interface JsonFileOptions {
  /** Bytes a file may reach before the next entry rotates it; -1 = never rotate. */
  maxSize: number;
  /** Files kept, the current one included (1 = the current file is truncated at rotation). */
  maxFile: number;
  /** Rotated files are gzip-compressed as <id>-json.log.N.gz. */
  compress: boolean;
}

export const DEFAULT_OPTIONS: JsonFileOptions = { maxSize: -1, maxFile: 1, compress: false };

/**
 * Options the driver accepts. labels, labels-regex, env, env-regex and tag are Docker's shared
 * "attrs" options: accepted and ignored (no attrs are added to the lines). mode and
 * max-buffer-size are the daemon's own delivery options, which Docker checks before the driver.
 */
const KNOWN = new Set(['max-size', 'max-file', 'compress', 'labels', 'labels-regex', 'env', 'env-regex', 'tag', 'mode', 'max-buffer-size']);

/** Go's strconv.ParseFloat syntax for the plain decimal forms Docker's size parser can meet. */
const GO_FLOAT = /^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$/;

const DECIMAL_UNITS: Record<string, number> = { k: 1e3, m: 1e6, g: 1e9, t: 1e12, p: 1e15 };
const BINARY_UNITS: Record<string, number> = { k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * Docker's go-units size parser: a number, an optional space, and an optional unit of k, m, g, t
 * or p with an optional "b" (or "ib"), case-insensitive; negative sizes are refused. max-size uses
 * the decimal units (FromHumanSize: 1k = 1000 bytes), max-buffer-size the binary ones.
 */
export function parseSize(text: string, binary = false): number {
  let sep = -1;
  for (let i = text.length - 1; i >= 0; i--) {
    if ('0123456789. '.includes(text[i]!)) {
      sep = i;
      break;
    }
  }
  if (sep === -1) throw invalid(`invalid size: '${text}'`);
  const num = text[sep] === ' ' ? text.slice(0, sep) : text.slice(0, sep + 1);
  let suffix = text.slice(sep + 1);
  if (!GO_FLOAT.test(num)) throw invalid(`strconv.ParseFloat: parsing ${JSON.stringify(num)}: invalid syntax`);
  let size = Number(num);
  if (size < 0) throw invalid(`invalid size: '${text}'`);
  if (suffix === '') return Math.trunc(size);
  const badSuffix = () => invalid(`invalid suffix: '${suffix}'`);
  if (suffix.length > 3) throw badSuffix();
  suffix = suffix.toLowerCase();
  if (suffix[0] === 'b') {
    if (suffix.length > 1) throw badSuffix();
    return Math.trunc(size);
  }
  const unit = (binary ? BINARY_UNITS : DECIMAL_UNITS)[suffix[0]!];
  if (unit === undefined) throw badSuffix();
  if ((suffix.length === 2 && suffix[1] !== 'b') || (suffix.length === 3 && suffix.slice(1) !== 'ib')) throw badSuffix();
  size *= unit;
  return Math.trunc(size);
}

/** Go's strconv.Atoi for the values Docker reads as integers. */
function parseInteger(text: string): number {
  if (!/^[+-]?\d+$/.test(text)) throw invalid(`strconv.Atoi: parsing ${JSON.stringify(text)}: invalid syntax`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw invalid(`strconv.Atoi: parsing ${JSON.stringify(text)}: value out of range`);
  return n;
}

/** Go's strconv.ParseBool. */
function parseBool(text: string): boolean {
  if (['1', 't', 'T', 'TRUE', 'true', 'True'].includes(text)) return true;
  if (['0', 'f', 'F', 'FALSE', 'false', 'False'].includes(text)) return false;
  throw invalid(`strconv.ParseBool: parsing ${JSON.stringify(text)}: invalid syntax`);
}

/**
 * Docker's json-file option checks with its messages. Docker refuses unknown keys at create and bad
 * values when the container starts; tsengine refuses both at create, so nothing is created that
 * cannot start. As in Docker, max-file without max-size is accepted and has no effect.
 */
export function parseJsonFileOptions(raw: Record<string, string> | undefined): JsonFileOptions {
  const config = raw ?? {};
  for (const key of Object.keys(config)) {
    if (!KNOWN.has(key)) throw invalid(`unknown log opt '${key}' for json-file log driver`);
  }
  const mode = config['mode'] ?? '';
  if (!['', 'blocking', 'non-blocking'].includes(mode)) throw invalid(`logger: logging mode not supported: ${mode}`);
  const maxBuffer = config['max-buffer-size'];
  if (maxBuffer !== undefined) {
    if (mode !== 'non-blocking') throw invalid("logger: max-buffer-size option is only supported with 'mode=non-blocking'");
    try {
      parseSize(maxBuffer, true);
    } catch (err) {
      throw invalid(`error parsing option max-buffer-size: ${(err as Error).message}`);
    }
  }
  let maxSize = -1;
  const sizeText = config['max-size'];
  if (sizeText !== undefined) {
    maxSize = parseSize(sizeText);
    if (maxSize <= 0) throw invalid('max-size must be a positive number');
  }
  let maxFile = 1;
  const fileText = config['max-file'];
  if (fileText !== undefined) {
    maxFile = parseInteger(fileText);
    if (maxFile < 1) throw invalid('max-file cannot be less than 1');
  }
  let compress = false;
  const compressText = config['compress'];
  if (compressText !== undefined) {
    compress = parseBool(compressText);
    if (compress && (maxFile === 1 || maxSize === -1)) throw invalid('compress cannot be true when max-file is less than 2 or max-size is not set');
  }
  return { maxSize, maxFile, compress };
}
