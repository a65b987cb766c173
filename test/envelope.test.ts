import * as v from 'valibot';
import { describe, expect, it } from 'vitest';
import { serverCodec as filedropServerCodec } from '../machines/filedrop/codec.js';
import { serverCodec as registryServerCodec } from '../machines/registry/codec.js';
import { serverCodec as workroomsServerCodec } from '../machines/workrooms/codec.js';
import { checkDetail, clip, describeIssue, knownType, parseEnvelope, verbatim } from '../src/envelope.js';
import { ProtocolError } from '../src/errors.js';

function rejection(fn: () => unknown): ProtocolError {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return error as ProtocolError;
  }
  throw new Error('expected a ProtocolError');
}

describe('parseEnvelope', () => {
  it('takes a JSON object of exactly type and detail', () => {
    expect(parseEnvelope('{"type":"call","detail":{"to":"x"}}', 64)).toEqual({ type: 'call', detail: { to: 'x' } });
    expect(parseEnvelope('{"type":"leave"}', 64)).toEqual({ type: 'leave', detail: undefined });
  });

  it.each([
    ['binary', new Uint8Array([1]), 'ERR_MALFORMED_FRAME', 'binary frames are not accepted; send JSON text'],
    [
      'oversized',
      `{"type":"${'x'.repeat(80)}"}`,
      'ERR_FRAME_TOO_LARGE',
      'frame of 91 characters exceeds the cap of 64',
    ],
    ['not JSON', '{', 'ERR_MALFORMED_FRAME', 'frame is not valid JSON'],
    ['an array', '[]', 'ERR_MALFORMED_FRAME', 'frame must be a JSON object { type, detail }'],
    ['a missing type', '{"detail":1}', 'ERR_INVALID_FIELD', '`type` must be a non-empty string'],
    [
      'a stray key',
      '{"type":"call","from":"x"}',
      'ERR_INVALID_FIELD',
      'call: unexpected key `from` next to type and detail',
    ],
  ])('refuses %s', (_, frame, code, message) => {
    expect(rejection(() => parseEnvelope(frame, 64))).toMatchObject({ code, message });
  });

  it('quotes a long type and stray key with `quote`: 64 characters unless told', () => {
    const frame = JSON.stringify({ type: 't'.repeat(100), ['k'.repeat(100)]: 1 });
    expect(rejection(() => parseEnvelope(frame, 1000)).message).toBe(
      `${'t'.repeat(64)}: unexpected key \`${'k'.repeat(64)}\` next to type and detail`,
    );
    expect(rejection(() => parseEnvelope(frame, 1000, verbatim)).message).toBe(
      `${'t'.repeat(100)}: unexpected key \`${'k'.repeat(100)}\` next to type and detail`,
    );
  });
});

describe('knownType', () => {
  const known = ['call', 'hangup'] as const;
  it('passes a known type, from a list or the keys of a table', () => {
    expect(knownType('call', known)).toBe('call');
    expect(knownType('call', { call: 1 })).toBe('call');
  });
  it('refuses a type only the server sends with ERR_NOT_PERMITTED, any other unknown one with ERR_UNKNOWN_MESSAGE', () => {
    expect(rejection(() => knownType('registered', known, ['registered']))).toMatchObject({
      code: 'ERR_NOT_PERMITTED',
      message: '`registered` is sent by the server only',
    });
    expect(rejection(() => knownType('x'.repeat(100), known))).toMatchObject({
      code: 'ERR_UNKNOWN_MESSAGE',
      message: `unknown message type \`${'x'.repeat(64)}\``,
    });
    // Not an inherited key of the table either.
    expect(rejection(() => knownType('toString', { call: 1 })).code).toBe('ERR_UNKNOWN_MESSAGE');
  });
});

describe('checkDetail and describeIssue', () => {
  const schema = v.strictObject({ to: v.string() });
  it("returns the schema's output", () => {
    expect(checkDetail(schema, 'call', { to: 'x' })).toEqual({ to: 'x' });
  });
  it('names where the first issue is', () => {
    expect(rejection(() => checkDetail(schema, 'call', { to: 1 }))).toMatchObject({
      code: 'ERR_INVALID_FIELD',
      message: 'call: `detail.to`: Invalid type: Expected string but received 1',
    });
    expect(rejection(() => checkDetail(schema, 'call', 'x')).message).toMatch(/^call: `detail`: Invalid type/);
  });
  it('quotes keys and messages as told', () => {
    const result = v.safeParse(schema, { ['k'.repeat(10)]: 1, to: 'x' });
    expect(result.success).toBe(false);
    const issue = result.issues![0];
    expect(describeIssue(issue)).toEqual({ key: 'k'.repeat(10), message: issue.message });
    expect(describeIssue(issue, { key: clip(4, '…'), message: clip(5) })).toEqual({
      key: 'kkkk…',
      message: issue.message.slice(0, 5),
    });
  });
});

describe('how each protocol quotes what a client wrote', () => {
  const stray = JSON.stringify({ type: 'call', detail: {}, ['k'.repeat(100)]: 1 });
  it('workrooms and registry clip a stray key to 64 characters, filedrop quotes it whole', () => {
    const clipped = `call: unexpected key \`${'k'.repeat(64)}\` next to type and detail`;
    expect(rejection(() => workroomsServerCodec().decode(stray)).message).toBe(clipped);
    expect(rejection(() => registryServerCodec().decode(stray.replace('call', 'Offer'))).message).toBe(
      clipped.replace('call', 'Offer'),
    );
    expect(rejection(() => filedropServerCodec().decode(stray.replace('call', 'request'))).message).toBe(
      `request: unexpected key \`${'k'.repeat(100)}\` next to type and detail`,
    );
  });

  it('registry marks a clipped key of the detail with …; workrooms clips it bare; filedrop quotes it whole', () => {
    const key = 'k'.repeat(100);
    expect(
      rejection(() =>
        registryServerCodec().decode(JSON.stringify({ type: 'Connect', detail: { files: [], [key]: 1 } })),
      ).message,
    ).toMatch(new RegExp(`^Connect: \`detail\\.k{64}…\`: `));
    expect(
      rejection(() =>
        workroomsServerCodec().decode(JSON.stringify({ type: 'call', detail: { to: 'a'.repeat(22), [key]: 1 } })),
      ).message,
    ).toMatch(new RegExp(`^call: \`detail\\.k{64}\`: `));
    expect(
      rejection(() => filedropServerCodec().decode(JSON.stringify({ type: 'request', detail: { [key]: 1 } }))).message,
    ).toMatch(new RegExp(`^request: \`detail\\.k{100}\`: `));
  });
});
