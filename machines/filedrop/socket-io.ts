import { safeJson, type EventCodec } from '../../src/event-codec.js';
import type { Frame } from '../../src/transport.js';
import { clientMessageTypes } from './protocol.js';

/**
 * The server's notices: sent over socket.io with their whole `detail` as the
 * only argument (the seed gives them no arguments; a client that takes none
 * ignores it).
 */
const notices: ReadonlySet<string> = new Set(['invalid peer id', 'peer not exists', 'error']);
const relayed: ReadonlySet<string> = new Set(clientMessageTypes);

const isRecord = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

/** True when `value` holds a binary attachment (socket.io sends them apart from the JSON) at any depth. */
function hasBinary(value: unknown): boolean {
  const stack = [value];
  let seen = 0;
  while (stack.length > 0 && seen++ < 10_000) {
    const item = stack.pop();
    if (item instanceof ArrayBuffer || ArrayBuffer.isView(item)) return true;
    if (typeof item === 'object' && item !== null) stack.push(...Object.values(item));
  }
  return false;
}

/**
 * `emit(event, peerId, data?)` as the WebSocket codec's `{ type, detail: { peer, data? } }`.
 * Arguments past `data` become `argumentN` keys, which the codec refuses
 * like any stray key, so a wrong call earns the same error as the same
 * mistake over WebSocket. `data` is relayed as JSON: one with a binary
 * attachment becomes a `binaryAttachment` key, refused the same way.
 */
function relayFrame(event: unknown, args: readonly unknown[]): string {
  const detail: Record<string, unknown> = {};
  if (args.length > 0) detail.peer = args[0];
  if (args.length > 1) {
    if (hasBinary(args[1])) detail.binaryAttachment = true;
    else detail.data = args[1];
  }
  for (let i = 2; i < args.length; i++) detail[`argument${i + 1}`] = args[i];
  return safeJson({ type: event, detail });
}

function messageOf(frame: Frame): { type: string; detail: Record<string, unknown> } {
  let parsed: unknown;
  try {
    parsed = typeof frame === 'string' ? JSON.parse(frame) : undefined;
  } catch {
    parsed = undefined;
  }
  if (!isRecord(parsed) || typeof parsed.type !== 'string' || !isRecord(parsed.detail)) {
    throw new TypeError(
      'filedrop socket.io events: send() takes the frames of the filedrop codecs ({"type": …, "detail": {…}} JSON text)',
    );
  }
  return parsed as { type: string; detail: Record<string, unknown> };
}

/**
 * The filedrop events as a socket.io 4 server speaks them, for
 * `socketIoServer({ events: serverSocketIoEvents() })`: a client's
 * `emit(event, peerId, data?)` arrives as the frame
 * `{"type": event, "detail": {"peer": peerId, "data": data}}` that
 * {@link serverCodec} decodes (and rejects with the usual errors), and the
 * server's messages leave as:
 *
 * | message                          | socket.io                                   |
 * | -------------------------------- | ------------------------------------------- |
 * | `assign` `{ peer }`              | `emit('assign', peerId)`                    |
 * | relayed `{ peer, data? }`        | `emit(event, fromId, data?)`                |
 * | `invalid peer id` `{ event, peer? }` | `emit('invalid peer id', { event, peer? })` |
 * | `peer not exists` `{ peer, event? }` | `emit('peer not exists', { peer, event? })` |
 * | `error` `{ code, message, event? }`  | `emit('error', { code, message, event? })`  |
 *
 * `data` goes through as it came, whatever JSON it is (`null` included).
 *
 * @example
 * ```ts
 * const events = serverSocketIoEvents();
 * events.receive('request', ['K7PQ2MZA']); // '{"type":"request","detail":{"peer":"K7PQ2MZA"}}'
 * events.send('{"type":"assign","detail":{"peer":"K7PQ2MZA"}}'); // ['assign', 'K7PQ2MZA']
 * ```
 */
export function serverSocketIoEvents(): EventCodec {
  return {
    receive(event, args) {
      return relayFrame(event, args);
    },
    send(frame) {
      const { type, detail } = messageOf(frame);
      if (type === 'assign') return [type, detail.peer];
      if (notices.has(type)) return [type, detail];
      return 'data' in detail ? [type, detail.peer, detail.data] : [type, detail.peer];
    },
  };
}

/**
 * The mirror of {@link serverSocketIoEvents}, for a client's
 * `socketIoTransport(socket, { events: clientSocketIoEvents() })`: the
 * server's events arrive as the frames {@link clientCodec} decodes, and the
 * client's messages leave as `emit(event, peerId, data?)`.
 *
 * @example
 * ```ts
 * const events = clientSocketIoEvents();
 * events.receive('offer', ['K7PQ2MZA', { type: 'offer', sdp }]); // '{"type":"offer","detail":{"peer":"K7PQ2MZA","data":{…}}}'
 * events.send('{"type":"request","detail":{"peer":"K7PQ2MZA"}}'); // ['request', 'K7PQ2MZA']
 * ```
 */
export function clientSocketIoEvents(): EventCodec {
  return {
    receive(event, args) {
      if (typeof event === 'string' && notices.has(event)) return safeJson({ type: event, detail: args[0] });
      if (event === 'assign' || (typeof event === 'string' && relayed.has(event))) return relayFrame(event, args);
      return safeJson({ type: event, detail: args[0] });
    },
    send(frame) {
      const { type, detail } = messageOf(frame);
      return 'data' in detail ? [type, detail.peer, detail.data] : [type, detail.peer];
    },
  };
}
