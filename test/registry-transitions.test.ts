/**
 * Level 1 for registry: given a state and a message, the next state and what
 * is sent, spawned and emitted (XState's pure `transition()`, no actors run).
 */
import { describe, expect, it } from 'vitest';
import { memorySink } from '../machines/transfer/files.js';
import { registryClient } from '../machines/registry/client.machine.js';
import { RegistryError } from '../machines/registry/errors.js';
import { registryFetch } from '../machines/registry/fetch.machine.js';
import { memoryProvider } from '../machines/registry/files.js';
import type { ClientMessage, FileEntry } from '../machines/registry/protocol.js';
import { registryServe } from '../machines/registry/serve.machine.js';
import { registrySession } from '../machines/registry/server.machine.js';
import { ErrorCode, ProtocolError, RtcError } from '../src/errors.js';
import { stubTransport } from './model-helpers.js';
import { run } from './transition-helpers.js';

const provider = memoryProvider({ 'mine.txt': new Uint8Array(3) });
const MINE: FileEntry[] = [{ path: 'mine.txt', size: 3 }];
const THEIRS: FileEntry[] = [{ path: 'theirs.bin', size: 10, sha256: 'a'.repeat(64) }];
const listed = { type: 'xstate.done.actor.listFiles', output: MINE };
const welcome = { type: 'Welcome', detail: { id: 'me' } };
const peerP = { type: 'RegisterPeer', detail: { peer: 'P', files: THEIRS } };
const ready = [listed, welcome, peerP];
const sink = memorySink();
const request = { type: 'requestFile', peer: 'P', path: 'theirs.bin', sink };
const FETCH = 'fetch:r1@P';
const SERVE = 'serve:c9@P';
const offer = { type: 'Offer', detail: { peer: 'P', connection: 'c9', sdp: 'v=0 offer' } };
const client = (events: unknown[], input: object = {}) =>
  run<typeof registryClient, ClientMessage>(registryClient, { provider, ...input }, events);

