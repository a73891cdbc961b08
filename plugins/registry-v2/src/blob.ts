import type { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { EngineError, errorMessage } from '@tsengine/core';
import type { DigestWorker } from '@tsengine/images';
import type { Repository } from './endpoint.js';
import { TransportError, drained } from './http.js';
import { VerifyingStream } from './verify.js';

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

/**
 * A blob as one stream, checked against its descriptor on the way through. A download cut short is
 * resumed where it stopped: with a Range request when the registry honours it, otherwise by fetching
 * the blob again and skipping what was already passed on. The consumer never sees a byte twice.
 */
export function downloadBlob(
  digests: DigestWorker,
  repo: Repository,
  desc: BlobDescriptor,
  policy: RetryPolicy,
  signal: AbortSignal,
  onBytes?: (bytes: number) => void,
  onRetry?: (err: unknown) => void,
  bufferBytes?: number,
): Readable {
  const verify = new VerifyingStream(digests, desc.digest, desc.size, onBytes, bufferBytes);
  let delivered = 0;
  const once_ = async (): Promise<void> => {
    const { body, partial } = await repo.blob(desc.digest, delivered);
    let skip = partial ? 0 : delivered;
    try {
      for await (const raw of body) {
        if (verify.destroyed) {
          body.destroy();
          return;
        }
        let chunk = raw as Buffer;
        if (skip > 0) {
          const dropped = Math.min(skip, chunk.length);
          skip -= dropped;
          chunk = chunk.subarray(dropped);
          if (chunk.length === 0) continue;
        }
        delivered += chunk.length;
        if (!verify.write(chunk)) await drained(verify);
      }
    } catch (err) {
      if (err instanceof EngineError && !(err instanceof TransportError)) throw err;
      throw new TransportError(`fetching blob ${desc.digest}: the download broke off after ${delivered} of ${desc.size} bytes: ${errorMessage(err)}`, { cause: err });
    }
    if (delivered < desc.size) throw new TransportError(`fetching blob ${desc.digest}: the download ended after ${delivered} of ${desc.size} bytes`);
  };
  withRetries(policy, signal, once_, onRetry).then(
    () => {
      if (!verify.destroyed) verify.end();
    },
    (err: unknown) => verify.destroy(err instanceof Error ? err : new Error(String(err))),
  );
  return verify;
}
