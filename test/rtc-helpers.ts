import { expect } from 'vitest';
import { createActor, setup, type Actor, type AnyStateMachine } from 'xstate';
import { DEFAULT_HIGH_WATER_MARK, sendWithBackpressure } from '../src/backpressure.js';
import {
  dataChannelTransport,
  fromRtc,
  type DataChannelTransportInit,
  type RTCDataChannelLike,
  type RtcActorInit,
  type RtcCommand,
  type RtcEmitted,
  type RtcInput,
} from '../src/rtc/index.js';
import type { Frame, Transport } from '../src/transport.js';
import { nextEvent, transportCompliance } from './transport-compliance.js';

/**
 * Loopback-only werift config. `iceUseIpv4: false` stops werift from adding
 * the machine's other IPv4 interfaces (127.0.0.1 fails its interface filter,
 * so without it every interface is advertised); the additional host address
 * then yields exactly one candidate, 127.0.0.1. No ICE servers: werift would
 * otherwise add (and look up) its default STUN server.
 */
export const WERIFT_LOOPBACK = {
  iceServers: [],
  iceUseIpv4: false,
  iceUseIpv6: false,
  iceInterfaceAddresses: { udp4: '127.0.0.1' },
  iceAdditionalHostAddresses: ['127.0.0.1'],
};

/** Loopback-only node-datachannel config: no ICE servers, one host candidate on 127.0.0.1. */
export const NDC_LOOPBACK = { iceServers: [], bindAddress: '127.0.0.1' };

export const delay = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const candidateLines = (sdp: string) => sdp.split(/\r?\n/).filter((line) => line.startsWith('a=candidate:'));
export const withoutCandidates = (sdp: string) =>
  sdp
    .split('\r\n')
    .filter((line) => !line.startsWith('a=candidate:') && line !== 'a=end-of-candidates')
    .join('\r\n');
export const ufrag = (sdp: string) => /a=ice-ufrag:(\S+)/.exec(sdp)?.[1];

/** Sends one frame each way and checks what arrives. */
export async function exchange(a: Transport, b: Transport, frame: Frame) {
  const atB = nextEvent(b, 'message');
  a.send(frame);
  const back = nextEvent(a, 'message');
  b.send(frame);
  return [await atB, await back] as const;
}

// ---- data-channel pairs -------------------------------------------------------

/** Resolves once `channel` is open. */
export const opened = (channel: {
  readonly readyState: string;
  addEventListener(type: 'open', listener: () => void): void;
}) =>
  new Promise<void>((resolve) => {
    if (channel.readyState === 'open') resolve();
    else channel.addEventListener('open', () => resolve());
  });

/** Two transports over one open data channel, and how to tear their connections down. */
export interface DataChannelPair<C> {
  a: Transport;
  b: Transport;
  channelA: C;
  channelB: C;
  teardown: () => Promise<void>;
}

/**
 * Joins `pcA` and `pcB` with `connect` (which returns both ends of one open
 * channel) and wraps the channels as transports; tears down if that fails.
 */
export async function dataChannelPair<C extends RTCDataChannelLike>(
  pcA: { readonly connectionState: string },
  pcB: { readonly connectionState: string },
  teardown: () => Promise<void>,
  connect: () => Promise<{ channelA: C; channelB: C }>,
  init: DataChannelTransportInit,
): Promise<DataChannelPair<C>> {
  try {
    const { channelA, channelB } = await connect();
    return {
      a: dataChannelTransport(channelA, { ...init, peerConnection: pcA }),
      b: dataChannelTransport(channelB, { ...init, peerConnection: pcB }),
      channelA,
      channelB,
      teardown,
    };
  } catch (error) {
    await teardown();
    throw error;
  }
}

/** Runs the transport compliance suite, as `name`, over data-channel pairs from `pair`. */
export function dataChannelCompliance(name: string, pair: () => Promise<DataChannelPair<unknown>>) {
  transportCompliance(
    name,
    async () => {
      const { a, b, teardown } = await pair();
      return { a, b, teardown };
    },
    // A data channel close carries no code or reason: the remote always sees 1000.
    { binary: true, closeCode: false },
  );
}

/**
 * Sends `total` bytes in 16 KiB chunks with `sendWithBackpressure` and checks
 * that bufferedAmount never exceeds the high-water mark plus one chunk, and
 * that every byte arrives in order. Closes the pair afterwards.
 */