describe('registry client transitions', () => {
  it('lists its files before it connects, then sends Connect with them', () => {
    const start = client([]);
    expect(start.snapshot.value).toBe('listing');
    // No signalling yet: a slow provider cannot run into the server's connectTimeout.
    expect(start.spawned.map((s) => s.id)).toEqual(['listFiles']);
    const step = client([listed]);
    expect(step.snapshot.value).toEqual({ active: 'registering' });
    expect(step.spawned.map((s) => s.id)).toEqual(['signalling']);
    expect(step.sent).toEqual([{ type: 'Connect', detail: { files: MINE, batch: true } }]);
  });

  it('stops on leave while listing without sending anything', () => {
    const step = client([{ type: 'leave' }]);
    expect(step.snapshot.value).toBe('done');
    expect(step.sent).toEqual([]);
    expect(step.emitted).toEqual([{ type: 'stopped', detail: { error: undefined } }]);
  });

  it('keeps the last updateFiles from before Welcome and applies it once registered', () => {
    const NEW = [{ path: 'new.txt', size: 1 }];
    let step = client([{ type: 'updateFiles', files: NEW }, listed, { type: 'updateFiles' }, welcome]);
    // The later one (ask the provider again) wins.
    expect(step.snapshot.value).toEqual({ active: { ready: 'relisting' } });
    expect(step.snapshot.context.deferred).toBeUndefined();
    step = client([listed, { type: 'updateFiles', files: NEW }, welcome]);
    expect(step.snapshot.value).toEqual({ active: { ready: 'idle' } });
    expect(step.sent).toEqual([{ type: 'UpdateFiles', detail: { files: NEW } }]);
    expect(step.emitted.map((e) => e.type)).toEqual(['registered', 'filesUpdated', 'filesUpdated']);
  });

  it('fails with the provider’s error when listing fails', () => {
    const step = client([
      { type: 'xstate.error.actor.listFiles', error: new RegistryError('invalid-files', 'files.0.path: bad') },
    ]);
    expect(step.snapshot.value).toBe('failed');
    expect(step.snapshot.context.error?.reason).toBe('invalid-files');
    expect(step.emitted).toEqual([{ type: 'stopped', detail: { error: step.snapshot.context.error } }]);
  });

  it('is registered on Welcome and announces its id and files', () => {
    const step = client([listed, welcome]);
    expect(step.snapshot.value).toEqual({ active: { ready: 'idle' } });
    expect(step.emitted).toEqual([
      { type: 'registered', detail: { id: 'me' } },
      { type: 'filesUpdated', detail: { files: MINE } },
    ]);
  });

  it('fails when the server refuses its Connect: invalid-files when the list is what it refused', () => {
    let step = client([
      listed,
      { type: 'Error', detail: { code: 'ERR_INVALID_FIELD', message: 'too many', event: 'Connect' } },
    ]);
    expect(step.snapshot.value).toBe('failed');
    expect(step.snapshot.context.error).toMatchObject({
      reason: 'invalid-files',
      code: 'ERR_INVALID_FIELD',
      message: 'the server refused Connect: too many',
    });
    step = client([listed, { type: 'Error', detail: { code: 'ERR_FRAME_TOO_LARGE', message: 'over the cap' } }]);
    expect(step.snapshot.context.error).toMatchObject({ reason: 'invalid-files', code: 'ERR_FRAME_TOO_LARGE' });
    step = client([listed, { type: 'Error', detail: { code: 'ERR_TIMEOUT', message: 'late' } }]);
    expect(step.snapshot.context.error).toMatchObject({ reason: 'protocol', code: 'ERR_TIMEOUT' });
  });

  it('stores RegisterPeer and UpdatePeer, forgets on UnregisterPeer and tells that peer’s jobs', () => {
    let step = client(ready);
    expect(step.snapshot.context.peers).toEqual({ P: THEIRS });
    expect(step.emitted.map((e) => e.type)).toEqual(['peerRegistered', 'peers']);
    step = client([...ready, { type: 'UpdatePeer', detail: { peer: 'P', files: [] } }]);
    expect(step.snapshot.context.peers).toEqual({ P: [] });
    expect(step.emitted).toEqual([
      { type: 'peerUpdated', detail: { peer: 'P', files: [] } },
      { type: 'peers', detail: { peers: { P: [] } } },
    ]);
    step = client([...ready, request, { type: 'UnregisterPeer', detail: { peer: 'P' } }]);
    expect(step.snapshot.context.peers).toEqual({});
    expect(step.sentTo).toEqual([{ to: `job:${FETCH}`, event: { type: 'peer.gone' } }]);
  });

  it('starts a fetch: an offering rtc actor and a job, keyed by request and peer', () => {
    const step = client([...ready, request]);
    expect(step.spawned).toEqual([
      { id: `rtc:${FETCH}`, input: { label: FETCH, role: 'offerer' } },
      {
        id: `job:${FETCH}`,
        input: expect.objectContaining({ key: FETCH, peer: 'P', path: 'theirs.bin', expected: THEIRS[0], sink }),
      },
    ]);
    expect(step.snapshot.context.jobs).toEqual({
      [FETCH]: { kind: 'fetch', peer: 'P', connection: 'r1', path: 'theirs.bin' },
    });
  });

  const refused: Array<[string, object, string]> = [
    ['an unknown peer', { peer: 'Q' }, 'no-such-peer'],
    ['a peer id that names an Object property', { peer: 'constructor' }, 'no-such-peer'],
    ['a peer id that names the prototype', { peer: '__proto__' }, 'no-such-peer'],
    ['an unlisted path', { path: 'other.bin' }, 'not-listed'],
    ['a path with ..', { path: '../theirs.bin' }, 'invalid-path'],
    ['a bad request id', { request: 'a b' }, 'protocol'],
  ];
  for (const [name, change, reason] of refused) {
    it(`refuses a request for ${name} at once, spawning nothing`, () => {
      const step = client([...ready, { ...request, ...change }]);
      expect(step.spawned).toEqual([]);
      expect(step.emitted).toHaveLength(1);
      expect(step.emitted[0]).toMatchObject({ type: 'fetchFailed', detail: { error: { reason } } });
    });
  }

  it('refuses a request before it is registered (no peers yet)', () => {
    const step = client([listed, request]);
    expect(step.emitted[0]).toMatchObject({ type: 'fetchFailed', detail: { error: { reason: 'no-such-peer' } } });
  });

  it('relays its rtc actors’ descriptions and candidates with the connection and side', () => {
    const candidate = { candidate: 'candidate:1', sdpMid: '0' };
    let step = client([
      ...ready,
      request,
      { type: 'rtc.description', label: FETCH, description: { type: 'offer', sdp: 'v=0 o' } },
    ]);
    // The browser's form: `{ type, sdp }`, as `JSON.stringify(pc.localDescription)` gives.
    expect(step.sent).toEqual([
      { type: 'Offer', detail: { peer: 'P', connection: 'r1', sdp: { type: 'offer', sdp: 'v=0 o' } } },
    ]);
    step = client([...ready, request, { type: 'rtc.candidate', label: FETCH, candidate }]);
    expect(step.sent).toEqual([
      { type: 'Candidate', detail: { peer: 'P', connection: 'r1', from: 'requester', candidate } },
    ]);
    step = client([
      ...ready,
      offer,
      { type: 'rtc.description', label: SERVE, description: { type: 'answer', sdp: 'a' } },
    ]);
    expect(step.sent).toEqual([
      { type: 'Answer', detail: { peer: 'P', connection: 'c9', sdp: { type: 'answer', sdp: 'a' } } },
    ]);
    step = client([...ready, offer, { type: 'rtc.candidate', label: SERVE, candidate }]);
    expect(step.sent).toEqual([
      { type: 'Candidate', detail: { peer: 'P', connection: 'c9', from: 'holder', candidate } },
    ]);
  });

  it('serves an Offer from a known peer: an answering rtc actor and a job with its current list', () => {
    const step = client([...ready, offer]);
    expect(step.spawned).toEqual([
      { id: `rtc:${SERVE}`, input: { label: SERVE, role: 'answerer', remoteOffer: 'v=0 offer' } },
      { id: `job:${SERVE}`, input: expect.objectContaining({ key: SERVE, peer: 'P', files: MINE, provider }) },
    ]);
    // A second offer on the same connection is an ICE restart: to the same rtc actor.
    const again = client([...ready, offer, offer]);
    expect(again.spawned).toEqual([]);
    expect(again.sentTo).toEqual([
      {
        to: `rtc:${SERVE}`,
        event: { type: 'rtc.remoteDescription', description: { type: 'offer', sdp: 'v=0 offer' } },
      },
    ]);
  });

  it('ignores an Offer from an unknown peer, or beyond maxServing', () => {
    expect(client([...ready, { ...offer, detail: { ...offer.detail, peer: 'Q' } }]).spawned).toEqual([]);
    expect(client([...ready, { ...offer, detail: { ...offer.detail, peer: 'toString' } }]).spawned).toEqual([]);
    expect(client([...ready, offer], { maxServing: 0 }).spawned).toEqual([]);
  });

  it('routes Answer and Candidates to the right rtc actor, and drops those of unknown connections', () => {
    const candidate = { candidate: 'candidate:2' };
    let step = client([...ready, request, { type: 'Answer', detail: { peer: 'P', connection: 'r1', sdp: 'v=0 a' } }]);
    expect(step.sentTo).toEqual([
      { to: `rtc:${FETCH}`, event: { type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'v=0 a' } } },
    ]);
    step = client([
      ...ready,
      offer,
      { type: 'Candidate', detail: { peer: 'P', connection: 'c9', from: 'requester', candidate } },
    ]);
    // A candidate without sdpMid or sdpMLineIndex is taken as the first m-line's (addIceCandidate needs one).
    expect(step.sentTo).toEqual([
      { to: `rtc:${SERVE}`, event: { type: 'rtc.remoteCandidate', candidate: { ...candidate, sdpMLineIndex: 0 } } },
    ]);
    step = client([
      ...ready,
      offer,
      { type: 'Candidate', detail: { peer: 'P', connection: 'c9', from: 'holder', candidate } },
    ]);
    expect(step.sentTo).toEqual([]);
    step = client([...ready, { type: 'Answer', detail: { peer: 'P', connection: 'zz', sdp: 'v=0' } }]);
    expect(step.sentTo).toEqual([]);
  });

  it('reads a description as an SDP string or { type, sdp }, and a candidate as an object, a string or null', () => {
    const answer = (sdp: unknown) => ({ type: 'Answer', detail: { peer: 'P', connection: 'r1', sdp } });
    const described = { type: 'rtc.remoteDescription', description: { type: 'answer', sdp: 'v=0 a' } };
    expect(client([...ready, request, answer('v=0 a')]).sentTo).toEqual([{ to: `rtc:${FETCH}`, event: described }]);
    expect(client([...ready, request, answer({ type: 'answer', sdp: 'v=0 a' })]).sentTo).toEqual([
      { to: `rtc:${FETCH}`, event: described },
    ]);
    const objectOffer = { ...offer, detail: { ...offer.detail, sdp: { type: 'offer', sdp: 'v=0 offer' } } };
    expect(client([...ready, objectOffer]).spawned[0]).toEqual({
      id: `rtc:${SERVE}`,
      input: { label: SERVE, role: 'answerer', remoteOffer: 'v=0 offer' },
    });
    const candidate = (value: unknown) => ({
      type: 'Candidate',
      detail: { peer: 'P', connection: 'c9', from: 'requester', candidate: value },
    });
    expect(client([...ready, offer, candidate('a=candidate:3 1 udp 1 127.0.0.1 9 typ host')]).sentTo).toEqual([
      {
        to: `rtc:${SERVE}`,
        event: {
          type: 'rtc.remoteCandidate',
          candidate: { candidate: 'candidate:3 1 udp 1 127.0.0.1 9 typ host', sdpMLineIndex: 0 },
        },
      },
    ]);
    // The end of candidates, in each form a browser app sends it: nothing to apply, nothing fails.
    for (const end of [null, '', { candidate: '', sdpMid: '0' }]) {
      const step = client([...ready, offer, candidate(end)]);
      expect(step.sentTo).toEqual([]);
      expect(step.emitted).toEqual([]);
    }
  });

  it('ends the transfer with a typed error naming the field it cannot read, never more', () => {
    let step = client([...ready, request, { type: 'Answer', detail: { peer: 'P', connection: 'r1', sdp: 42 } }]);
    expect(step.sentTo).toEqual([
      {
        to: `job:${FETCH}`,
        event: {
          type: 'signal.invalid',
          message: 'Answer from P: `sdp` must be an SDP string or { type, sdp }, not 42',
        },
      },
    ]);
    step = client([
      ...ready,
      request,
      { type: 'Answer', detail: { peer: 'P', connection: 'r1', sdp: { type: 'offer', sdp: 'v=0' } } },
    ]);
    expect(step.sentTo).toEqual([
      {
        to: `job:${FETCH}`,
        event: { type: 'signal.invalid', message: 'Answer from P: `sdp.type` is "offer", expected "answer"' },
      },
    ]);
    step = client([
      ...ready,
      offer,
      { type: 'Candidate', detail: { peer: 'P', connection: 'c9', from: 'requester', candidate: { candidate: 7 } } },
    ]);
    expect(step.sentTo).toEqual([
      {
        to: `job:${SERVE}`,
        event: { type: 'signal.invalid', message: 'Candidate from P: `candidate.candidate` must be a string, not 7' },
      },
    ]);
    // An Offer nobody can answer starts nothing: the holder reports it and goes on.
    step = client([...ready, { ...offer, detail: { ...offer.detail, sdp: [] } }]);
    expect(step.spawned).toEqual([]);
    expect(step.snapshot.context.jobs).toEqual({});
    expect(step.emitted).toEqual([
      {
        type: 'serveFailed',
        detail: {
          peer: 'P',
          error: expect.objectContaining({
            reason: 'protocol',
            message: 'Offer from P: `sdp` must be an SDP string or { type, sdp }, not an array',
          }),
        },
      },
    ]);
  });

  it('is registered once Welcome and the RegisterPeer of every peer it announced are in, so a request finds them', () => {
    const announced = { type: 'Welcome', detail: { id: 'me', peers: 2 } };
    const peerQ = { type: 'RegisterPeer', detail: { peer: 'Q', files: MINE } };
    let step = client([listed, announced]);
    expect(step.emitted.map((e) => e.type)).toEqual(['filesUpdated']);
    // (each step shows what its last event did)
    step = client([listed, announced, peerP]);
    expect(step.emitted.map((e) => e.type)).toEqual(['peerRegistered', 'peers']);
    step = client([listed, announced, peerP, peerQ]);
    expect(step.emitted.map((e) => e.type)).toEqual(['peerRegistered', 'peers', 'registered']);
    expect(step.emitted.at(-1)).toEqual({ type: 'registered', detail: { id: 'me' } });
    // A peer that registers later is not one of those: `registered` is said once.
    step = client([listed, announced, peerP, peerQ, { type: 'RegisterPeer', detail: { peer: 'R', files: [] } }]);
    expect(step.emitted.map((e) => e.type)).toEqual(['peerRegistered', 'peers']);
    expect(client([listed, announced, peerP, peerQ, request]).spawned.map((s) => s.id)).toEqual([
      `rtc:${FETCH}`,
      `job:${FETCH}`,
    ]);
  });

  it('reads a Welcome list in Batch frames: each peer in order, one peers a frame, registered after the last', () => {
    const announced = { type: 'Welcome', detail: { id: 'me', peers: 1500 } };
    const register = (n: number) => ({ type: 'RegisterPeer', detail: { peer: `p${n}`, files: n % 2 ? MINE : [] } });
    const batch = (from: number, to: number) => ({
      type: 'Batch',
      detail: { events: Array.from({ length: to - from }, (_, k) => register(from + k)) },
    });
    let step = client([listed, announced, batch(0, 1000)]);
    expect(step.emitted.map((e) => e.type)).toEqual([...Array(1000).fill('peerRegistered'), 'peers']);
    expect(step.emitted.slice(0, 3).map((e) => (e as { detail: { peer: string } }).detail.peer)).toEqual([
      'p0',
      'p1',
      'p2',
    ]);
    expect(step.snapshot.context.awaiting).toBe(500);
    step = client([listed, announced, batch(0, 1000), batch(1000, 1500)]);
    expect(step.emitted.map((e) => e.type)).toEqual([...Array(500).fill('peerRegistered'), 'peers', 'registered']);
    const peers = (step.emitted.at(-2) as { detail: { peers: Record<string, FileEntry[]> } }).detail.peers;
    expect(Object.keys(peers)).toEqual(Array.from({ length: 1500 }, (_, n) => `p${n}`));
    expect(peers.p7).toEqual(MINE);
    expect(step.snapshot.context.peers).toBe(peers);
    // A leave and an update in one frame: both applied, in order.
    step = client([
      listed,
      announced,
      batch(0, 1500),
      {
        type: 'Batch',
        detail: {
          events: [
            { type: 'UnregisterPeer', detail: { peer: 'p3' } },
            { type: 'UpdatePeer', detail: { peer: 'p4', files: MINE } },
          ],
        },
      },
    ]);
    expect(step.emitted.map((e) => e.type)).toEqual(['peerUnregistered', 'peerUpdated', 'peers']);
    expect(step.snapshot.context.peers.p3).toBeUndefined();
    expect(step.snapshot.context.peers.p4).toEqual(MINE);
    expect(Object.keys(step.snapshot.context.peers)).toHaveLength(1499);
  });

  it('ends a job: stops it and its rtc actor, and says how it went', () => {
    const step = client([
      ...ready,
      request,
      {
        type: `xstate.done.actor.job:${FETCH}`,
        actorId: `job:${FETCH}`,
        output: { key: FETCH, size: 10, sha256: 'f' },
      },
    ]);
    expect(step.stopped).toHaveLength(2);
    expect(step.snapshot.context.jobs).toEqual({});
    expect(step.emitted).toEqual([
      { type: 'fetched', detail: { request: 'r1', peer: 'P', path: 'theirs.bin', size: 10, sha256: 'f' } },
    ]);
  });

  it('publishes a valid new list, refuses a malformed one, re-lists without one', () => {
    let step = client([...ready, { type: 'updateFiles', files: THEIRS }]);
    expect(step.sent).toEqual([{ type: 'UpdateFiles', detail: { files: THEIRS } }]);
    step = client([...ready, { type: 'updateFiles', files: [{ path: 'a\u0000', size: 1 }] }]);
    expect(step.sent).toEqual([]);
    expect(step.emitted[0]).toMatchObject({ type: 'filesFailed', detail: { error: { reason: 'invalid-files' } } });
    step = client([...ready, { type: 'updateFiles' }]);
    expect(step.snapshot.value).toEqual({ active: { ready: 'relisting' } });
    step = client([...ready, { type: 'updateFiles' }, { type: 'xstate.done.actor.relist', output: [] }]);
    expect(step.sent).toEqual([{ type: 'UpdateFiles', detail: { files: [] } }]);
  });

  it('reports a refused UpdateFiles as filesFailed, any other Error as refused', () => {
    let step = client([
      ...ready,
      { type: 'Error', detail: { code: 'ERR_INVALID_FIELD', message: 'at most 2', event: 'UpdateFiles' } },
    ]);
    expect(step.emitted).toEqual([{ type: 'filesFailed', detail: { error: expect.any(RegistryError) } }]);
    expect(step.emitted[0]).toMatchObject({
      detail: { error: { reason: 'invalid-files', code: 'ERR_INVALID_FIELD' } },
    });
    step = client([...ready, { type: 'Error', detail: { code: 'ERR_FRAME_TOO_LARGE', message: 'over the cap' } }]);
    expect(step.emitted[0]).toMatchObject({ type: 'filesFailed', detail: { error: { code: 'ERR_FRAME_TOO_LARGE' } } });
    const gone = { code: 'ERR_PEER_GONE', message: 'Offer: no peer Q is registered', event: 'Offer' };
    step = client([...ready, { type: 'Error', detail: gone }]);
    expect(step.emitted).toEqual([{ type: 'refused', detail: gone }]);
  });

  it('refuses a list over the server’s limits before sending it', () => {
    const many = Array.from({ length: 3 }, (_, i) => ({ path: `f${i}`, size: i }));
    let step = client([...ready, { type: 'updateFiles', files: many }], { listLimits: { maxFiles: 2 } });
    expect(step.sent).toEqual([]);
    expect(step.emitted[0]).toMatchObject({
      type: 'filesFailed',
      detail: { error: { reason: 'invalid-files', message: 'a file list has at most 2 entries' } },
    });
    step = client([...ready, { type: 'updateFiles', files: many }], { listLimits: { maxFrameSize: 100 } });
    expect(step.sent).toEqual([]);
    expect(step.emitted[0]).toMatchObject({ detail: { error: { message: expect.stringMatching(/cap of 100/) } } });
  });

  it('asks the provider again when updateFiles comes while it lists', () => {
    const step = client([...ready, { type: 'updateFiles' }, { type: 'updateFiles' }]);
    expect(step.snapshot.value).toEqual({ active: { ready: 'relisting' } });
    // The running listing is stopped and a fresh one started.
    expect(step.stopped).toHaveLength(1);
    expect(step.spawned.map((s) => s.id)).toEqual(['relist']);
  });

  it('fails its running transfers when it stops, telling each to cancel', () => {
    let step = client([...ready, request, offer, { type: 'leave' }]);
    expect(step.sentTo).toEqual([
      { to: `job:${FETCH}`, event: { type: 'cancel' } },
      { to: `job:${SERVE}`, event: { type: 'cancel' } },
    ]);
    expect(step.emitted.map((e) => e.type)).toEqual(['fetchFailed', 'serveFailed', 'stopped']);
    expect(step.emitted[0]).toMatchObject({ detail: { request: 'r1', error: { reason: 'cancelled' } } });
    expect(step.snapshot.context.jobs).toEqual({});
    step = client([
      ...ready,
      request,
      { type: 'signalling.closed', info: { code: 1006, reason: '', initiator: 'remote' } },
    ]);
    expect(step.emitted.map((e) => e.type)).toEqual(['fetchFailed', 'stopped']);
    expect(step.emitted[0]).toMatchObject({ detail: { error: { reason: 'signalling-lost' } } });
  });

  it('sends Disconnect on leave and stops', () => {
    const step = client([...ready, { type: 'leave' }]);
    expect(step.sent).toEqual([{ type: 'Disconnect', detail: undefined }]);
    expect(step.snapshot.value).toBe('done');
    expect(step.emitted).toEqual([{ type: 'stopped', detail: { error: undefined } }]);
  });

  it('fails with signalling-lost when the connection closes, protocol on a bad frame', () => {
    let step = client([
      ...ready,
      { type: 'signalling.closed', info: { code: 1006, reason: 'gone', initiator: 'remote' } },
    ]);
    expect(step.snapshot.context.error).toMatchObject({ reason: 'signalling-lost', code: 'ERR_TRANSPORT_CLOSED' });
    step = client([
      ...ready,
      { type: 'signalling.error', error: new ProtocolError(ErrorCode.UnknownMessage, 'unknown message type `X`') },
    ]);
    expect(step.snapshot.context.error).toMatchObject({ reason: 'protocol', code: 'ERR_UNKNOWN_MESSAGE' });
  });
});

