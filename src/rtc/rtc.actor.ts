import { fromCallback, type CallbackActorLogic } from 'xstate';
import { ErrorCode, RtcError } from '../errors.js';
import type { Transport } from '../transport.js';
import { dataChannelTransport } from './data-channel-transport.js';
import {
  listen,
  type RTCDataChannelLike,
  type RTCPeerConnectionLike,
  type RtcIceCandidateInit,
  type RtcMediaTrackLike,
  type RtcSessionDescription,
} from './types.js';

/** How {@link fromRtc} builds peer connections. One init serves every invocation. */
export interface RtcActorInit {
  /**
   * The `RTCPeerConnection` constructor: the browser's global, werift's, or
   * node-datachannel's polyfill. Injected so that machines and this module
   * never import a WebRTC library.
   */
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  RTCPeerConnection: new (config?: any) => RTCPeerConnectionLike;
  /**
   * Passed to the constructor (`iceServers` etc.). Note that werift rejects an
   * `iceCandidatePoolSize` option.
   * @default {}
   */
  config?: Record<string, unknown>;
  /**
   * `true`: report the description right away and each local candidate as an
   * `rtc.candidate` event; an offerer's offer carries no candidate, and its
   * candidates follow once the answer is applied (see `rtc.candidate`).
   * `false`: wait for ICE gathering to complete (or `gatheringTimeout`) and
   * report one SDP with every candidate in it, for protocols without a
   * candidate message.
   * @default false
   */
  trickle?: boolean;
  /**
   * Label of the data channel the offerer creates. The answerer takes the
   * first channel the remote opens, whatever its label.
   * @default 'signalbox'
   */
  channelLabel?: string;
  /** High-water mark of the data-channel transport. @default 262144 (256 KiB) */
  highWaterMark?: number;
  /** Low-water mark of the data-channel transport. @default 65536 (64 KiB) */
  lowWaterMark?: number;
  /**
   * Non-trickle only: stop waiting for ICE gathering to complete after this
   * many milliseconds and report the SDP with the candidates found so far.
   * @default 5000
   */
  gatheringTimeout?: number;
  /**
   * Non-trickle only: report the description once no new local candidate has
   * come for this many milliseconds, without waiting for ICE gathering to
   * complete, provided it already lists a candidate and, when
   * `config.iceServers` names STUN (TURN) servers, a server-reflexive (relay)
   * one. The description is still a complete one: it carries every candidate
   * gathered by then, which is every candidate that matters (a browser goes
   * on for ~120 ms after its UDP host candidates, gathering TCP candidates
   * that a loopback or LAN connection does not use). A server that never
   * answers leaves the wait to `gatheringTimeout`, as before.
   * `Infinity` waits for gathering to complete. A browser reports its UDP
   * host candidates of every network within ~2 ms of each other (one pass
   * over the interfaces), so 5 ms is enough to see them all; a longer period
   * is paid on each description a handshake makes in turn (three in
   * CloudLink: 20 ms cost Chromium ~45 ms more per link).
   * @default 5
   */
  gatheringQuietPeriod?: number;
  /**
   * Media to send, next to the data channel: called once per invocation with
   * its input (its `label` tells connections apart); every returned track is
   * added with `addTrack(track, ...streams)` before the offer (offerer) or
   * the answer (answerer). An answerer's track rides the transceiver of the
   * same kind that the offer opened, so a kind the offer does not carry is not
   * sent (there is no renegotiation). Remote tracks arrive as `rtc.track`. An
   * implementation without media (node-datachannel's polyfill) or a throwing
   * callback ends in `rtc.failed`.
   * @default none: a data channel only
   *
   * @example
   * ```ts
   * const camera = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
   * fromRtc({ RTCPeerConnection, trickle: true, media: () => ({ tracks: camera.getTracks(), streams: [camera] }) });
   * ```
   */
  media?: (input: RtcInput) => RtcLocalMedia | undefined;
}

/** What {@link RtcActorInit.media} gives one connection to send. */
export interface RtcLocalMedia {
  /** `MediaStreamTrack`s (the browser's, werift's). */
  tracks: readonly RtcMediaTrackLike[];
  /** The `MediaStream`s they belong to, as the remote's `rtc.track` event will list them. @default [] */
  streams?: readonly unknown[];
}

