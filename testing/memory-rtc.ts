import { fromCallback } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { ErrorCode, RtcError } from '../src/errors.js';
import type { RtcActorLogic, RtcCommand, RtcEmitted, RtcInput } from '../src/rtc/rtc.actor.js';
import type { Transport } from '../src/transport.js';

/** Options of {@link memoryRtcFabric}. */
export interface MemoryRtcFabricInit {
  /**
   * Like `fromRtc({ trickle: true })`: each side also reports one
   * `rtc.candidate` after its description, and a connection opens only once
   * both sides were given the other's candidate (`rtc.remoteCandidate`,
   * before or after the remote description).
   * @default false
   */
  trickle?: boolean;
}

/** Shared by the `rtc` actors of one test world: where offers find their answerers. */
export interface MemoryRtcFabric {
  /** The `rtc` actor logic to provide to machines. */
  readonly rtc: RtcActorLogic;
  /** Connections whose data channels are open. */
  readonly open: number;
  /** Makes every connection whose label matches fail now (`rtc.failed` on both ends). */
  fail(match?: (label: string) => boolean): void;
  /**
   * The next `attempts` negotiations (an offer or an ICE restart, answered)
   * with an end whose label matches do not connect: that end gets
   * `rtc.failed` instead, as when ICE finds no working pair. A channel that
   * was open stays open (its data keeps flowing, as over a restarted ICE).
   */
  failIce(match: (label: string) => boolean, attempts?: number): void;
}

interface End {
  readonly label: string;
  emit(event: RtcEmitted): void;
  /** The channel opened (first successful negotiation). */
  opened(transport: Transport): void;
  readonly transport: () => Transport | undefined;
}

/** One negotiation: an offer, its answer and (trickle) the two candidates. */
interface Attempt {
  readonly offerer: End;
  answerer?: End;
  answerApplied: boolean;
  /** Trickle: each side was given the other's candidate. */
  offererHasCandidate: boolean;
  answererHasCandidate: boolean;
}

interface Live {
  label: string;
  transport: Transport;
  fail(error: RtcError): void;
}

const failure = (message: string) => new RtcError(ErrorCode.RtcFailed, message);

/**
 * An in-process stand-in for WebRTC with the `rtc` actor's contract: offers,
 * answers and candidates are opaque tokens (`memory-offer:…`), and once a
 * negotiation completes both ends get a memory data channel. No real ICE and
 * no timers, so machine tests run on a SimulatedClock; `rtc.restartIce`
 * renegotiates (the offerer), and {@link MemoryRtcFabric.failIce} makes
 * negotiations fail for tests of the retry paths.
 *
 * @example
 * ```ts
 * const fabric = memoryRtcFabric({ trickle: true });
 * const host = cloudlink.host.provide({ actors: { signalling, rtc: fabric.rtc } });
 * ```
 */
