/**
 * Reading the WebRTC payloads that other implementations put on the wire.
 * Servers relay descriptions and candidates untouched (DESIGN.md, "Relays are
 * transparent"), so the machine that consumes one reads every form a client
 * of the protocol may send, and refuses anything else with a message that
 * names the field:
 *
 * - a description: an SDP string, or `{ type, sdp }` (what
 *   `JSON.stringify(pc.localDescription)` gives);
 * - a candidate: `RTCIceCandidateInit` (`{ candidate, sdpMid, … }`), the
 *   candidate line alone (`"candidate:…"`, also with an `a=` prefix), or
 *   `null` / `""` / `{ candidate: "" }`: the end of candidates.
 *
 * Our own clients send the browser's form: `{ type, sdp }` and
 * `RTCIceCandidateInit`.
 *
 * @module
 */
import type { RtcIceCandidateInit, RtcSessionDescription } from './types.js';

/** A payload read, or why it cannot be (`problem` names the field). */
export type WireRead<T> = { value: T; problem?: undefined } | { value?: undefined; problem: string };

/**
 * Reads a remote description that should be of type `expected`: an SDP
 * string, or an object `{ type, sdp }` whose `type` is `expected`. Only the
 * shape is checked here; the `rtc` actor checks the SDP itself.
 *
 * @example
 * ```ts
 * readDescription('v=0\r\n…', 'offer', 'sdp'); // { value: { type: 'offer', sdp: 'v=0\r\n…' } }
 * readDescription({ type: 'offer', sdp: 'v=0\r\n…' }, 'offer', 'sdp'); // the same
 * readDescription({ type: 'answer', sdp: 'v=0' }, 'offer', 'sdp'); // { problem: '`sdp.type` is "answer", expected "offer"' }
 * ```
 */
export function readDescription(
  value: unknown,
  expected: RtcSessionDescription['type'],
  field: string,
): WireRead<RtcSessionDescription> {
  if (typeof value === 'string') {
    return value.length > 0 ? { value: { type: expected, sdp: value } } : { problem: `\`${field}\` is empty` };
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { problem: `\`${field}\` must be an SDP string or { type, sdp }, not ${describe(value)}` };
  }
  const { type, sdp } = value as { type?: unknown; sdp?: unknown };
  if (type !== expected) {
    return { problem: `\`${field}.type\` is ${describe(type)}, expected "${expected}"` };
  }
  if (typeof sdp !== 'string' || sdp.length === 0) {
    return { problem: `\`${field}.sdp\` must be a non-empty string, not ${describe(sdp)}` };
  }
  return { value: { type: expected, sdp } };
}

/**
 * Reads a remote ICE candidate: `RTCIceCandidateInit`, or the candidate line
 * alone as a string. `value: null` is the end of candidates (`null`, `""`,
 * or an object whose `candidate` is `""`), which needs nothing applied. A
 * bare candidate line gets `sdpMLineIndex: 0`: the connections signalbox
 * makes have one media section (the data channel), and `addIceCandidate`
 * needs `sdpMid` or `sdpMLineIndex`.
 *
 * @example
 * ```ts
 * readCandidate({ candidate: 'candidate:1 1 udp …', sdpMid: '0' }, 'candidate'); // { value: { candidate: …, sdpMid: '0' } }
 * readCandidate('a=candidate:1 1 udp …', 'candidate'); // { value: { candidate: 'candidate:1 1 udp …', sdpMLineIndex: 0 } }
 * readCandidate(null, 'candidate'); // { value: null }
 * ```
 */
export function readCandidate(value: unknown, field: string): WireRead<RtcIceCandidateInit | null> {
  if (value === null || value === '') return { value: null };
  if (typeof value === 'string') return { value: { candidate: value.replace(/^a=/, ''), sdpMLineIndex: 0 } };
  if (typeof value !== 'object' || Array.isArray(value)) {
    return {
      problem: `\`${field}\` must be an RTCIceCandidateInit, a candidate string or null, not ${describe(value)}`,
    };
  }
  const c = value as Record<string, unknown>;
  if (c.candidate === '' || c.candidate === undefined || c.candidate === null) return { value: null };
  if (typeof c.candidate !== 'string') {
    return { problem: `\`${field}.candidate\` must be a string, not ${describe(c.candidate)}` };
  }
  const init: RtcIceCandidateInit = { candidate: c.candidate.replace(/^a=/, '') };
  for (const key of ['sdpMid', 'usernameFragment'] as const) {
    const item = c[key];
    if (item === undefined || item === null) continue;
    if (typeof item !== 'string') return { problem: `\`${field}.${key}\` must be a string, not ${describe(item)}` };
    init[key] = item;
  }
  const index = c.sdpMLineIndex;
  if (index !== undefined && index !== null) {
    if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) {
      return { problem: `\`${field}.sdpMLineIndex\` must be a whole number ≥ 0, not ${describe(index)}` };
    }
    init.sdpMLineIndex = index;
  }
  return { value: init };
}

/** A value as an error message quotes it: short, never the whole payload. */
function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 32 ? `${value.slice(0, 32)}…` : value);
  return String(value);
}