/** Input of one `rtc` actor invocation. */
export interface RtcInput {
  /** Copied into every event the actor sends, so a parent can tell several connections apart. */
  label: string;
  /** The offerer creates the data channel and the offer; the answerer answers. */
  role: 'offerer' | 'answerer';
  /** Answerer: the remote SDP offer. Without it, the answerer waits for an `rtc.remoteDescription` offer. */
  remoteOffer?: string;
  /**
   * Answerer: the offerer gets our answer later than we make it (CloudLink
   * sends it only after the host's own answer came back). Then our ICE checks
   * can succeed before the offerer has our answer (an offerer answers checks
   * before it has it), and if we are the DTLS client our hello, sent at once,
   * is dropped by an offerer that has no DTLS transport yet (libdatachannel,
   * werift; a browser keeps it): libdatachannel then waits a full second for
   * its DTLS retransmission. So, for the first offer only (an ICE restart
   * keeps the roles agreed):
   * - an offer made by libdatachannel (`o=rtc`) is answered as the DTLS
   *   server (applied as if it said `a=setup:active`, so a browser or
   *   libdatachannel answers `a=setup:passive`; werift answers active
   *   whatever the offer says, and a libdatachannel offerer waits for the
   *   hello it then sends): the handshake starts from the offerer, once it
   *   has our answer, and nothing is held;
   * - another offer answered by libdatachannel is applied without its
   *   candidates, which are held (with any `rtc.remoteCandidate`) until
   *   `rtc.releaseCandidates`: without them our ICE agent cannot start checks,
   *   so our side connects through the offerer's own checks (a peer-reflexive
   *   candidate), which begin only once it has our answer. Send
   *   `rtc.releaseCandidates` once the remote has our answer, so that a NAT
   *   that needs our own checks is still traversed;
   * - otherwise (a browser or werift answers) nothing changes: they lose no
   *   hello, and holding candidates only slowed them down.
   * @default false
   */
  lateAnswer?: boolean;
}

/** Events the `rtc` actor sends to its parent. Every one carries the `label` of its input. */
export type RtcEmitted =
  /** The local offer or answer, to relay to the remote peer. */
  | { type: 'rtc.description'; label: string; description: { type: 'offer' | 'answer'; sdp: string } }
  /**
   * Trickle mode only: one local candidate, to relay. The end of candidates is
   * not reported. An offerer reports its candidates only once the remote
   * answer is applied (the answer's own candidates are added after it), so no
   * connectivity check starts before both descriptions are in place.
   * node-datachannel 0.33 (libdatachannel 0.24) checks the remote DTLS
   * certificate against a remote description it may not have stored yet:
   * when the answerer already knew the offerer's candidates, its checks and
   * then its DTLS hello reached the offerer while it applied the answer, and
   * about one connection in twenty (more on a loaded machine) failed there
   * ("DTLS alert: unknown CA"). It costs the answerer's first checks one
   * signalling trip. An answerer reports its answer, then its candidates.
   */
  | { type: 'rtc.candidate'; label: string; candidate: RtcIceCandidateInit }
  /** The data channel is open; `transport` wraps it. */
  | { type: 'rtc.open'; label: string; transport: Transport }
  /** The remote sends a media track (`MediaStreamTrack` of this implementation), in these `MediaStream`s. */
  | { type: 'rtc.track'; label: string; track: RtcMediaTrackLike; streams: readonly unknown[] }
  /**
   * The connection failed, the data channel errored, a remote description was
   * rejected, or setting up failed. The actor stays alive: the parent decides
   * (stop it, or send `rtc.restartIce`).
   */
  | { type: 'rtc.failed'; label: string; error: RtcError }
  /** The data channel or the connection closed after having been open. Sent once. */
  | { type: 'rtc.closed'; label: string };

/** Events the `rtc` actor accepts from its parent (`sendTo`). */
export type RtcCommand =
  /** The remote answer (offerer) or offer (answerer, or anyone for a renegotiation / ICE restart). */
  | { type: 'rtc.remoteDescription'; description: { type: 'offer' | 'answer'; sdp: string } }
  /** A remote candidate. It may arrive before the remote description: it is queued until that is set. */
  | { type: 'rtc.remoteCandidate'; candidate: RtcIceCandidateInit }
  /**
   * Create an offer with `iceRestart: true` and report it as a new `rtc.description`.
   * An implementation that cannot restart ICE (node-datachannel) reports `rtc.failed` instead.
   */
  | { type: 'rtc.restartIce' }
  /**
   * After {@link RtcInput.lateAnswer}: the remote has our answer.
   * The held candidates are added, unless ICE is connected already (the
   * remote's checks reached us): then they are dropped. Ignored otherwise.
   */
  | { type: 'rtc.releaseCandidates' }
  /** Close the data channel and the connection (`rtc.closed` follows if the channel was open). */
  | { type: 'rtc.close' };

