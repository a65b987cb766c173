/**
 * Reading the WebRTC payloads that other implementations put on the wire:
 * the one reader every protocol's clients use. Servers relay descriptions
 * and candidates untouched (DESIGN.md, "Relays are transparent"), so the
 * machine that consumes one reads every form a client of any protocol may
 * send, and refuses anything else naming the field:
 *
 * - a description: an SDP string, or `{ type, sdp }` (what
 *   `JSON.stringify(pc.localDescription)` gives; a missing `type` is taken as
 *   the expected one, other keys are ignored);
 * - a candidate: `RTCIceCandidateInit` (`{ candidate, sdpMid, … }`, `null`
 *   fields as `RTCIceCandidate.toJSON()` gives them), or the candidate line
 *   alone (`"candidate:…"`); either with or without an `a=` prefix;
 * - the end of candidates: `null`, nothing, `""`, or an init whose
 *   `candidate` is `""`, `null` or missing (WebIDL's default is `""`).
 *
 * Our own clients send the browser's form: `{ type, sdp }` and
 * `RTCIceCandidateInit`.
 *
 * @module
 */
import type { RtcIceCandidateInit, RtcSessionDescription } from './types.js';

/** Why a payload cannot be read: `field` is the part at fault (the caller's name for the payload, or a path below it). */
export interface WireProblem {
  /** `sdp`, `sdp.type`, `detail.candidate.sdpMid`, …: the caller's `field`, and below it. */
  field: string;
  /** What is wrong with it: `is empty`, `must be a non-empty string, not missing`, … */
  problem: string;
}

/** A payload read, or why it cannot be. */
export type WireRead<T> = { value: T; field?: undefined; problem?: undefined } | ({ value?: undefined } & WireProblem);

/**
 * A {@link WireProblem} as one sentence, the field first.
 *
 * @example
 * ```ts
 * wireProblem({ field: 'sdp.type', problem: 'is "answer", expected "offer"' }); // '`sdp.type` is "answer", expected "offer"'
 * ```
 */
export const wireProblem = ({ field, problem }: WireProblem): string => `\`${field}\` ${problem}`;

const fault = (field: string, problem: string): WireProblem => ({ field, problem });

/**
 * Reads a remote description that should be of type `expected`: an SDP
 * string, or an object `{ type, sdp }` whose `type` is `expected` or
 * missing. Only the shape is checked here; the `rtc` actor checks the SDP
 * itself. `field` is what the caller calls the value, for the problem.
 *
 * @example
 * ```ts
 * readDescription('v=0\r\n…', 'offer', 'sdp'); // { value: { type: 'offer', sdp: 'v=0\r\n…' } }
 * readDescription({ type: 'offer', sdp: 'v=0\r\n…' }, 'offer', 'sdp'); // the same
 * readDescription({ type: 'answer', sdp: 'v=0' }, 'offer', 'sdp'); // { field: 'sdp.type', problem: 'is "answer", expected "offer"' }
 * ```
 */
export function readDescription<T extends RtcSessionDescription['type']>(
  value: unknown,
  expected: T,
  field: string,
): WireRead<RtcSessionDescription & { type: T }> {
  if (typeof value === 'string') {
    return value.length > 0 ? { value: { type: expected, sdp: value } } : fault(field, 'is empty');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return fault(field, `must be an SDP string or { type, sdp }, not ${describe(value)}`);
  }
  const { type, sdp } = value as { type?: unknown; sdp?: unknown };
  if (type !== undefined && type !== expected) {
    return fault(`${field}.type`, `is ${describe(type)}, expected "${expected}"`);
  }
  if (typeof sdp !== 'string' || sdp.length === 0) {
    return fault(`${field}.sdp`, `must be a non-empty string, not ${describe(sdp)}`);
  }
  return { value: { type: expected, sdp } };
}

/**
 * Reads a remote ICE candidate: `RTCIceCandidateInit`, or the candidate line
 * alone as a string. `value: null` is the end of candidates, which needs
 * nothing applied. `null` fields are left out. A candidate with neither
 * `sdpMid` nor `sdpMLineIndex` (a bare line, or an init without them) gets
 * `sdpMLineIndex: 0`: the connections signalbox makes have one media section
 * (the data channel), bundled, and `addIceCandidate` needs one of the two.
 *
 * @example
 * ```ts
 * readCandidate({ candidate: 'candidate:1 1 udp …', sdpMid: '0' }, 'candidate'); // { value: { candidate: …, sdpMid: '0' } }
 * readCandidate('a=candidate:1 1 udp …', 'candidate'); // { value: { candidate: 'candidate:1 1 udp …', sdpMLineIndex: 0 } }
 * readCandidate(null, 'candidate'); // { value: null }
 * ```
 */
export function readCandidate(value: unknown, field: string): WireRead<RtcIceCandidateInit | null> {
  if (value === null || value === undefined || typeof value === 'string') {
    const candidate = lineOf(value);
    return { value: candidate ? { candidate, sdpMLineIndex: 0 } : null };
  }
  if (typeof value !== 'object' || Array.isArray(value)) {
    return fault(field, `must be an RTCIceCandidateInit, a candidate string or null, not ${describe(value)}`);
  }
  const c = value as Record<string, unknown>;
  if (c.candidate !== undefined && c.candidate !== null && typeof c.candidate !== 'string') {
    return fault(`${field}.candidate`, `must be a string, not ${describe(c.candidate)}`);
  }
  const candidate = lineOf(c.candidate ?? undefined);
  if (!candidate) return { value: null };
  const init: RtcIceCandidateInit = { candidate };
  for (const key of ['sdpMid', 'usernameFragment'] as const) {
    const item = c[key];
    if (item === undefined || item === null) continue;
    if (typeof item !== 'string') return fault(`${field}.${key}`, `must be a string, not ${describe(item)}`);
    init[key] = item;
  }
  const index = c.sdpMLineIndex;
  if (index !== undefined && index !== null) {
    if (typeof index !== 'number' || !Number.isSafeInteger(index) || index < 0) {
      return fault(`${field}.sdpMLineIndex`, `must be a whole number ≥ 0, not ${describe(index)}`);
    }
    init.sdpMLineIndex = index;
  }
  if (init.sdpMid === undefined && init.sdpMLineIndex === undefined) init.sdpMLineIndex = 0;
  return { value: init };
}

/** A candidate line without its `a=` prefix; `""` (the end of candidates) for nothing. */
const lineOf = (line: string | null | undefined): string => line?.replace(/^a=/, '') ?? '';

/** A value as an error message quotes it: short, never the whole payload. */
function describe(value: unknown): string {
  if (value === undefined) return 'missing';
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'string') return JSON.stringify(value.length > 32 ? `${value.slice(0, 32)}…` : value);
  return String(value);
}
