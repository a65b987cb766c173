import { fromCallback } from 'xstate';
import { memoryPair } from '../adapters/memory/index.js';
import { ErrorCode, RtcError } from '../src/errors.js';
import type { RtcActorLogic, RtcCommand, RtcEmitted } from '../src/rtc/rtc.actor.js';
import type { Transport } from '../src/transport.js';

/** Shared by the `rtc` actors of one test world: where offers find their answerers. */
export interface MemoryRtcFabric {
  /** The `rtc` actor logic to provide to machines. */
  readonly rtc: RtcActorLogic;
  /** Connections whose data channels are open. */
  readonly open: number;
  /** Makes every connection whose label matches fail now (`rtc.failed` on both ends). */
  fail(match?: (label: string) => boolean): void;
}

interface Pending {
  label: string;
  deliver(transport: Transport): void;
  fail(error: RtcError): void;
}

interface Live {
  label: string;
  transport: Transport;
  fail(error: RtcError): void;
}

/**
 * An in-process stand-in for WebRTC with the `rtc` actor's contract: offers
 * and answers are opaque tokens (`memory-offer:…`), and once the offerer
 * applies the answer both ends get a memory data channel. No ICE, no
 * timers: it lets machine tests run on a SimulatedClock.
 *
 * @example
 * ```ts
 * const fabric = memoryRtcFabric();
 * const host = cloudlink.host.provide({ actors: { signalling, rtc: fabric.rtc } });
 * ```
 */
export function memoryRtcFabric(): MemoryRtcFabric {
  const answerers = new Map<string, Pending>();
  const live = new Set<Live>();
  let counter = 0;

  const rtc: RtcActorLogic = fromCallback<
    RtcCommand,
    { label: string; role: 'offerer' | 'answerer'; remoteOffer?: string }
  >(({ input, sendBack, receive }) => {
    const { label } = input;
    const emit = (event: RtcEmitted) => sendBack(event);
    let transport: Transport | undefined;
    let stopped = false;
    let token: string | undefined;
    const failWith = (message: string) =>
      emit({ type: 'rtc.failed', label, error: new RtcError(ErrorCode.RtcFailed, message) });

    const opened = (t: Transport) => {
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
    };

    const answer = (offer: string) => {
      if (!offer.startsWith('memory-offer:')) return failWith(`not a memory offer: ${offer.slice(0, 40)}`);
      token = offer.slice('memory-offer:'.length);
      answerers.set(token, { label, deliver: opened, fail: (e) => emit({ type: 'rtc.failed', label, error: e }) });
      queueMicrotask(() =>
        emit({ type: 'rtc.description', label, description: { type: 'answer', sdp: `memory-answer:${token}` } }),
      );
    };

    if (input.role === 'offerer') {
      token = `${++counter}-${Math.random().toString(36).slice(2)}`;
      queueMicrotask(() =>
        emit({ type: 'rtc.description', label, description: { type: 'offer', sdp: `memory-offer:${token}` } }),
      );
    } else if (input.remoteOffer !== undefined) {
      answer(input.remoteOffer);
    }

    receive((command) => {
      if (command.type === 'rtc.remoteDescription') {
        const { type, sdp } = command.description;
        if (type === 'offer') return answer(sdp);
        const remote = answerers.get(sdp.slice('memory-answer:'.length));
        if (!sdp.startsWith('memory-answer:') || sdp !== `memory-answer:${token}` || !remote) {
          return failWith(`answer does not match our offer: ${sdp.slice(0, 40)}`);
        }
        answerers.delete(token!);
        const [mine, theirs] = memoryPair();
        queueMicrotask(() => {
          opened(mine);
          remote.deliver(theirs);
        });
      } else if (command.type === 'rtc.close') {
        transport?.close();
      }
    });

    return () => {
      stopped = true;
      if (token) answerers.delete(token);
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
        entry.fail(new RtcError(ErrorCode.RtcFailed, 'connection failed (simulated)'));
      }
      for (const [token, pending] of [...answerers]) {
        if (!match(pending.label)) continue;
        answerers.delete(token);
        pending.fail(new RtcError(ErrorCode.RtcFailed, 'connection failed (simulated)'));
      }
    },
  };
}