/** The logic {@link fromRtc} returns. */
export type RtcActorLogic = CallbackActorLogic<RtcCommand, RtcInput>;

const DEFAULT_GATHERING_TIMEOUT = 5000;
const DEFAULT_GATHERING_QUIET_PERIOD = 5;

/**
 * The `rtc` actor: a callback actor around one `RTCPeerConnection` with one
 * ordered data channel, and the media tracks of {@link RtcActorInit.media}
 * if any. A machine invokes it as `rtc`; the caller provides it.
 *
 * - Offerer: creates the data channel and an offer, sets it locally and sends
 *   `rtc.description` (non-trickle: once ICE gathering completed). It then
 *   expects the answer as `rtc.remoteDescription`.
 * - Answerer: applies `input.remoteOffer` (or the first `rtc.remoteDescription`
 *   offer), creates the answer and sends it as `rtc.description`.
 * - Both: `rtc.open` with a {@link Transport} once the channel is open,
 *   `rtc.closed` once it closed, `rtc.failed` for any failure. Nothing is
 *   thrown out of the actor.
 *
 * Commands are applied one at a time, in the order received, so a candidate
 * that arrives while the remote description is being applied waits for it.
 * Stopping the actor closes the channel and the connection and removes every
 * listener and timer, so nothing keeps the process alive.
 *
 * @example
 * ```ts
 * import { RTCPeerConnection } from 'werift'; // or the browser's global
 * import { sendTo, setup } from 'xstate';
 *
 * const caller = setup({
 *   actors: { rtc: fromRtc({ RTCPeerConnection, trickle: true }) },
 * }).createMachine({
 *   invoke: { id: 'rtc', src: 'rtc', input: { label: 'main', role: 'offerer' } },
 *   on: {
 *     'rtc.description': { actions: ({ event }) => signalling.send({ type: 'offer', detail: event.description }) },
 *     'rtc.candidate': { actions: ({ event }) => signalling.send({ type: 'candidate', detail: event.candidate }) },
 *     answer: { actions: sendTo('rtc', ({ event }) => ({ type: 'rtc.remoteDescription', description: event.detail })) },
 *     'rtc.open': { actions: ({ event }) => event.transport.send('hello') },
 *   },
 * });
 * ```
 */
