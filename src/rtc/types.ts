/**
 * Minimal structural types for the WebRTC objects the `rtc` actor and the
 * data-channel transport touch. They name only what signalbox uses, so the
 * browser's `RTCPeerConnection`, werift's and node-datachannel's polyfill all
 * satisfy them without a cast, and nothing here imports a WebRTC library.
 *
 * Events: both the browser and werift implement `addEventListener` (werift on
 * top of Node's `EventEmitter`, next to its own `.subscribe()` events). Objects
 * that only have `on<type>` handler properties are supported too: see
 * {@link listen}.
 *
 * @module
 */

/** A handler for any WebRTC event; the event's shape depends on its type. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type RtcEventListener = (event: any) => void;

/** Something that reports events W3C-style. */
export interface RtcEventTargetLike {
  addEventListener?(type: string, listener: RtcEventListener): void;
  removeEventListener?(type: string, listener: RtcEventListener): void;
}

/**
 * The shape of an ICE candidate on the wire: the same fields as the DOM's
 * `RTCIceCandidateInit`, declared here so the library's types do not need the
 * DOM lib. Plain data, JSON-serialisable.
 */
export interface RtcIceCandidateInit {
  candidate?: string;
  sdpMid?: string | null;
  sdpMLineIndex?: number | null;
  usernameFragment?: string | null;
}

/** An SDP offer or answer as it travels over signalling. */
export interface RtcSessionDescription {
  type: 'offer' | 'answer';
  sdp: string;
}

/** What `createOffer()` / `localDescription` return (the DOM's `RTCSessionDescriptionInit` and werift's class both fit). */
export interface RtcSessionDescriptionLike {
  readonly type: string;
  readonly sdp?: string;
}

/**
 * The part of a W3C `RTCDataChannel` that signalbox uses.
 *
 * `readyState` is `'connecting' | 'open' | 'closing' | 'closed'`. Events used:
 * `open`, `message` (`event.data` is a string, an `ArrayBuffer`, or, in werift,
 * a `Buffer`), `bufferedamountlow`, `error`, `close`.
 */
export interface RTCDataChannelLike extends RtcEventTargetLike {
  readonly label: string;
  readonly readyState: string;
  readonly bufferedAmount: number;
  bufferedAmountLowThreshold: number;
  /** Browsers default to `'blob'`; the transport sets `'arraybuffer'`. werift has no such property. */
  binaryType?: string;
  send(data: string | Uint8Array): void;
  close(): void;
}

/**
 * The part of a `MediaStreamTrack` that signalbox looks at: the browser's and
 * werift's both fit. Tracks pass through the `rtc` actor untouched.
 */
export interface RtcMediaTrackLike {
  /** `'audio'` or `'video'`. */
  readonly kind: string;
}

/**
 * The part of a W3C `RTCPeerConnection` that the `rtc` actor uses.
 *
 * Events used: `icecandidate` (`event.candidate`: a candidate, or
 * null/undefined at the end), `icegatheringstatechange`,
 * `connectionstatechange`, `datachannel` (`event.channel`), `track`
 * (`event.track`, `event.streams`).
 */
export interface RTCPeerConnectionLike extends RtcEventTargetLike {
  readonly connectionState: string;
  readonly iceGatheringState: string;
  /** Read by `rtc.releaseCandidates` (absent: taken as not connected). */
  readonly iceConnectionState?: string;
  readonly localDescription: RtcSessionDescriptionLike | null;
  createDataChannel(label: string, options?: { ordered?: boolean }): RTCDataChannelLike;
  createOffer(options?: { iceRestart?: boolean }): Promise<RtcSessionDescriptionLike>;
  createAnswer(): Promise<RtcSessionDescriptionLike>;
  /** Always called with a description (node-datachannel's polyfill requires one). */
  setLocalDescription(description: { type: 'offer' | 'answer'; sdp?: string }): Promise<unknown>;
  setRemoteDescription(description: RtcSessionDescription): Promise<unknown>;
  addIceCandidate(candidate: RtcIceCandidateInit): Promise<unknown>;
  /** Only used when the actor is given media. node-datachannel's polyfill has it but throws "Not implemented". */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  addTrack?(track: RtcMediaTrackLike, ...streams: any[]): unknown;
  /** Browsers return `void`, werift a promise. */
  close(): unknown;
}

/**
 * @internal Shared by the data-channel transport and the `rtc` actor; not
 * re-exported from the package.
 *
 * Subscribes `listener` to `type` on a WebRTC object and returns the
 * unsubscribe function. Uses `addEventListener` where it exists (browser,
 * werift, node-datachannel) so that a caller's own `on<type>` handler is left
 * alone; otherwise chains onto the `on<type>` property and restores it on
 * unsubscribe.
 *
 * @example
 * ```ts
 * const off = listen(channel, 'close', () => console.log('closed'));
 * off();
 * ```
 */
export function listen(target: RtcEventTargetLike, type: string, listener: RtcEventListener): () => void {
  if (typeof target.addEventListener === 'function') {
    target.addEventListener(type, listener);
    let active = true;
    return () => {
      if (!active) return;
      active = false;
      target.removeEventListener?.(type, listener);
    };
  }
  const key = `on${type}`;
  const holder = target as Record<string, unknown>;
  const previous = holder[key] as RtcEventListener | null | undefined;
  const chained: RtcEventListener = function (this: unknown, event) {
    previous?.call(this, event);
    listener(event);
  };
  holder[key] = chained;
  return () => {
    // Only restore if nobody replaced our handler in the meantime.
    if (holder[key] === chained) holder[key] = previous ?? null;
  };
}
