/**
 * Property tests of every codec (fast-check): whatever arrives — any text,
 * any bytes, any JSON value, frames that look almost right — decoding gives
 * a message of one of the codec's own types or throws a ProtocolError with a
 * stable code. Nothing else may escape: a TypeError or a RangeError out of a
 * decoder would cross a transport. What a server decodes can also be encoded
 * again (it sends relays on with JSON.stringify, which recurses), but for
 * the server's own events (filedrop's `session.invalidPeer`), which it
 * answers without sending on what they carry.
 *
 * Only "typed result or ProtocolError" is asserted, never which frames are
 * refused: the codecs' rules may loosen (relayed payloads take any JSON)
 * without these properties changing.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import * as cloudlink from '../machines/cloudlink/codec.js';
import { Opcode } from '../machines/cloudlink/protocol.js';
import * as filedrop from '../machines/filedrop/codec.js';
import {
  clientMessageTypes as filedropClientTypes,
  serverOnlyTypes as filedropServerTypes,
} from '../machines/filedrop/protocol.js';
import { clientSocketIoEvents, serverSocketIoEvents } from '../machines/filedrop/socket-io.js';
import * as registry from '../machines/registry/codec.js';
import {
  clientMessageTypes as registryClientTypes,
  relayTypes as registryRelayTypes,
  serverOnlyTypes as registryServerTypes,
} from '../machines/registry/protocol.js';
import * as swarm from '../machines/swarm/codec.js';
import {
  clientMessageTypes as swarmClientTypes,
  peerMessageTypes as swarmPeerTypes,
  serverMessageTypes as swarmServerTypes,
} from '../machines/swarm/protocol.js';
import * as workrooms from '../machines/workrooms/codec.js';
import {
  clientMessageTypes as workroomsClientTypes,
  serverOnlyTypes as workroomsServerOnly,
  relayTypes as workroomsRelayTypes,
} from '../machines/workrooms/protocol.js';
import { jsonCodec, type Codec } from '../src/codec.js';
import { ErrorCode, ProtocolError } from '../src/errors.js';
import { frameEvents, type EventCodec } from '../src/event-codec.js';
import type { Message } from '../src/message.js';
import type { Frame } from '../src/transport.js';
import {
  anyFrame,
  assertProperty,
  clientSamples,
  envelopes,
  frame,
  HASH,
  ID22,
  leaf,
  mutated,
  opcodeFrames,
  plausibleJson,
} from './fuzz-frames.js';

const RUNS = 500;
const errorCodes: ReadonlySet<string> = new Set(Object.values(ErrorCode));

/** What one decode gave: a message of the codec's own types, or a ProtocolError. Anything else thrown fails. */
function decodeOnce(codec: Codec<Message, never>, frame: Frame, types: ReadonlySet<string>) {
  let message: Message;
  try {
    message = codec.decode(frame);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    if (!errorCodes.has(error.code)) throw new Error(`a ProtocolError with an unknown code ${error.code}`);
    return { ok: false, code: error.code } as const;
  }
  if (typeof message !== 'object' || message === null || !types.has(message.type)) {
    throw new Error(`decoded to something not a message of this codec: ${JSON.stringify(message)?.slice(0, 200)}`);
  }
  return { ok: true, type: message.type, message } as const;
}

interface CodecCase {
  name: string;
  codec: Codec<Message, never>;
  /** The types a decoded message may have. */
  types: readonly string[];
  /** The frames that look like this protocol's. */
  frames: fc.Arbitrary<Frame>;
  maxFrameSize: number;
  /** Valid frames, which the generators change a little. */
  samples: readonly string[];
  /** A server codec: what it decodes, it may send on. */
  server?: true;
}

const asCodec = (codec: unknown) => codec as CodecCase['codec'];