export function fromRtc(init: RtcActorInit): RtcActorLogic {
  if (typeof init?.RTCPeerConnection !== 'function') {
    throw new TypeError(
      'fromRtc() needs an RTCPeerConnection constructor: pass { RTCPeerConnection } (browser global, werift, node-datachannel)',
    );
  }
  const trickle = init.trickle ?? false;
  const channelLabel = init.channelLabel ?? 'signalbox';
  const gatheringTimeout = init.gatheringTimeout ?? DEFAULT_GATHERING_TIMEOUT;
  const quietPeriod = init.gatheringQuietPeriod ?? DEFAULT_GATHERING_QUIET_PERIOD;
  if (!(quietPeriod >= 0)) {
    throw new RangeError(`fromRtc(): gatheringQuietPeriod must be a number >= 0, got ${init.gatheringQuietPeriod}`);
  }
  const neededTypes = candidateTypesFromServers(init.config?.iceServers);

  return fromCallback<RtcCommand, RtcInput>(({ input, sendBack, receive }) => {
    const label = String(input?.label ?? '');
    let stopped = false;
    /** Set by `rtc.close`: later commands are ignored. */
    let closing = false;
    let pc: RTCPeerConnectionLike | undefined;
    let channel: RTCDataChannelLike | undefined;
    let transport: Transport | undefined;
    let opened = false;
    let closedReported = false;
    /** Remote candidates wait here until a remote description is set. */
    let remoteDescriptionSet = false;
    const pendingRemoteCandidates: RtcIceCandidateInit[] = [];
    /** {@link RtcInput.lateAnswer}: whether the first offer is still to come, then the remote's candidates held, until `rtc.releaseCandidates`. */
    let lateFirstOffer = input?.lateAnswer === true && input.role === 'answerer';
    let heldRemoteCandidates: RtcIceCandidateInit[] | undefined;
    /**
     * Trickle: local candidates wait here while they may not go out yet, so
     * the remote always gets the description first (werift gathers inside
     * setLocalDescription); an offerer's wait until the answer is applied (see
     * `rtc.candidate`). `undefined` while they may go out directly.
     */
    let heldLocalCandidates: RtcIceCandidateInit[] | undefined = trickle && input?.role === 'offerer' ? [] : undefined;
    /** Undo functions: listeners, timers, pending waits. Run on stop. */
    const disposers = new Set<() => void>();
    const channelOffs: Array<() => void> = [];
    let queue: Promise<void> = Promise.resolve();

    const report = (event: RtcEmitted) => {
      if (!stopped) sendBack(event);
    };
    const fail = (message: string, cause?: unknown) => {
      report({
        type: 'rtc.failed',
        label,
        error: new RtcError(ErrorCode.RtcFailed, message, cause === undefined ? undefined : { cause }),
      });
    };
    const reportClosed = () => {
      if (closedReported || !opened) return;
      closedReported = true;
      report({ type: 'rtc.closed', label });
    };

    /** Runs `op` after every earlier one; a failure becomes `rtc.failed` with `what` as context. */
    const enqueue = (what: string, op: (pc: RTCPeerConnectionLike) => Promise<void>) => {
      queue = queue.then(async () => {
        if (stopped || closing || !pc) return;
        try {
          await op(pc);
        } catch (error) {
          if (!stopped && !closing) fail(`${what}: ${describe(error)}`, error);
        }
      });
    };

    /** Adds the local media of {@link RtcActorInit.media}, once per connection. */
    let mediaAdded = false;
    const addLocalMedia = (peer: RTCPeerConnectionLike) => {
      if (mediaAdded || !init.media) return;
      mediaAdded = true;
      try {
        const media = init.media(input);
        if (!media?.tracks?.length) return;
        if (typeof peer.addTrack !== 'function') throw new Error('this RTCPeerConnection has no addTrack()');
        for (const track of media.tracks) peer.addTrack(track, ...(media.streams ?? []));
      } catch (error) {
        throw new Error(`could not add the local media: ${describe(error)}`, { cause: error });
      }
    };

    // ---- data channel -------------------------------------------------------

    const adoptChannel = (ch: RTCDataChannelLike) => {
      channel = ch;
      /** What the channel delivers before its `open` event (werift can), for the transport. */
      const early: unknown[] = [];
      try {
        ch.binaryType = 'arraybuffer'; // before any message: a browser's default Blob would be refused
      } catch {
        // read-only: the transport reports what arrives
      }
      const onOpen = () => {
        for (const off of channelOffs.splice(0)) off();
        if (stopped || transport) return;
        try {
          transport = dataChannelTransport(ch, {
            ...(init.highWaterMark !== undefined && { highWaterMark: init.highWaterMark }),
            ...(init.lowWaterMark !== undefined && { lowWaterMark: init.lowWaterMark }),
            ...(pc && { peerConnection: pc }),
            earlyMessages: early,
          });
        } catch (error) {
          fail(`could not wrap the data channel: ${describe(error)}`, error);
          return;
        }
        opened = true;
        transport.on('error', (error) => fail(error.message, error));
        transport.on('close', reportClosed);
        report({ type: 'rtc.open', label, transport });
      };
      if (ch.readyState === 'open') {
        onOpen();
        return;
      }
      channelOffs.push(
        listen(ch, 'open', onOpen),
        listen(ch, 'message', (event: { data: unknown } | undefined) => void early.push(event?.data)),
        listen(ch, 'error', (event: { error?: unknown } | undefined) => {
          const cause = event?.error ?? event;
          fail(`data channel error before it opened: ${describe(cause)}`, cause);
        }),
        listen(ch, 'close', () => {
          for (const off of channelOffs.splice(0)) off();
          if (!closing) fail('the data channel closed before it opened');
        }),
      );
    };

    // ---- negotiation --------------------------------------------------------

    /**
     * Non-trickle: resolves when gathering completed, at the end-of-candidates
     * event, `quietPeriod` after the last new candidate once the candidates
     * the configuration asks for are there (see
     * {@link RtcActorInit.gatheringQuietPeriod}), or after `gatheringTimeout`.
     */
    const gatheringComplete = (peer: RTCPeerConnectionLike) =>
      new Promise<void>((resolve) => {
        const sdp = () => peer.localDescription?.sdp ?? '';
        // Right after an ICE-restart setLocalDescription a browser may still
        // say 'complete' (the old generation) for a moment: trust 'complete'
        // only if the new description already lists a candidate.
        if (peer.iceGatheringState === 'complete' && /\na=candidate:/.test(sdp())) {
          resolve();
          return;
        }
        /** Types of the candidates gathered so far: from the description, and from the events (which may come first). */
        const seen = new Set<string>();
        let quiet: ReturnType<typeof setTimeout> | undefined;
        const done = () => {
          disposers.delete(done);
          clearTimeout(deadline);
          clearTimeout(quiet);
          offState();
          offCandidate();
          resolve();
        };
        /** (Re)starts the quiet period if what we have is enough to connect. */
        const settleSoon = (candidate?: string) => {
          for (const [, type] of `${candidate}\n${sdp()}`.matchAll(/^(?:a=)?candidate:.* typ (\w+)/gm)) seen.add(type!);
          if (!Number.isFinite(quietPeriod) || seen.size === 0) return;
          for (const type of neededTypes) if (!seen.has(type)) return;
          clearTimeout(quiet);
          quiet = setTimeout(done, quietPeriod);
        };
        const deadline = setTimeout(done, gatheringTimeout);
        const offState = listen(peer, 'icegatheringstatechange', () => {
          if (peer.iceGatheringState === 'complete') done();
        });
        const offCandidate = listen(peer, 'icecandidate', (event: { candidate?: unknown } | undefined) => {
          const candidate = candidateInit(event?.candidate);
          if (candidate) settleSoon(candidate.candidate);
          else done();
        });
        disposers.add(done);
        settleSoon();
      });

    /** Trickle: the local candidates held so far go out, and later ones go out as they come. */
    const releaseLocalCandidates = () => {
      const held = heldLocalCandidates ?? [];
      heldLocalCandidates = undefined;
      for (const candidate of held) report({ type: 'rtc.candidate', label, candidate });
    };

    /**
     * Reports our current local description (after gathering in non-trickle
     * mode). Trickle: an answer's held candidates follow it; an offer goes
     * without its candidates, which are held until the answer is applied.
     */
    const reportLocalDescription = async (peer: RTCPeerConnectionLike, type: 'offer' | 'answer', created?: string) => {
      if (!trickle) await gatheringComplete(peer);
      if (stopped || closing) return;
      const sdp = peer.localDescription?.sdp || created;
      if (!sdp) throw new Error(`no local ${type} SDP after setLocalDescription`);
      if (!trickle) {
        report({ type: 'rtc.description', label, description: { type, sdp } });
      } else if (type === 'answer') {
        report({ type: 'rtc.description', label, description: { type, sdp } });
        releaseLocalCandidates();
      } else {
        const taken = takeCandidates(sdp);
        const held = (heldLocalCandidates ??= []);
        for (const candidate of taken.candidates) {
          if (!held.some((c) => c.candidate === candidate.candidate)) held.push(candidate);
        }
        report({ type: 'rtc.description', label, description: { type, sdp: taken.sdp } });
      }
    };

    const makeOffer = async (peer: RTCPeerConnectionLike, iceRestart: boolean) => {
      const offer = await peer.createOffer(iceRestart ? { iceRestart: true } : undefined);
      if (iceRestart) refuseUnrestartedOffer(peer, offer.sdp);
      // Candidates the remote trickles for this new offer must wait for its answer.
      remoteDescriptionSet = false;
      if (trickle) heldLocalCandidates = [];
      await peer.setLocalDescription({ type: 'offer', sdp: offer.sdp });
      await reportLocalDescription(peer, 'offer', offer.sdp);
    };

    const addRemoteCandidate = async (peer: RTCPeerConnectionLike, candidate: RtcIceCandidateInit) => {
      try {
        await peer.addIceCandidate(candidate);
      } catch {
        // Not fatal: a stale (pre-restart) or unusable candidate is dropped, as
        // browsers do. If no candidate works, connectionState 'failed' reports it.
      }
    };

    /**
     * {@link RtcInput.lateAnswer}: adds the held remote candidates, or drops them (ICE connected without them).
     * Held only from an offer, so its remote description is set by now (the queue runs in order).
     */
    const releaseHeld = async (peer: RTCPeerConnectionLike, drop: boolean) => {
      const held = heldRemoteCandidates ?? [];
      heldRemoteCandidates = undefined;
      if (!drop) for (const candidate of held) await addRemoteCandidate(peer, candidate);
    };

    const applyRemoteDescription = async (peer: RTCPeerConnectionLike, description: unknown) => {
      let checked = checkDescription(description);
      if (lateFirstOffer && checked.type === 'offer') {
        lateFirstOffer = false;
        if (madeByLibdatachannel(checked.sdp)) {
          checked = { type: 'offer', sdp: checked.sdp.replace(/^a=setup:actpass(?=\r?$)/gm, 'a=setup:active') };
        } else {
          const { sdp, candidates } = takeCandidates(checked.sdp);
          heldRemoteCandidates = candidates;
          checked = { type: 'offer', sdp };
        }
      }
      // Trickle, the answer to our offer: set without its candidates, which are added right after (see `rtc.candidate`).
      const answerCandidates: RtcIceCandidateInit[] = [];
      if (trickle && checked.type === 'answer') {
        const { sdp, candidates } = takeCandidates(checked.sdp);
        answerCandidates.push(...candidates);
        checked = { type: 'answer', sdp };
      }
      try {
        await peer.setRemoteDescription(checked);
      } catch (error) {
        throw new Error(`the remote ${checked.type} was rejected: ${describe(error)}`, { cause: error });
      }
      remoteDescriptionSet = true;
      for (const candidate of [...answerCandidates, ...pendingRemoteCandidates.splice(0)])
        await addRemoteCandidate(peer, candidate);
      if (checked.type !== 'offer') {
        if (trickle) releaseLocalCandidates();
        resumeWeriftIceAfterRestart(peer);
        return;
      }
      addLocalMedia(peer);
      const answer = await peer.createAnswer();
      // Our DTLS side is not libdatachannel's: nothing to hold the candidates for (see RtcInput.lateAnswer).
      if (!madeByLibdatachannel(answer.sdp)) await releaseHeld(peer, false);
      if (trickle) heldLocalCandidates = [];
      await peer.setLocalDescription({ type: 'answer', sdp: answer.sdp });
      resumeWeriftIceAfterRestart(peer);
      await reportLocalDescription(peer, 'answer', answer.sdp);
    };

    // ---- commands -----------------------------------------------------------

    const closeEverything = () => {
      try {
        transport?.close();
      } catch {
        // close() is idempotent and should not throw; nothing to add if it does
      }
      if (!transport && channel) {
        try {
          channel.close();
        } catch {
          // already closed
        }
      }
      if (!pc) return;
      const peer = pc;
      // node-datachannel's polyfill (0.33) defers the channel's close() to
      // setImmediate and keeps readyState 'open' until then; closing the
      // connection first races that close, and a werift remote then missed it
      // (about 1 in 10 runs here: its channel stayed open). Browsers and werift
      // are 'closing' at once and close the connection right away as before.
      if (channel?.readyState === 'open') afterCurrentTask(() => closePeer(peer));
      else closePeer(peer);
    };

    receive((command) => {
      if (stopped || closing) return;
      switch (command?.type) {
        case 'rtc.remoteDescription':
          enqueue('bad remote description', (peer) => applyRemoteDescription(peer, command.description));
          break;
        case 'rtc.remoteCandidate': {
          const candidate = command.candidate;
          if (!candidate || typeof candidate !== 'object') return;
          enqueue('could not add a remote candidate', async (peer) => {
            if (heldRemoteCandidates) heldRemoteCandidates.push(candidate);
            else if (remoteDescriptionSet) await addRemoteCandidate(peer, candidate);
            else pendingRemoteCandidates.push(candidate);
          });
          break;
        }
        case 'rtc.releaseCandidates':
          enqueue('could not add a remote candidate', (peer) =>
            releaseHeld(peer, ICE_CONNECTED.has(peer.iceConnectionState ?? '')),
          );
          break;
        case 'rtc.restartIce':
          enqueue('ICE restart failed', (peer) => makeOffer(peer, true));
          break;
        case 'rtc.close':
          closing = true;
          for (const dispose of [...disposers]) dispose();
          closeEverything();
          // A peer connection closed by close() fires no event in browsers: report here.
          reportClosed();
          break;
      }
    });

    // ---- setup --------------------------------------------------------------

    const setup = () => {
      if (input?.role !== 'offerer' && input?.role !== 'answerer') {
        fail(`rtc actor input.role must be 'offerer' or 'answerer', got ${JSON.stringify(input?.role)}`);
        return;
      }
      try {
        pc = new init.RTCPeerConnection({ ...init.config });
      } catch (error) {
        fail(`could not create the RTCPeerConnection: ${describe(error)}`, error);
        return;
      }
      const peer = pc;
      disposers.add(
        listen(peer, 'connectionstatechange', () => {
          if (stopped || closing) return;
          const state = peer.connectionState;
          if (state === 'failed') fail('the peer connection failed');
          else if (state === 'closed') {
            // Closed without our asking (werift closes when ICE closes).
            if (opened) reportClosed();
            else fail('the peer connection closed before the data channel opened');
          }
        }),
      );
      if (trickle) {
        disposers.add(
          listen(peer, 'icecandidate', (event: { candidate?: unknown } | undefined) => {
            const candidate = candidateInit(event?.candidate);
            if (!candidate) return; // end of candidates: not reported
            if (heldLocalCandidates) heldLocalCandidates.push(candidate);
            else report({ type: 'rtc.candidate', label, candidate });
          }),
        );
      }
      disposers.add(
        listen(peer, 'datachannel', (event: { channel?: RTCDataChannelLike } | undefined) => {
          // The first channel the remote opens is ours; others belong to someone else.
          if (!channel && event?.channel) adoptChannel(event.channel);
        }),
      );
      disposers.add(
        listen(peer, 'track', (event: { track?: RtcMediaTrackLike; streams?: readonly unknown[] } | undefined) => {
          if (event?.track)
            report({ type: 'rtc.track', label, track: event.track, streams: [...(event.streams ?? [])] });
        }),
      );

      if (input.role === 'offerer') {
        try {
          adoptChannel(peer.createDataChannel(channelLabel, { ordered: true }));
        } catch (error) {
          fail(`could not create the data channel: ${describe(error)}`, error);
          return;
        }
        enqueue('could not create the offer', async (p) => {
          addLocalMedia(p);
          await makeOffer(p, false);
        });
      } else if (input.remoteOffer !== undefined) {
        const remoteOffer = input.remoteOffer;
        enqueue('bad remote offer', (p) => applyRemoteDescription(p, { type: 'offer', sdp: remoteOffer }));
      }
    };
    setup();

    return () => {
      stopped = true;
      for (const dispose of [...disposers]) dispose();
      disposers.clear();
      for (const off of channelOffs.splice(0)) off();
      closeEverything();
    };
  });
}

