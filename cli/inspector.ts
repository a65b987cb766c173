import type { Server } from 'node:http';
import type { InspectionEvent, Observer } from 'xstate';
import { webSocketServer } from '../adapters/websocket/server.js';
import type { Transport, TransportServer } from '../src/transport.js';
import { inspectionObserver, type InspectionMessage } from './inspection.js';

export interface InspectorHubInit {
  /** Where {@link InspectorHub.attach} takes WebSocket upgrades. @default '/inspect' */
  path?: string;
  /** Sessions remembered for a page that connects later; past it the oldest ended one (else the oldest) is forgotten. @default 500 */
  maxSessions?: number;
  /** Recent events remembered per session. @default 30 */
  maxEvents?: number;
  /** Largest frame a browser client may send (a machine's definition). @default 1048576 */
  maxFrameSize?: number;
  /** A connection with more than this many bytes unsent misses events rather than being buffered for. @default 4194304 */
  maxBuffered?: number;
}

export interface InspectorHub {
  /** XState's `inspect` option: the server's sessions report here. */
  readonly inspect: Observer<InspectionEvent>;
  /** Sessions remembered. */
  readonly sessions: number;
  /** Takes the WebSocket upgrades on `path` of `server` (once). */
  attach(server: Server): void;
  /** Closes every connection. */
  close(): Promise<void>;
}

interface Session {
  actor?: string;
  snapshot?: string;
  events: string[];
  ended: boolean;
}

const KINDS = new Set(['@xstate.actor', '@xstate.event', '@xstate.snapshot']);
const ENDED = new Set(['done', 'error', 'stopped']);

/**
 * Checks a frame a browser client sent: an inspection event of one of the
 * three kinds, naming its session, an actor event carrying its definition as
 * a string. Anything else is dropped (the sender learns nothing; it is an
 * observer, not a party to a protocol).
 */
function parse(frame: string): InspectionMessage | undefined {
  let message: unknown;
  try {
    message = JSON.parse(frame);
  } catch {
    return undefined;
  }
  if (!message || typeof message !== 'object' || Array.isArray(message)) return undefined;
  const { type, sessionId, definition } = message as Record<string, unknown>;
  if (typeof type !== 'string' || !KINDS.has(type)) return undefined;
  if (typeof sessionId !== 'string' || sessionId === '' || sessionId.length > 200) return undefined;
  if (type === '@xstate.actor' && typeof definition !== 'string') return undefined;
  return message as InspectionMessage;
}

/**
 * The live inspector behind `signalbox serve --inspect`: a WebSocket at
 * `/inspect` on the server's port. The server's sessions report through
 * {@link InspectorHub.inspect}; a browser client may send its own actors'
 * events to the same socket (`createWebSocketInspector({ url })` from
 * `@statelyai/inspect`, or `inspectionObserver` from the demo). Every
 * connection receives every event, and on connecting what is remembered: each
 * session's actor (with its definition), its latest snapshot and its recent
 * events. The `/inspect` page is such a connection.
 *
 * Bounded: sessions and events per session are capped, frames are capped,
 * and a connection that does not read misses events instead of growing the
 * server's memory.
 */
export function createInspectorHub(init: InspectorHubInit = {}): InspectorHub {
  const maxSessions = init.maxSessions ?? 500;
  const maxEvents = init.maxEvents ?? 30;
  const maxBuffered = init.maxBuffered ?? 4 * 1024 * 1024;
  const sessions = new Map<string, Session>();
  const viewers = new Set<Transport>();
  let transports: TransportServer | undefined;

  const forgetOne = () => {
    for (const [id, session] of sessions) {
      if (session.ended) return void sessions.delete(id);
    }
    const oldest = sessions.keys().next();
    if (!oldest.done) sessions.delete(oldest.value);
  };

  const record = (message: InspectionMessage, frame: string) => {
    let session = sessions.get(message.sessionId);
    if (!session) {
      if (sessions.size >= maxSessions) forgetOne();
      session = { events: [], ended: false };
      sessions.set(message.sessionId, session);
    }
    if (message.type === '@xstate.actor') session.actor = frame;
    else if (message.type === '@xstate.snapshot') {
      session.snapshot = frame;
      session.ended = ENDED.has(String((message.snapshot as { status?: unknown } | undefined)?.status));
    } else {
      session.events.push(frame);
      if (session.events.length > maxEvents) session.events.shift();
    }
  };

  const broadcast = (frame: string, from?: Transport) => {
    for (const viewer of viewers) {
      if (viewer === from || !viewer.isOpen || viewer.bufferedAmount > maxBuffered) continue;
      viewer.send(frame);
    }
  };

  const publish = (message: InspectionMessage, from?: Transport) => {
    const frame = JSON.stringify(message);
    record(message, frame);
    broadcast(frame, from);
  };

  const accept = ({ transport }: { transport: Transport }) => {
    viewers.add(transport);
    for (const session of sessions.values()) {
      for (const frame of [session.actor, session.snapshot, ...session.events]) if (frame) transport.send(frame);
    }
    transport.on('message', (frame) => {
      if (typeof frame !== 'string') return;
      const message = parse(frame);
      if (message) publish(message, transport);
    });
    transport.on('close', () => viewers.delete(transport));
  };

  return {
    inspect: inspectionObserver((message) => publish(message)),
    get sessions() {
      return sessions.size;
    },
    attach(server) {
      if (transports) throw new Error('InspectorHub.attach(): already attached; create one hub per server');
      transports = webSocketServer({
        server,
        path: init.path ?? '/inspect',
        maxPayload: init.maxFrameSize ?? 1024 * 1024,
      });
      transports.on('connection', accept);
    },
    async close() {
      viewers.clear();
      await transports?.close();
    },
  };
}
