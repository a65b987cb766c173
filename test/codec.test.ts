import { describe, expect, it } from 'vitest';
import { jsonCodec } from '../src/codec.js';
import { clientCodec, serverCodec } from '../machines/cloudlink/codec.js';
import { ProtocolError } from '../src/errors.js';

function rejection(fn: () => unknown) {
  try {
    fn();
  } catch (error) {
    return error;
  }
  throw new Error('expected a ProtocolError');
}

describe('jsonCodec', () => {
  const codec = jsonCodec({ maxFrameSize: 64 });
  it('round-trips {type, detail}', () => {
    const frame = codec.encode({ type: 'offer', detail: { sdp: 'v=0' } });
    expect(frame).toBe('{"type":"offer","detail":{"sdp":"v=0"}}');
    expect(codec.decode(frame)).toEqual({ type: 'offer', detail: { sdp: 'v=0' } });
  });
  it.each([
    ['binary', new Uint8Array([1]), 'ERR_MALFORMED_FRAME'],
    ['oversized', `{"type":"x","detail":"${'y'.repeat(80)}"}`, 'ERR_FRAME_TOO_LARGE'],
    ['not JSON', '{', 'ERR_MALFORMED_FRAME'],
    ['an array', '[]', 'ERR_MALFORMED_FRAME'],
    ['null', 'null', 'ERR_MALFORMED_FRAME'],
    ['a missing type', '{"detail":1}', 'ERR_INVALID_FIELD'],
    ['an empty type', '{"type":""}', 'ERR_INVALID_FIELD'],
  ])('rejects %s with a ProtocolError', (_, frame, code) => {
    const error = rejection(() => codec.decode(frame));
    expect(error).toBeInstanceOf(ProtocolError);
    expect(error).toMatchObject({ code });
  });
});

describe('CloudLink codecs', () => {
  it('encode the seed frame, omitting empty fields', () => {
    const codec = serverCodec();
    expect(codec.encode({ type: 'KEEPALIVE', detail: {} })).toBe('{"opcode":1}');
    expect(codec.encode({ type: 'ANTICIPATE_OFFER', detail: { payload: 'sdp', tx: 'h' } })).toBe(
      '{"opcode":11,"payload":"sdp","tx":"h"}',
    );
    expect(clientCodec().encode({ type: 'MAKE_ANSWER', detail: { payload: 'a', rx: 'p' } })).toBe(
      '{"opcode":14,"payload":"a","rx":"p"}',
    );
  });

  it('decode what the other side encodes, in both directions', () => {
    const toServer = clientCodec().encode({ type: 'ACK_READY', detail: { rx: 'h' } });
    expect(serverCodec().decode(toServer)).toEqual({ type: 'ACK_READY', detail: { rx: 'h' } });
    const toClient = serverCodec().encode({ type: 'SHUTDOWN_ACK', detail: { tx: 'p' } });
    expect(clientCodec().decode(toClient)).toEqual({ type: 'SHUTDOWN_ACK', detail: { tx: 'p' } });
  });

  it('lets the client tolerate extra server fields but not a client-only opcode', () => {
    expect(clientCodec().decode('{"opcode":3,"payload":"id","extra":true}')).toEqual({
      type: 'INIT_OK',
      detail: { payload: 'id' },
    });
    expect(rejection(() => clientCodec().decode('{"opcode":2}'))).toMatchObject({
      code: 'ERR_NOT_PERMITTED',
      message: 'opcode 2 (INIT) is sent by the client only',
    });
  });

  it.each([
    ['{"opcode":99}', 'ERR_UNKNOWN_MESSAGE', 'unknown opcode 99'],
    ['{"opcode":1.5}', 'ERR_INVALID_FIELD', '`opcode` must be an integer'],
    ['{"opcode":2,"tx":"me"}', 'ERR_INVALID_FIELD', '`tx` is set by the server only; name the recipient in `rx`'],
    ['{"opcode":10,"payload":"sdp"}', 'ERR_INVALID_FIELD', 'MAKE_OFFER: `rx`: '],
    ['{"opcode":4,"payload":""}', 'ERR_INVALID_FIELD', 'CONFIG_HOST: `payload`: '],
    // A relayed payload may be any JSON (INIT's too), but a relay must carry one.
    ['{"opcode":10,"rx":"p"}', 'ERR_INVALID_FIELD', 'MAKE_OFFER: `payload`: '],
  ])('server codec rejects %s', (frame, code, message) => {
    const error = rejection(() => serverCodec().decode(frame)) as ProtocolError;
    expect(error.code).toBe(code);
    expect(error.message.startsWith(message)).toBe(true);
  });

  it('decodes relays by their routing fields alone, and refuses each field at its bound', () => {
    const codec = serverCodec();
    const payload = { type: 'answer', sdp: 'v=0', extra: [1, { deep: null }] };
    const frame = (fields: object) => JSON.stringify({ opcode: 14, ...fields });
    // Extra keys are dropped; the payload (null too) comes as it was sent.
    expect(codec.decode(frame({ payload, rx: 'p', id: 7 }))).toEqual({
      type: 'MAKE_ANSWER',
      detail: { payload, rx: 'p' },
    });
    expect(codec.decode(frame({ payload: null, rx: 'x'.repeat(128) }))).toEqual({
      type: 'MAKE_ANSWER',
      detail: { payload: null, rx: 'x'.repeat(128) },
    });
    for (const [fields, message] of [
      [{ payload, rx: '' }, 'MAKE_ANSWER: `rx`: '],
      [{ payload, rx: 'x'.repeat(129) }, 'MAKE_ANSWER: `rx`: '],
      [{ payload, rx: 7 }, 'MAKE_ANSWER: `rx`: '],
      [{ payload }, 'MAKE_ANSWER: `rx`: '],
      [{ rx: 'p' }, 'MAKE_ANSWER: `payload`: '],
    ] as const) {
      const error = rejection(() => codec.decode(frame(fields))) as ProtocolError;
      expect(error.code).toBe('ERR_INVALID_FIELD');
      expect(error.message.startsWith(message)).toBe(true);
    }
  });
});