const ICE_CONNECTED = new Set(['connected', 'completed']);

/** libdatachannel (node-datachannel) names every SDP's origin `rtc`. */
const madeByLibdatachannel = (sdp: string | undefined) => /^o=rtc /m.test(sdp ?? '');

/**
 * @internal Exported for its unit test; not re-exported from the package.
 *
 * Splits the candidates off an SDP: the SDP without its `a=candidate:` and
 * `a=end-of-candidates` lines, and each candidate as `RTCIceCandidateInit`
 * with the mid and index of its media section.
 */
export function takeCandidates(sdp: string): { sdp: string; candidates: RtcIceCandidateInit[] } {
  const lines = sdp.split(/\r?\n/);
  const kept: string[] = [];
  const found: Array<{ candidate: string; index: number }> = [];
  const mids: string[] = [];
  let index = -1;
  for (const line of lines) {
    if (line.startsWith('m=')) index++;
    if (line.startsWith('a=mid:') && index >= 0) mids[index] = line.slice('a=mid:'.length);
    if (line.startsWith('a=candidate:') && index >= 0) found.push({ candidate: line.slice(2), index });
    else if (line !== 'a=end-of-candidates') kept.push(line);
  }
  const candidates = found.map(({ candidate, index }) => ({
    candidate,
    sdpMLineIndex: index,
    ...(mids[index] !== undefined && { sdpMid: mids[index] }),
  }));
  return { sdp: kept.join('\r\n'), candidates };
}

