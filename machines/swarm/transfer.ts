import { fromCallback } from 'xstate';
import { sha256Stream, type FileSource } from '../transfer/files.js';
import type { SwarmFailure } from './errors.js';
import type { Hash } from './protocol.js';
import type { ResourceStore, ResourceWriter } from './store.js';

/** Input of the {@link collect} actor. */
export interface CollectInput {
  store: ResourceStore;
  hash: Hash;
  /** What `resource_found` announced. */
  size: number;
}

/** What its parent sends the {@link collect} actor: each binary frame, in arrival order. */
export type CollectCommand = { type: 'link.chunk'; link: string; seq: number; data: Uint8Array };

/** What the {@link collect} actor reports. */
export type CollectEvent =
  /** `received` more bytes arrived (sent for every chunk). */
  | { type: 'collect.progress'; received: number }
  /** Every byte arrived, the SHA-256 is the hash, and the store committed it. */
  | { type: 'collect.done'; size: number }
  | {
      type: 'collect.failed';
      reason: Extract<SwarmFailure, 'protocol' | 'size-mismatch' | 'digest-mismatch' | 'store-failed'>;
      message: string;
    };

/**
 * Receives a resource: opens a writer in the store, checks each chunk's
 * sequence number, that it is not empty and that no more than `size` bytes
 * come, hashes the bytes as they come, and once `size` are in, compares the
 * SHA-256 with the hash.
 * Only then does it commit; on any failure (or when stopped first) it
 * aborts the writer, so a bad resource is never stored.
 */
export const collect = fromCallback<CollectCommand, CollectInput>(({ input, sendBack, receive }) => {
  const { store, hash, size } = input;
  const digest = sha256Stream();
  let expected = 0;
  let received = 0;
  let settled = false;
  let stopped = false;
  let writer: ResourceWriter | undefined;
  const opening = store.create(hash, size).then((w) => (writer = w));
  let writes: Promise<unknown> = opening;

  const report = (event: CollectEvent) => {
    if (!stopped) sendBack(event);
  };
  const abort = (reason: unknown) => {
    void opening
      .then((w) => w.abort(reason))
      .catch(() => {
        // nothing left to tell about a writer that failed to clean up
      });
  };
  const fail = (reason: Extract<CollectEvent, { type: 'collect.failed' }>['reason'], message: string) => {
    if (settled) return;
    settled = true;
    abort(new Error(message));
    report({ type: 'collect.failed', reason, message });
  };
  const finish = () => {
    writes = writes.then(async () => {
      if (settled) return;
      const actual = digest.hex();
      if (actual !== hash) return fail('digest-mismatch', `the ${size} bytes have SHA-256 ${actual}, not ${hash}`);
      try {
        await writer!.commit();
      } catch (error) {
        return fail('store-failed', `committing ${hash} failed: ${describe(error)}`);
      }
      settled = true;
      report({ type: 'collect.done', size });
    });
  };

  writes = opening.catch((error: unknown) => fail('store-failed', `could not store ${hash}: ${describe(error)}`));
  if (size === 0) finish();

  receive((chunk) => {
    if (settled || stopped) return;
    if (chunk.seq !== expected) return fail('protocol', `chunk ${chunk.seq} arrived where ${expected} was due`);
    // Every chunk restarts alice's stall timer: empty ones would keep a transfer alive that never moves.
    if (chunk.data.byteLength === 0) return fail('protocol', `chunk ${chunk.seq} carries no bytes`);
    expected++;
    if (received + chunk.data.byteLength > size) {
      return fail('size-mismatch', `more than the announced ${size} bytes arrived`);
    }
    received += chunk.data.byteLength;
    digest.update(chunk.data);
    const data = chunk.data;
    writes = writes.then(async () => {
      if (settled || stopped) return;
      try {
        await writer!.write(data);
      } catch (error) {
        fail('store-failed', `writing ${hash} failed: ${describe(error)}`);
      }
    });
    report({ type: 'collect.progress', received });
    if (received === size) finish();
  });

  return () => {
    stopped = true;
    if (!settled) {
      settled = true;
      abort(new Error('stopped'));
    }
  };
});

/**
 * A resource of the store as the {@link FileSource} filedrop's `upload`
 * actor reads (it sends the chunks with backpressure).
 */
export function resourceSource(store: ResourceStore, hash: Hash, size: number): FileSource {
  return { name: hash, size, type: 'application/octet-stream', sha256: hash, read: (o, l) => store.read(hash, o, l) };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
