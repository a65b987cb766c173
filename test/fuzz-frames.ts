/**
 * Frame generators (fast-check) for the fuzz tests: raw text and bytes, any
 * JSON, frames built from the protocols' own names and values, and valid
 * frames with a field or two changed, so that the checks past the envelope
 * are reached.
 */
import fc from 'fast-check';
import { opcodeNames } from '../machines/cloudlink/protocol.js';
import type { Frame } from '../src/transport.js';

export const ID22 = 'q2R0bW9yZ2VuLXNlc3Npb24';
export const HASH = '9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08';
/** Values of the protocols' fields, so that generated frames are often valid or one field off. */
const plausibleValues = [
  ID22,
  'K7PQ2MZA',
  'peer-1',
  'lobby',
  'v=0\r\n',
  'candidate:1 1 udp 1 127.0.0.1 9 typ host',
  'a.txt',
  'dir/b.bin',
  HASH,
  'requester',
  'holder',
  'offer',
  'answer',
  'not-listed',
  '',
  0,
  5,
  -1,
  2 ** 53,
  1.5,
  true,
  null,
];
const protocolKeys = [
  // cloudlink
  'opcode',
  'payload',
  'tx',
  'rx',
  // filedrop
  'peer',
  'data',
  'name',
  'size',
  'sha256',
  'received',
  'total',
  'done',
  'error',
  // workrooms
  'sessionid',
  'calls',
  'callid',
  'to',
  'search',
  'results',
  'github',
  'login',
  'fromsessionid',
  'tosessionid',
  'peerid',
  'userprofiles',
  'truncated',
  'code',
  'message',
  'event',
  // shared
  'sdp',
  'candidate',
  'sdpMid',
  'sdpMLineIndex',
  'usernameFragment',
  'type',
  'detail',
  // registry
  'files',
  'path',
  'id',
  'connection',
  'from',
  'reason',
  // swarm
  'client_id',
  'context_id',
  'offer',
  'answer',
  'hash',
  'peer_list',
  // hostile
  '__proto__',
  'constructor',
  'toString',
  'hasOwnProperty',
  '',
];