/**
 * The candidate types a description must list before gathering may end
 * early: `srflx` if a STUN server is configured, `relay` if a TURN server is.
 */
function candidateTypesFromServers(iceServers: unknown): string[] {
  // Every URL is a JSON string that starts with its scheme.
  const servers = JSON.stringify(iceServers ?? []);
  return [/"stuns?:/i.test(servers) && 'srflx', /"turns?:/i.test(servers) && 'relay'].filter(
    (type): type is string => !!type,
  );
}

/** Validates a description from signalling (it is untrusted data). */
function checkDescription(description: unknown): RtcSessionDescription {
  const d = description as Partial<RtcSessionDescription> | null | undefined;
  if (!d || (d.type !== 'offer' && d.type !== 'answer') || typeof d.sdp !== 'string') {
    throw new Error('expected { type: "offer" | "answer", sdp: string }');
  }
  // werift accepts any text as a remote offer and answers it; browsers reject
  // it. Check the minimum here so every implementation fails the same way.
  if (!/^v=0\r?\n/.test(d.sdp)) throw new Error('not an SDP document (it must start with "v=0")');
  if (!/\nm=application /.test(d.sdp)) throw new Error('the SDP has no data channel (m=application) section');
  return { type: d.type, sdp: d.sdp };
}

/**
 * werift (0.25) workaround, a no-op elsewhere. After an ICE restart werift
 * resets its ICE transport, but its connect() returns early because DTLS is
 * still connected, so no connectivity check ever runs with the new
 * credentials and the data channel goes silent. Once the answer is applied
 * (where werift calls connect()), start each ICE transport that is in exactly
 * that state. Browsers and node-datachannel have no `dtlsTransports` array.
 */