const cases: CodecCase[] = [
  {
    name: 'cloudlink serverCodec',
    samples: clientSamples.cloudlink,
    codec: asCodec(cloudlink.serverCodec()),
    types: Object.keys(Opcode),
    frames: opcodeFrames,
    maxFrameSize: 65536,
    server: true,
  },
  {
    name: 'cloudlink clientCodec',
    samples: [
      '{"opcode":3,"payload":"peer-1"}',
      '{"opcode":11,"payload":"v=0","tx":"peer-1"}',
      '{"opcode":0,"payload":"bad"}',
      '{"opcode":19,"tx":"peer-1"}',
      '{"opcode":7}',
    ],
    codec: asCodec(cloudlink.clientCodec()),
    types: Object.keys(Opcode),
    frames: opcodeFrames,
    maxFrameSize: 1 << 20,
  },
  {
    name: 'filedrop serverCodec',
    samples: clientSamples.filedrop,
    codec: asCodec(filedrop.serverCodec()),
    types: [...filedropClientTypes, 'session.invalidPeer'],
    frames: envelopes([...filedropClientTypes, ...filedropServerTypes]),
    maxFrameSize: 65536,
    server: true,
  },
  {
    name: 'filedrop clientCodec',
    samples: [
      frame('assign', { peer: 'K7PQ2MZA' }),
      frame('answer', { peer: 'K7PQ2MZA', data: { type: 'answer', sdp: 'v=0' } }),
      frame('peer not exists', { peer: 'K7PQ2MZA' }),
      frame('error', { code: 'ERR_NOT_PERMITTED', message: 'no' }),
    ],
    codec: asCodec(filedrop.clientCodec()),
    types: [...filedropClientTypes, ...filedropServerTypes],
    frames: envelopes([...filedropClientTypes, ...filedropServerTypes]),
    maxFrameSize: 1 << 20,
  },
  {
    name: 'workrooms serverCodec',
    samples: clientSamples.workrooms,
    codec: asCodec(workrooms.serverCodec()),
    types: workroomsClientTypes,
    frames: envelopes([...workroomsClientTypes, ...workroomsServerOnly]),
    maxFrameSize: 65536,
    server: true,
  },
  {
    name: 'workrooms clientCodec',
    samples: [
      frame('registered', { sessionid: ID22, calls: [] }),
      frame('autocomplete', { search: 'a', results: [{ sessionid: ID22, userprofiles: {} }], truncated: true }),
      frame('outboundcall', {
        outbound: true,
        callid: ID22,
        fromsessionid: ID22,
        tosessionid: ID22,
        userprofiles: { github: { login: 'ada' } },
      }),
      frame('answer', { callid: ID22, peerid: ID22, sdp: { type: 'answer', sdp: 'v=0' } }),
      frame('hangup', { calls: [{ callid: ID22, sessionid: ID22 }] }),
      frame('error', { code: 'ERR_NOT_PERMITTED', message: 'no', event: 'call' }),
    ],
    codec: asCodec(workrooms.clientCodec()),
    types: [...workroomsServerOnly, 'hangup', 'autocomplete', ...workroomsRelayTypes],
    frames: envelopes([...workroomsClientTypes, ...workroomsServerOnly]),
    maxFrameSize: 1 << 20,
  },
  {
    name: 'registry serverCodec',
    samples: clientSamples.registry,
    codec: asCodec(registry.serverCodec()),
    types: registryClientTypes,
    frames: envelopes([...registryClientTypes, ...registryServerTypes]),
    maxFrameSize: 256 * 1024,
    server: true,
  },
  {
    name: 'registry clientCodec',
    samples: [
      frame('Welcome', { id: 'p1' }),
      frame('RegisterPeer', { peer: 'p1', files: [{ path: 'a.txt', size: 5, sha256: HASH }] }),
      frame('UnregisterPeer', { peer: 'p1' }),
      frame('Answer', { peer: 'p1', connection: 'c1', sdp: 'v=0' }),
      frame('Error', { code: 'ERR_NOT_PERMITTED', message: 'no' }),
    ],
    codec: asCodec(registry.clientCodec()),
    types: [...registryServerTypes, ...registryRelayTypes],
    frames: envelopes([...registryClientTypes, ...registryServerTypes]),
    maxFrameSize: 4 * 1024 * 1024,
  },
  {
    name: 'registry channelCodec',
    samples: [
      frame('RequestFile', { path: 'a.txt' }),
      frame('File', { path: 'a.txt', size: 5, sha256: HASH }),
      frame('Error', { reason: 'not-listed', message: 'no' }),
    ],
    codec: asCodec(registry.channelCodec),
    types: ['RequestFile', 'File', 'Error'],
    frames: envelopes(['RequestFile', 'File', 'Error']),
    maxFrameSize: 8192,
  },
  {
    name: 'swarm serverCodec',
    samples: clientSamples.swarm,
    codec: asCodec(swarm.serverCodec()),
    types: swarmClientTypes,
    frames: envelopes([...swarmClientTypes, ...swarmServerTypes]),
    maxFrameSize: 65536,
    server: true,
  },
  {
    name: 'swarm clientCodec',
    samples: [
      frame('requesting_offer', { context_id: 'c1' }),
      frame('wait_for_offer', { context_id: 'c1' }),
      frame('forwarding_answer', { answer: 'v=0', context_id: 'c1' }),
      frame('error', { code: 'ERR_TIMEOUT', message: 'late', context_id: 'c1' }),
    ],
    codec: asCodec(swarm.clientCodec()),
    types: swarmServerTypes,
    frames: envelopes([...swarmClientTypes, ...swarmServerTypes]),
    maxFrameSize: 1 << 20,
  },
  {
    name: 'swarm peerCodec',
    samples: [
      frame('i_am', { client_id: 'laptop' }),
      frame('requesting_peer_list', {}),
      frame('sending_peer_list', { peer_list: ['a'] }),
      frame('resource_found', { hash: HASH, size: 5 }),
      frame('error', { code: 'ERR_X', message: 'no' }),
    ],
    codec: asCodec(swarm.peerCodec()),
    types: [...swarmPeerTypes, 'chunk'],
    frames: envelopes(swarmPeerTypes),
    maxFrameSize: 65536,
  },
];