export const key = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...protocolKeys) }, fc.string({ maxLength: 8 }));
export const leaf = fc.oneof(
  { weight: 3, arbitrary: fc.constantFrom(...plausibleValues) },
  fc.string({ maxLength: 40 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.constant(null),
);

/**
 * JSON text of objects whose keys come from the protocols. Written out by
 * hand, so `__proto__` and repeated keys reach the decoder as keys.
 */
export const { json: plausibleJson } = fc.letrec<{ json: string; object: string; array: string }>((tie) => ({
  json: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    leaf.map((value) => JSON.stringify(value)),
    tie('object'),
    tie('array'),
  ),
  object: fc
    .array(fc.tuple(key, tie('json')), { maxLength: 6 })
    .map((entries) => `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`),
  array: fc.array(tie('json'), { maxLength: 5 }).map((items) => `[${items.join(',')}]`),
}));

/** `n` levels of `[` (or `{"a":`) around a value: the decoder must not recurse itself to death. */
export const deeplyNested = fc
  .tuple(fc.integer({ min: 16, max: 10_000 }), fc.boolean())
  .map(([n, arrays]) => (arrays ? `${'['.repeat(n)}${']'.repeat(n)}` : `${'{"a":'.repeat(n)}1${'}'.repeat(n)}`));

const detailText = fc.oneof({ weight: 4, arbitrary: plausibleJson }, deeplyNested);

/** `{"type": …, "detail": …}` frames of a protocol, and some with a key too many. */
export function envelopes(types: readonly string[]): fc.Arbitrary<string> {
  const type = fc.oneof({ weight: 4, arbitrary: fc.constantFrom(...types) }, fc.string({ maxLength: 12 }));
  return fc
    .tuple(type, detailText, fc.option(fc.tuple(key, plausibleJson), { freq: 8 }))
    .chain(([t, detail, extra]) =>
      fc.constantFrom(
        `{"type":${JSON.stringify(t)},"detail":${detail}${extra ? `,${JSON.stringify(extra[0])}:${extra[1]}` : ''}}`,
        `{"type":${JSON.stringify(t)}}`,
      ),
    );
}

/** JSON text of an object from its entries (keys, and values as JSON text): `__proto__` stays a key. */
const objectText = (entries: ReadonlyArray<readonly [string, string]>) =>
  `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`;

type Mutation = { set: string; to: string } | { drop: number };
const mutation: fc.Arbitrary<Mutation> = fc.oneof(
  fc.record({ set: key, to: fc.oneof({ weight: 4, arbitrary: plausibleJson }, deeplyNested) }),
  fc.record({ drop: fc.nat(5) }),
);

/**
 * Valid frames of the protocol, as they are or with a field or two changed,
 * added or removed (in `detail`, or in the frame itself for CloudLink).
 */
export function mutated(samples: readonly string[]): fc.Arbitrary<string> {
  return fc.tuple(fc.constantFrom(...samples), fc.array(mutation, { maxLength: 2 })).map(([sample, ops]) => {
    const parsed = JSON.parse(sample) as Record<string, unknown>;
    const inDetail = typeof parsed.detail === 'object' && parsed.detail !== null;
    const target = (inDetail ? parsed.detail : parsed) as Record<string, unknown>;
    let entries = Object.entries(target).map(([k, v]) => [k, JSON.stringify(v)] as const);
    for (const op of ops) {
      if ('drop' in op) entries = entries.filter((_, i) => i !== op.drop);
      else entries = [...entries.filter(([k]) => k !== op.set), [op.set, op.to] as const];
    }
    return inDetail ? `{"type":${JSON.stringify(parsed.type)},"detail":${objectText(entries)}}` : objectText(entries);
  });
}

/** A `{type, detail}` frame as JSON text (no `detail` when it is undefined). */
export const frame = (type: string, detail?: unknown) =>
  JSON.stringify(detail === undefined ? { type } : { type, detail });

/** CloudLink's `{opcode, payload?, tx?, rx?}` frames. */
export const opcodeFrames = fc
  .tuple(
    fc.oneof(
      { weight: 4, arbitrary: fc.integer({ min: -1, max: opcodeNames.length }) },
      fc.constantFrom('2', 2.5, null, 1e300),
    ),
    fc.array(fc.tuple(fc.constantFrom('payload', 'tx', 'rx', 'opcode', '__proto__', 'x'), detailText), {
      maxLength: 3,
    }),
  )
  .map(
    ([opcode, rest]) =>
      `{"opcode":${JSON.stringify(opcode)}${rest.map(([k, v]) => `,${JSON.stringify(k)}:${v}`).join('')}}`,
  );

/** Everything else: any text, any bytes, any JSON value, frames over the cap. */
export function anyFrame(maxFrameSize: number): fc.Arbitrary<Frame> {
  return fc.oneof(
    fc.string({ unit: 'binary', maxLength: 200 }),
    fc.jsonValue().map((value) => JSON.stringify(value)),
    fc.uint8Array({ maxLength: 300 }),
    plausibleJson.map((text) => new TextEncoder().encode(text)),
    fc.constantFrom('', 'null', '[]', '{}', '"x"', '{"type":""}', 'x'.repeat(maxFrameSize + 1)),
  );
}

/** Valid frames each protocol's clients send its server. */
export const clientSamples = {
  cloudlink: [
    '{"opcode":2,"payload":"ada"}',
    '{"opcode":4,"payload":"lobby"}',
    '{"opcode":10,"payload":"v=0","rx":"peer-1"}',
    '{"opcode":16,"rx":"peer-1"}',
    '{"opcode":1}',
  ],
  filedrop: [
    frame('request', { peer: 'K7PQ2MZA' }),
    frame('offer', { peer: 'K7PQ2MZA', data: { type: 'offer', sdp: 'v=0' } }),
    frame('candidate', { peer: 'K7PQ2MZA', data: { candidate: 'candidate:1', sdpMid: '0' } }),
    frame('response', { peer: 'K7PQ2MZA', data: { name: 'a.txt', size: 5, type: '' } }),
    frame('progress', { peer: 'K7PQ2MZA', data: { received: 1, total: 5 } }),
  ],
  workrooms: [
    frame('register', { sessionid: ID22, calls: [] }),
    frame('userprofile', { github: { login: 'ada' } }),
    frame('call', { to: ID22 }),
    frame('hangup', { calls: [{ callid: ID22 }] }),
    frame('autocomplete', { search: 'ada' }),
    frame('offer', { callid: ID22, peerid: ID22, sdp: 'v=0' }),
    frame('ice', { callid: ID22, peerid: ID22, candidate: null }),
  ],
  registry: [
    frame('Connect', { files: [{ path: 'a.txt', size: 5 }] }),
    frame('UpdateFiles', { files: [] }),
    frame('Disconnect'),
    frame('Offer', { peer: 'p1', connection: 'c1', sdp: 'v=0' }),
    frame('Candidate', { peer: 'p1', connection: 'c1', from: 'requester', candidate: { candidate: 'c' } }),
  ],
  swarm: [
    frame('i_am', { client_id: 'laptop' }),
    frame('requesting_peers', { context_id: 'c1' }),
    frame('sending_offer', { offer: 'v=0', context_id: 'c1' }),
    frame('sending_answer', { answer: 'v=0', context_id: 'c1' }),
  ],
} satisfies Record<string, readonly string[]>;

/**
 * `fc.assert` whose failure message keeps the start (the seed, the
 * counterexample's beginning) and the end (the error) of what fast-check
 * says: a counterexample nested 10000 deep would fill the screen.
 */
export function assertProperty(property: fc.IProperty<never> | fc.IProperty<unknown[]>, numRuns: number): void {
  try {
    // FC_SEED=<seed from a failure> replays that run.
    const seed = process.env.FC_SEED === undefined ? undefined : Number(process.env.FC_SEED);
    fc.assert(property as fc.IProperty<unknown[]>, { numRuns, ...(seed !== undefined && { seed }) });
  } catch (error) {
    if (!(error instanceof Error) || error.message.length <= 4000) throw error;
    const { message } = error;
    throw new Error(`${message.slice(0, 1500)} … ${message.slice(-2500)}`, { cause: error.cause });
  }
}