const timing = { connectTimeout: 1000, responseTimeout: 1000, lingerTimeout: 1000 };
const fetchInput = { key: 'k', peer: 'P', path: 'theirs.bin', expected: THEIRS[0]!, sink, ...timing };
const open = { type: 'rtc.open', label: 'k', transport: stubTransport };
const file = (detail: object) => ({
  type: 'channel.message',
  message: { type: 'File', detail: { path: 'theirs.bin', size: 10, sha256: 'a'.repeat(64), ...detail } },
});

describe('registry fetch transitions', () => {
  it('asks once the channel is open, and opens the sink on a File that matches the list', () => {
    expect(run(registryFetch, fetchInput, [open]).snapshot.value).toEqual({ active: 'requesting' });
    expect(run(registryFetch, fetchInput, [open, file({})]).snapshot.value).toEqual({ active: 'openingSink' });
  });

  const bad: Array<[string, unknown, string]> = [
    ['another size', file({ size: 11 }), 'size-mismatch'],
    ['another digest', file({ sha256: 'b'.repeat(64) }), 'digest-mismatch'],
    ['another path', file({ path: 'x' }), 'protocol'],
    [
      'a refusal',
      { type: 'channel.message', message: { type: 'Error', detail: { reason: 'not-listed', message: 'no' } } },
      'not-listed',
    ],
    ['garbage', { type: 'channel.invalid', message: 'frame is not valid JSON' }, 'protocol'],
    ['the peer leaving', { type: 'peer.gone' }, 'peer-gone'],
    ['the channel closing', { type: 'rtc.closed', label: 'k' }, 'peer-gone'],
    [
      'an rtc failure',
      { type: 'rtc.failed', label: 'k', error: new RtcError(ErrorCode.RtcFailed, 'ICE') },
      'rtc-failed',
    ],
  ];
  for (const [name, event, reason] of bad) {
    it(`fails with ${reason} on ${name}`, () => {
      const step = run(registryFetch, fetchInput, [open, event]);
      expect(step.snapshot.value).toBe('failed');
      expect(step.snapshot.context.error?.reason).toBe(reason);
    });
  }
});