function resumeWeriftIceAfterRestart(pc: RTCPeerConnectionLike): void {
  const transports = (pc as { dtlsTransports?: unknown }).dtlsTransports;
  if (!Array.isArray(transports)) return;
  for (const dtls of transports as Array<{
    state?: string;
    iceTransport?: { state?: string; start?: () => Promise<void> };
  }>) {
    const ice = dtls?.iceTransport;
    if (dtls?.state !== 'connected' || typeof ice?.start !== 'function') continue;
    if (ice.state === 'connected' || ice.state === 'checking' || ice.state === 'closed') continue;
    ice.start().catch(() => {
      // Its failure shows up as connectionState 'failed', which we report.
    });
  }
}

/**
 * An ICE-restart offer must carry new ICE credentials. node-datachannel's
 * polyfill (0.33) cannot restart ICE: its `createOffer()` ignores `iceRestart`
 * and hands back the first offer again. Applying that would only renegotiate
 * with the old credentials, so refuse before touching the connection (the
 * parent gets `rtc.failed` and can replace the connection). Browsers and
 * werift change the ufrag and pass.
 */
function refuseUnrestartedOffer(pc: RTCPeerConnectionLike, offerSdp: string | undefined): void {
  const ufrag = (sdp: string | undefined) => (sdp ? /\na=ice-ufrag:(\S+)/.exec(sdp)?.[1] : undefined);
  const before = ufrag(pc.localDescription?.sdp);
  if (before !== undefined && before === ufrag(offerSdp)) {
    throw new Error(
      'this RTCPeerConnection does not support ICE restart (the new offer kept its ICE credentials; ' +
        "node-datachannel's polyfill cannot restart ICE): close this connection and create a new one",
    );
  }
}