/** Runs `property` over `frames`, and shows that the frames reached both outcomes (the property can fail). */
function checkFrames(c: CodecCase, frames: fc.Arbitrary<Frame>, runs: number) {
  const types = new Set(c.types);
  let decoded = 0;
  let refused = 0;
  assertProperty(
    fc.property(frames, (frame) => {
      const outcome = decodeOnce(c.codec, frame, types);
      if (outcome.ok) {
        decoded++;
        // A server relays what it decoded with JSON.stringify: that must not throw either. (Its own events,
        // filedrop's `session.invalidPeer`, are answered without what they carry.)
        if (c.server && !outcome.type.startsWith('session.')) JSON.stringify(outcome.message);
      } else refused++;
    }),
    runs,
  );
  return { decoded, refused };
}

describe('every codec decodes any frame to a message of its own or a ProtocolError, never another throw', () => {
  for (const c of cases) {
    describe(c.name, () => {
      it('any text, bytes or JSON value', () => {
        const { refused } = checkFrames(c, anyFrame(c.maxFrameSize), RUNS);
        expect(refused).toBeGreaterThan(0);
      });

      it("frames built from the protocol's own names and values, nested up to 10000 deep", () => {
        expect(checkFrames(c, c.frames, RUNS).refused).toBeGreaterThan(0);
      });

      it('valid frames with a field or two changed, added or removed', () => {
        const { decoded, refused } = checkFrames(c, mutated(c.samples), RUNS);
        // Both outcomes were reached: the generator gets past the envelope into each message's checks.
        expect(decoded).toBeGreaterThan(0);
        expect(refused).toBeGreaterThan(0);
      });
    });
  }

  it('jsonCodec (the generic envelope)', () => {
    assertProperty(
      fc.property(anyFrame(65536), (frame) => {
        const codec = jsonCodec();
        try {
          const message = codec.decode(frame);
          expect(typeof message.type).toBe('string');
          expect(message.type.length).toBeGreaterThan(0);
        } catch (error) {
          if (!(error instanceof ProtocolError)) throw error;
        }
      }),
      RUNS,
    );
  });
});

// ---------------------------------------------------------------------------
// socket.io: an event a client emits (any name, any arguments) becomes a
// frame for the protocol's codec. That step must not throw, and the frame
// must decode like any other.
// ---------------------------------------------------------------------------

const socketArgument = fc.oneof(
  { weight: 3, arbitrary: leaf },
  fc.jsonValue({ maxDepth: 4 }),
  plausibleJson.map((text) => JSON.parse(text) as unknown),
  fc.uint8Array({ maxLength: 32 }),
  fc.constant(undefined),
);
const socketEvent = (names: readonly string[]) =>
  fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...names) }, fc.string({ maxLength: 12 }), leaf);

/** A value socket.io itself would not deliver (a cycle, a BigInt): `receive` must still not throw. */
const cyclic = (() => {
  const value: Record<string, unknown> = { peer: 'K7PQ2MZA' };
  value.self = value;
  return value;
})();

describe('socket.io events become frames without throwing, and the frames decode to a message or a ProtocolError', () => {
  const sides: Array<[string, EventCodec, CodecCase['codec'], readonly string[]]> = [
    [
      'filedrop serverSocketIoEvents → serverCodec',
      serverSocketIoEvents(),
      asCodec(filedrop.serverCodec()),
      [...filedropClientTypes, 'session.invalidPeer'],
    ],
    [
      'filedrop clientSocketIoEvents → clientCodec',
      clientSocketIoEvents(),
      asCodec(filedrop.clientCodec()),
      [...filedropClientTypes, ...filedropServerTypes],
    ],
  ];
  for (const [name, events, codec, types] of sides) {
    it(name, () => {
      const known = new Set(types);
      let refused = 0;
      assertProperty(
        fc.property(
          socketEvent([...filedropClientTypes, ...filedropServerTypes]),
          fc.array(socketArgument, { maxLength: 4 }),
          (event, args) => {
            const frame = events.receive(event, args);
            expect(typeof frame === 'string' || frame instanceof Uint8Array).toBe(true);
            if (!decodeOnce(codec, frame, known).ok) refused++;
          },
        ),
        RUNS,
      );
      expect(refused).toBeGreaterThan(0);
      for (const args of [[cyclic], [10n], [{ data: 10n }]]) {
        expect(() => decodeOnce(codec, events.receive('response', args), known)).not.toThrow();
      }
    });
  }

  it('frameEvents (the generic mapping) turns any event into a frame', () => {
    assertProperty(
      fc.property(socketEvent(['message']), fc.array(socketArgument, { maxLength: 3 }), (event, args) => {
        const frame = frameEvents.receive(event, args);
        expect(typeof frame === 'string' || frame instanceof Uint8Array).toBe(true);
      }),
      RUNS,
    );
  });
});