export function memoryRtcFabric(init: MemoryRtcFabricInit = {}): MemoryRtcFabric {
  const trickle = init.trickle ?? false;
  const attempts = new Map<string, Attempt>();
  const live = new Set<Live>();
  const iceFailures: Array<{ match: (label: string) => boolean; left: number }> = [];
  let counter = 0;

  /** Connects the two ends of `token` once its negotiation is complete. */
  const settle = (token: string) => {
    const attempt = attempts.get(token);
    if (!attempt?.answerer || !attempt.answerApplied) return;
    if (trickle && !(attempt.offererHasCandidate && attempt.answererHasCandidate)) return;
    attempts.delete(token);
    const { offerer, answerer } = attempt;
    const ends = [offerer, answerer];
    const rule = iceFailures.find((r) => r.left > 0 && ends.some((end) => r.match(end.label)));
    if (rule) {
      rule.left--;
      for (const end of ends)
        if (rule.match(end.label))
          end.emit({ type: 'rtc.failed', label: end.label, error: failure('ICE failed (simulated)') });
      return;
    }
    // An ICE restart of an open channel: nothing to do, the channel carries on.
    if (offerer.transport() || answerer.transport()) return;
    const [mine, theirs] = memoryPair();
    queueMicrotask(() => {
      offerer.opened(mine);
      answerer.opened(theirs);
    });
  };

  const rtc: RtcActorLogic = fromCallback<RtcCommand, RtcInput>(({ input, sendBack, receive }) => {
    const { label } = input;
    let transport: Transport | undefined;
    let stopped = false;
    /** The negotiation this end is in. */
    let token: string | undefined;
    /** Answerer, trickle: candidates that came before the offer. */
    const early: string[] = [];

    const emit = (event: RtcEmitted) => {
      if (!stopped) sendBack(event);
    };
    const failWith = (message: string) => emit({ type: 'rtc.failed', label, error: failure(message) });
    const end: End = {
      label,
      emit,
      transport: () => transport,
      opened(t) {
        if (stopped) {
          t.close();
          return;
        }
        transport = t;
        const entry: Live = { label, transport: t, fail: (e) => emit({ type: 'rtc.failed', label, error: e }) };
        live.add(entry);
        t.on('close', (info) => {
          live.delete(entry);
          if (!stopped && info.initiator === 'remote') emit({ type: 'rtc.closed', label });
        });
        emit({ type: 'rtc.open', label, transport: t });
      },
    };
    const describe = (type: 'offer' | 'answer', role: 'offerer' | 'answerer', t: string) =>
      queueMicrotask(() => {
        emit({ type: 'rtc.description', label, description: { type, sdp: `memory-${type}:${t}` } });
        if (trickle)
          emit({
            type: 'rtc.candidate',
            label,
            candidate: { candidate: `memory-candidate:${t}:${role}`, sdpMid: '0', sdpMLineIndex: 0 },
          });
      });

    const offer = () => {
      if (token) attempts.delete(token);
      token = `${++counter}-${Math.random().toString(36).slice(2)}`;
      attempts.set(token, {
        offerer: end,
        answerApplied: false,
        offererHasCandidate: false,
        answererHasCandidate: false,
      });
      describe('offer', 'offerer', token);
    };

    /** A remote candidate: marks its negotiation, or waits for the offer that names it. */
    const candidate = (text: string) => {
      const match = /^memory-candidate:(.+):(offerer|answerer)$/.exec(text);
      if (!match) return;
      const [, t, from] = match;
      if (input.role === 'answerer' && token === undefined) {
        early.push(text);
        return;
      }
      const attempt = attempts.get(t!);
      if (!attempt || t !== token) return; // a candidate of an older negotiation
      if (from === 'answerer') attempt.offererHasCandidate = true;
      else attempt.answererHasCandidate = true;
      settle(t!);
    };

    const answer = (sdp: string) => {
      if (!sdp.startsWith('memory-offer:')) return failWith(`not a memory offer: ${sdp.slice(0, 40)}`);
      token = sdp.slice('memory-offer:'.length);
      // An offerer that left meanwhile never applies the answer: nothing connects, as over a real network.
      const attempt = attempts.get(token);
      if (attempt) attempt.answerer = end;
      describe('answer', 'answerer', token);
      for (const text of early.splice(0)) candidate(text);
    };

    if (input.role === 'offerer') offer();
    else if (input.remoteOffer !== undefined) answer(input.remoteOffer);

    receive((command) => {
      if (stopped) return;
      switch (command.type) {
        case 'rtc.remoteDescription': {
          const { type, sdp } = command.description;
          if (type === 'offer') return answer(sdp);
          const attempt = token === undefined ? undefined : attempts.get(token);
          if (sdp !== `memory-answer:${token}` || !attempt?.answerer) {
            return failWith(`answer does not match our offer: ${sdp.slice(0, 40)}`);
          }
          attempt.answerApplied = true;
          return settle(token!);
        }
        case 'rtc.remoteCandidate':
          return candidate(command.candidate?.candidate ?? '');
        case 'rtc.restartIce':
          if (input.role !== 'offerer') return failWith('the memory fabric restarts ICE from the offerer only');
          return offer();
        case 'rtc.close':
          transport?.close();
          return;
      }
    });

    return () => {
      stopped = true;
      const attempt = token === undefined ? undefined : attempts.get(token);
      if (attempt?.offerer === end) attempts.delete(token!);
      else if (attempt?.answerer === end) attempt.answerer = undefined;
      transport?.close();
    };
  });

  return {
    rtc,
    get open() {
      return live.size;
    },
    fail(match = () => true) {
      for (const entry of [...live]) {
        if (!match(entry.label)) continue;
        entry.fail(failure('connection failed (simulated)'));
      }
      for (const attempt of attempts.values()) {
        const answerer = attempt.answerer;
        if (!answerer || !match(answerer.label)) continue;
        attempt.answerer = undefined;
        answerer.emit({ type: 'rtc.failed', label: answerer.label, error: failure('connection failed (simulated)') });
      }
    },
    failIce(match, count = 1) {
      iceFailures.push({ match, left: count });
    },
  };
}
