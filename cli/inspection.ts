import type { InspectionEvent, Observer } from 'xstate';

/** What an inspection event's `actorRef` has at run time (XState types it as `ActorRefLike`). */
interface InspectedActor {
  id: string;
  sessionId: string;
  logic?: { config?: { id?: string } };
  _parent?: { sessionId: string };
}

/**
 * Inspection events as JSON, in the shape of `@statelyai/inspect`'s
 * (`@xstate.actor` with its `definition`, `@xstate.event`,
 * `@xstate.snapshot`, each naming its `sessionId`), so the `/inspect` page
 * takes them from this module and from `createWebSocketInspector()` alike.
 * Browser-safe: the demo sends its own actors with it.
 */
export type InspectionMessage =
  | {
      type: '@xstate.actor';
      sessionId: string;
      parentId?: string;
      rootId?: string;
      name: string;
      /** `JSON.stringify(machine.config)`, functions left out; `{"id": name}` for actors that are not machines. */
      definition: string;
      /** Empty from {@link toInspectionMessage} (the actor is not built yet); other senders may fill it. */
      snapshot: SnapshotSummary;
      createdAt: string;
    }
  | { type: '@xstate.event'; sessionId: string; sourceId?: string; event: unknown; createdAt: string }
  | { type: '@xstate.snapshot'; sessionId: string; snapshot: SnapshotSummary; event: unknown; createdAt: string };

/** What the inspector shows of a snapshot: where the machine is, not its context. */
export interface SnapshotSummary {
  value?: unknown;
  status?: string;
}

/**
 * `value` made JSON-safe and small: at most `depth` levels of objects, no
 * functions, cycles cut, binary data and transports named rather than
 * copied, long strings (an SDP) shortened. Inspection must never hold or
 * send a copy of the bytes a machine moves.
 */
export function summarize(value: unknown, depth = 3): unknown {
  const seen = new WeakSet<object>();
  const walk = (v: unknown, level: number): unknown => {
    if (v === null || typeof v === 'number' || typeof v === 'boolean') return v;
    if (typeof v === 'string') return v.length > 160 ? `${v.slice(0, 160)}… (${v.length} characters)` : v;
    if (typeof v !== 'object') return undefined;
    if (ArrayBuffer.isView(v) || v instanceof ArrayBuffer) return `[${v.byteLength} bytes]`;
    if (v instanceof Error) return { name: v.name, message: v.message, ...('code' in v && { code: String(v.code) }) };
    if (seen.has(v)) return '[circular]';
    if (level >= depth) return Array.isArray(v) ? `[${v.length} items]` : '{…}';
    seen.add(v);
    if (Array.isArray(v)) return v.slice(0, 20).map((item) => walk(item, level + 1) ?? null);
    const proto = Object.getPrototypeOf(v);
    if (proto !== Object.prototype && proto !== null) return `[${proto?.constructor?.name ?? 'object'}]`;
    const out: Record<string, unknown> = {};
    for (const [key, inner] of Object.entries(v)) {
      const safe = walk(inner, level + 1);
      if (safe !== undefined) out[key] = safe;
    }
    return out;
  };
  return walk(value, 0);
}

/** A machine's config as JSON (functions and actor logic left out). */
function definitionOf(actorRef: InspectedActor): { name: string; definition: string } {
  const config = actorRef.logic?.config;
  const name = actorRef.id === actorRef.sessionId && config?.id ? config.id : actorRef.id;
  if (!config || typeof config !== 'object') return { name, definition: JSON.stringify({ id: name }) };
  const seen = new WeakSet<object>();
  const definition = JSON.stringify(config, (_key, v: unknown) => {
    if (typeof v === 'function') return undefined;
    if (v && typeof v === 'object') {
      if (seen.has(v)) return undefined;
      seen.add(v);
      const proto = Object.getPrototypeOf(v);
      if (proto !== Object.prototype && proto !== Array.prototype && proto !== null) return undefined;
    }
    return v;
  });
  return { name, definition };
}

const summary = (snapshot: unknown): SnapshotSummary => {
  const { value, status } = (snapshot ?? {}) as { value?: unknown; status?: string };
  return { value: summarize(value, 8), ...(typeof status === 'string' && { status }) };
};

/** One XState inspection event as an {@link InspectionMessage}, or undefined for kinds the inspector does not show. */
export function toInspectionMessage(event: InspectionEvent): InspectionMessage | undefined {
  const createdAt = String(Date.now());
  const sessionId = event.actorRef.sessionId;
  switch (event.type) {
    case '@xstate.actor': {
      const actor = event.actorRef as unknown as InspectedActor;
      return {
        type: '@xstate.actor',
        sessionId,
        ...(actor._parent && { parentId: actor._parent.sessionId }),
        rootId: event.rootId,
        ...definitionOf(actor),
        // Sent while the actor is being built: its snapshot cannot be read yet; the first @xstate.snapshot follows.
        snapshot: {},
        createdAt,
      };
    }
    case '@xstate.event':
      return {
        type: '@xstate.event',
        sessionId,
        ...(event.sourceRef && { sourceId: event.sourceRef.sessionId }),
        event: summarize(event.event),
        createdAt,
      };
    case '@xstate.snapshot':
      return {
        type: '@xstate.snapshot',
        sessionId,
        snapshot: summary(event.snapshot),
        event: { type: (event.event as { type?: string }).type },
        createdAt,
      };
    default:
      return undefined;
  }
}

/**
 * An XState `inspect` observer that hands each event, as JSON-safe
 * {@link InspectionMessage}, to `send`.
 *
 * @example
 * ```ts
 * const socket = new WebSocket('ws://localhost:8080/inspect');
 * const inspect = inspectionObserver((message) => socket.readyState === 1 && socket.send(JSON.stringify(message)));
 * createActor(machine, { inspect }).start();
 * ```
 */
export function inspectionObserver(send: (message: InspectionMessage) => void): Observer<InspectionEvent> {
  return {
    next(event) {
      // Watching must never break what is watched.
      try {
        const message = toInspectionMessage(event);
        if (message) send(message);
      } catch {
        // dropped
      }
    },
  };
}