export async function checkBackpressure({ a, b, teardown }: DataChannelPair<unknown>, total: number) {
  try {
    const chunk = 16 * 1024;
    const source = Uint8Array.from({ length: total }, (_, i) => (i * 7 + (i >> 14)) & 0xff);
    const received = new Uint8Array(total);
    let receivedBytes = 0;
    const done = new Promise<void>((resolve) =>
      b.on('message', (frame) => {
        const bytes = frame as Uint8Array;
        received.set(bytes, receivedBytes);
        receivedBytes += bytes.byteLength;
        if (receivedBytes >= total) resolve();
      }),
    );
    let maxBuffered = 0;
    let drains = 0;
    a.on('drain', () => drains++);
    for (let offset = 0; offset < total; offset += chunk) {
      await sendWithBackpressure(a, source.subarray(offset, offset + chunk));
      maxBuffered = Math.max(maxBuffered, a.bufferedAmount);
    }
    await done;
    expect(maxBuffered).toBeLessThanOrEqual(DEFAULT_HIGH_WATER_MARK + chunk);
    expect(drains).toBeGreaterThan(0);
    expect(receivedBytes).toBe(total);
    // Byte-for-byte, so any reordering or loss shows.
    expect(Buffer.compare(received, source)).toBe(0);
  } finally {
    a.close();
    b.close();
    await teardown();
  }
}

// ---- the rtc actor harness ------------------------------------------------------

export type EventOf<T extends RtcEmitted['type']> = Extract<RtcEmitted, { type: T }>;

const livePeers: RtcPeer[] = [];

/** Stops every `RtcPeer` started since the last call (for `afterEach`). */
export function stopPeers() {
  for (const peer of livePeers.splice(0)) peer.stop();
}

/**
 * One peer: a tiny parent machine that invokes one `rtc` actor (built from
 * `init`: the RTCPeerConnection constructor, its config, ...) and records
 * every event it sends back. The test plays signalling: it forwards
 * descriptions and candidates between peers with `send()`.
 */
export class RtcPeer {
  readonly events: RtcEmitted[] = [];
  readonly actor: Actor<AnyStateMachine>;
  private readonly listeners = new Set<(event: RtcEmitted) => void>();

  constructor(input: RtcInput, init: RtcActorInit) {
    const machine = setup({
      types: { events: {} as RtcEmitted },
      actors: { rtc: fromRtc(init) },
    }).createMachine({
      invoke: { id: 'rtc', src: 'rtc', input },
      on: {
        '*': {
          actions: ({ event }) => {
            this.events.push(event);
            for (const listener of [...this.listeners]) listener(event);
          },
        },
      },
    });
    this.actor = createActor(machine).start();
    livePeers.push(this);
  }

  send(command: RtcCommand) {
    this.actor.getSnapshot().children.rtc?.send(command);
  }

  of<T extends RtcEmitted['type']>(type: T): EventOf<T>[] {
    return this.events.filter((e): e is EventOf<T> => e.type === type);
  }

  /** Resolves with the `n`th (1-based) event of `type`, already recorded or still to come. */
  waitFor<T extends RtcEmitted['type']>(type: T, n = 1, timeout = 8000): Promise<EventOf<T>> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.of(type)[n - 1];
        if (!found) return false;
        clearTimeout(timer);
        this.listeners.delete(check);
        resolve(found);
        return true;
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        const got = this.events.map((e) => (e.type === 'rtc.failed' ? `rtc.failed (${e.error.message})` : e.type));
        reject(new Error(`no ${type} #${n} within ${timeout} ms; got ${got.join(', ')}`));
      }, timeout);
      if (!check()) this.listeners.add(check);
    });
  }

  /** Forwards every description and candidate (past and future) to `other`. */
  forwardTo(other: RtcPeer) {
    const forward = (event: RtcEmitted) => {
      if (event.type === 'rtc.description')
        other.send({ type: 'rtc.remoteDescription', description: event.description });
      if (event.type === 'rtc.candidate') other.send({ type: 'rtc.remoteCandidate', candidate: event.candidate });
    };
    this.events.forEach(forward);
    this.listeners.add(forward);
  }

  stop() {
    this.actor.stop();
  }
}