/**
 * Turns a local candidate (a browser `RTCIceCandidate`, werift's plain object,
 * node-datachannel's polyfill object) into JSON-safe `RTCIceCandidateInit`
 * data, or `undefined` for an end-of-candidates marker. node-datachannel
 * reports the SDP attribute line (`a=candidate:…`); the `a=` is dropped so the
 * remote gets the W3C form (`candidate:…`) whatever its implementation.
 */
function candidateInit(candidate: unknown): RtcIceCandidateInit | undefined {
  if (!candidate || typeof candidate !== 'object') return undefined;
  const c = candidate as RtcIceCandidateInit & { toJSON?: () => RtcIceCandidateInit };
  const json = typeof c.toJSON === 'function' ? c.toJSON() : c;
  if (!json.candidate) return undefined;
  const init: RtcIceCandidateInit = { candidate: json.candidate.replace(/^a=/, '') };
  if (json.sdpMid != null) init.sdpMid = json.sdpMid;
  if (json.sdpMLineIndex != null) init.sdpMLineIndex = json.sdpMLineIndex;
  if (json.usernameFragment != null) init.usernameFragment = json.usernameFragment;
  return init;
}

/** Closes without throwing and without leaving an unhandled rejection (werift's close() is async). */
function closePeer(pc: RTCPeerConnectionLike): void {
  try {
    const result = pc.close() as PromiseLike<unknown> | undefined;
    if (result && typeof result.then === 'function') result.then(undefined, () => {});
  } catch {
    // already closed
  }
}

/** `setImmediate` where it exists (Node), else a zero timeout. */
function afterCurrentTask(fn: () => void): void {
  if (typeof setImmediate === 'function') setImmediate(fn);
  else setTimeout(fn, 0);
}

function describe(error: unknown): string {
  if (error instanceof Error) return error.message;
  if (typeof error === 'object' && error && 'message' in error) return String(error.message);
  return String(error);
}
