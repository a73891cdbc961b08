import type { Readable, Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { EngineError, errorMessage } from '@tsengine/core';
import type { Repository } from './endpoint.js';
import { BodyBuffers, TransportError, drained } from './http.js';

export interface RetryPolicy {
  retries: number;
  retryDelayMs: number;
}

export function isRetryable(err: unknown): boolean {
  return err instanceof TransportError;
}

/** Runs `attempt` again after failures in transit, waiting retryDelayMs, then twice that, and so on. */
export async function withRetries<T>(policy: RetryPolicy, signal: AbortSignal, attempt: () => Promise<T>, onRetry?: (err: unknown, next: number) => void): Promise<T> {
  for (let failures = 0; ; failures++) {
    try {
      return await attempt();
    } catch (err) {
      if (!isRetryable(err) || failures >= policy.retries || signal.aborted) throw err;
      onRetry?.(err, failures + 1);
      await sleep(policy.retryDelayMs * 2 ** failures, undefined, { signal }).catch(() => {
        throw new EngineError('cancelled', 'pull cancelled');
      });
    }
  }
}

export interface BlobDescriptor {
  digest: string;
  size: number;
}

export interface DownloadOptions {
  /**
   * `into` copies each chunk before it calls back (a gunzip worker's stream copies into its ring):
   * the body's buffers are then read into again instead of new ones.
   */
  intoCopies?: boolean;
  onBytes?: (bytes: number) => void;
  onRetry?: (err: unknown) => void;
  /** Every byte is in and the size and digest are right; `into` is being ended. */
  onVerified?: () => void;
}

/**
 * Writes a blob into `into`, checked against its descriptor on the way: too many bytes fail at once,
 * a wrong digest at the end. `into` is ended only once the blob checks out, and destroyed with the
 * error otherwise, so its reader (a decompressor, an extractor) never reaches the end of unverified
 * content. A download cut short is resumed where it stopped: with a Range request when the registry
 * honours it, otherwise by fetching the blob again and skipping what was already written. `into`
 * never gets a byte twice. `into` hashes what it is written (a layer's gunzip stream on its thread,
 * a config's collector here); `digestOfWritten` is asked once every write has called back.
 */
export function downloadBlob(
  repo: Repository,
  desc: BlobDescriptor,
  policy: RetryPolicy,
  signal: AbortSignal,
  into: Writable,
  digestOfWritten: () => Promise<string>,
  options: DownloadOptions = {},
): void {
  const buffers = options.intoCopies ? new BodyBuffers() : undefined;
  let delivered = 0;
  let unwritten = 0;
  let allWritten: (() => void) | undefined;
  /** Writes one piece of body (or the part of it past what was skipped); the piece goes back once written. */
  const deliver = async (piece: Buffer, chunk: Buffer): Promise<void> => {
    delivered += chunk.length;
    if (delivered > desc.size) throw new EngineError('invalid', `blob ${desc.digest} is larger than its descriptor says (${desc.size} bytes)`);
    options.onBytes?.(delivered);
    unwritten++;
    into.write(chunk, () => {
      buffers?.giveBack(piece);
      if (--unwritten === 0) allWritten?.();
    });
    if (into.writableNeedDrain) await drained(into);
  };
  /** Once every write has called back, or `into` closed (a destroyed stream may never call back). */
  const writtenOrClosed = (): Promise<void> =>
    new Promise((resolve) => {
      if (unwritten === 0) return resolve();
      allWritten = resolve;
      into.once('close', resolve);
    });
  const once_ = async (): Promise<void> => {
    const { body, partial } = await repo.blob(desc.digest, delivered, buffers);
    let skip = partial ? 0 : delivered;
    try {
      await eachPiece(body, async (piece) => {
        if (into.destroyed) return false;
        let chunk = piece;
        if (skip > 0) {
          const dropped = Math.min(skip, chunk.length);
          skip -= dropped;
          chunk = chunk.subarray(dropped);
          if (chunk.length === 0) {
            buffers?.giveBack(piece);
            return true;
          }
        }
        await deliver(piece, chunk);
        return true;
      });
    } catch (err) {
      if (err instanceof EngineError && !(err instanceof TransportError)) throw err;
      throw new TransportError(`fetching blob ${desc.digest}: the download broke off after ${delivered} of ${desc.size} bytes: ${errorMessage(err)}`, { cause: err });
    }
    if (into.destroyed) return;
    if (delivered < desc.size) throw new TransportError(`fetching blob ${desc.digest}: the download ended after ${delivered} of ${desc.size} bytes`);
  };
  withRetries(policy, signal, once_, options.onRetry)
    .then(async () => {
      if (into.destroyed) return;
      await writtenOrClosed();
      if (into.destroyed) return;
      const actual = await digestOfWritten();
      if (actual !== desc.digest) throw new EngineError('invalid', `digest mismatch for blob ${desc.digest}: the registry sent content with digest ${actual}`);
      options.onVerified?.();
      into.end();
    })
    .catch((err: unknown) => into.destroy(err instanceof Error ? err : new Error(String(err))));
}

/**
 * Hands `use` each piece the body pushed, one at a time, until it answers false. Flowing mode keeps
 * the pieces as they were pushed (an async iterator may join them into a new buffer). Settles only
 * once the piece in hand is through, so a retry never overlaps it.
 */
function eachPiece(body: Readable, use: (piece: Buffer) => Promise<boolean>): Promise<void> {
  return new Promise((resolve, reject) => {
    let inHand: Promise<unknown> = Promise.resolve();
    let settled = false;
    const settle = (err?: unknown) => {
      if (settled) return;
      settled = true;
      body.off('data', onData);
      void inHand.then(() => (err === undefined ? resolve() : reject(err)));
    };
    const onData = (piece: Buffer) => {
      body.pause();
      inHand = use(piece).then(
        (more) => {
          if (settled) return;
          if (more) body.resume();
          else {
            settle();
            body.destroy();
          }
        },
        (err: unknown) => {
          settle(err);
          body.destroy();
        },
      );
    };
    body.on('data', onData);
    body.once('end', () => settle());
    body.once('error', (err) => settle(err));
    body.once('close', () => settle(new Error('the body closed before its end')));
  });
}