const serveInput = { key: 'k', peer: 'P', provider, files: MINE, ...timing };
const ask = (path: string) => ({ type: 'channel.message', message: { type: 'RequestFile', detail: { path } } });

describe('registry serve transitions', () => {
  it('opens a listed path and refuses the rest', () => {
    expect(run(registryServe, serveInput, [open, ask('mine.txt')]).snapshot.value).toEqual({ active: 'opening' });
    for (const [path, reason] of [
      ['other.txt', 'not-listed'],
      ['../mine.txt', 'invalid-path'],
      ['/mine.txt', 'invalid-path'],
    ]) {
      const step = run(registryServe, serveInput, [open, ask(path!)]);
      expect(step.snapshot.value).toEqual({ active: 'refusing' });
      expect(step.snapshot.context.refusal?.reason).toBe(reason);
      expect(step.actions.map((a) => a.type)).toContain('sendRefusal');
    }
  });

  it('refuses what the provider refuses, with its reason', () => {
    const step = run(registryServe, serveInput, [
      open,
      ask('mine.txt'),
      { type: 'xstate.error.actor.openSource', error: new RegistryError('outside-root', 'mine.txt resolves outside') },
    ]);
    expect(step.snapshot.value).toEqual({ active: 'refusing' });
    expect(step.snapshot.context.refusal?.reason).toBe('outside-root');
  });
});

describe('registry session transitions', () => {
  const services = { connectTimeout: 1000 } as never;
  const session = (events: unknown[]) => run(registrySession, { id: 'me', services }, events);
  /** The custom actions of a step; leaving `awaitingConnect` also cancels its timer (`xstate.cancel`). */
  const custom = (step: ReturnType<typeof session>) =>
    step.actions.map((a) => a.type).filter((type) => type !== 'xstate.cancel');
  const files = { files: MINE };

  it('waits for Connect, refusing the rest, then registers', () => {
    expect(session([]).snapshot.value).toEqual({ open: 'awaitingConnect' });
    const refused = session([{ type: 'UpdateFiles', detail: files }]);
    expect(refused.snapshot.value).toEqual({ open: 'awaitingConnect' });
    expect(refused.actions).toEqual([
      {
        type: 'reply',
        params: {
          type: 'Error',
          detail: { code: 'ERR_NOT_PERMITTED', message: 'UpdateFiles before Connect', event: 'UpdateFiles' },
        },
      },
    ]);
    const step = session([{ type: 'Connect', detail: files }]);
    expect(step.snapshot.value).toEqual({ open: 'registered' });
    expect(custom(step)).toEqual(['register']);
  });

  it('leaves on Disconnect, on close, and when Connect does not come in time', () => {
    for (const event of [
      { type: 'Disconnect' },
      { type: 'signalling.closed', info: { code: 1006, reason: '', initiator: 'remote' } },
    ]) {
      const step = session([{ type: 'Connect', detail: files }, event]);
      expect(step.snapshot.status).toBe('done');
      expect(custom(step)).toEqual(['leave']);
    }
    const late = session([{ type: 'xstate.after.connectTimeout.registrySession.open.awaitingConnect' }]);
    expect(late.snapshot.status).toBe('done');
    expect(custom(late)).toEqual(['expire', 'leave']);
  });
});
