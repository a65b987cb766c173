import { describe, expect, it } from 'vitest';
import {
  channelCodec,
  checkFileList,
  checkOutgoingList,
  clientCodec,
  RegistryDecodeError,
  serverCodec,
} from '../machines/registry/codec.js';
import { checkPath, type ClientMessage, type ServerMessage } from '../machines/registry/protocol.js';
import { ErrorCode, ProtocolError } from '../src/errors.js';
import { readCandidate, readDescription, wireProblem, type WireProblem } from '../src/rtc/wire.js';

function refusal(decode: () => unknown): ProtocolError {
  try {
    decode();
  } catch (error) {
    expect(error).toBeInstanceOf(ProtocolError);
    return error as ProtocolError;
  }
  throw new Error('decoded without an error');
}

describe('registry paths', () => {
  it('accepts clean relative paths', () => {
    for (const path of ['a', 'a.txt', 'docs/deep/file.bin', '.hidden', 'a..b', '…/ü', 'x'.repeat(1024)]) {
      expect(checkPath(path)).toBeUndefined();
    }
  });

  it('refuses every way out of the shared directory, each with its reason', () => {
    expect(checkPath('..')).toMatch(/`\.\.` segment/);
    expect(checkPath('a/../../b')).toMatch(/`\.\.` segment/);
    expect(checkPath('./a')).toMatch(/`\.` segment/);
    expect(checkPath('/etc/passwd')).toBe('a path must be relative');
    expect(checkPath('C:/x')).toBe('a path must be relative');
    expect(checkPath('c:x')).toBe('a path must be relative');
    expect(checkPath('a\\b')).toMatch(/separator/);
    expect(checkPath('a\u0000b')).toMatch(/NUL/);
    expect(checkPath('a\nb')).toMatch(/control/);
    expect(checkPath('a//b')).toMatch(/empty segments/);
    expect(checkPath('a/')).toMatch(/empty segments/);
    expect(checkPath('')).toBe('a path must not be empty');
    expect(checkPath('x'.repeat(1025))).toMatch(/at most 1024/);
    expect(checkPath(42)).toBe('a path must be a string');
  });

  it('checks whole lists: entries, duplicates, size', () => {
    expect(
      checkFileList([
        { path: 'a', size: 0 },
        { path: 'b', size: 1, sha256: 'f'.repeat(64) },
      ]),
    ).toBeUndefined();
    expect(checkFileList('a.txt')).toMatch(/array/i);
    expect(checkFileList([{ path: 'a', size: 1.5 }])).toMatch(/^files\.0\.size: /);
    expect(
      checkFileList([
        { path: 'a', size: 1 },
        { path: 'a', size: 1 },
      ]),
    ).toBe('a file list must not name a path twice');
    expect(
      checkFileList(
        [
          { path: 'a', size: 1 },
          { path: 'b', size: 1 },
        ],
        1,
      ),
    ).toBe('a file list has at most 1 entries');
  });
});

describe('registry codecs', () => {
  it('round-trips what each side sends', () => {
    const server = serverCodec();
    const client = clientCodec();
    const connect: ClientMessage = { type: 'Connect', detail: { files: [{ path: 'a', size: 1 }] } };
    expect(server.decode(client.encode(connect))).toEqual(connect);
    expect(server.decode(client.encode({ type: 'Disconnect', detail: undefined }))).toEqual({
      type: 'Disconnect',
      detail: undefined,
    });
    const register: ServerMessage = { type: 'RegisterPeer', detail: { peer: 'p', files: [] } };
    expect(client.decode(server.encode(register))).toEqual(register);
  });

  it('refuses server frames a client cannot trust, with stable codes', () => {
    const client = clientCodec({ maxFrameSize: 100 });
    expect(refusal(() => client.decode('{"type":"Nope","detail":{}}')).code).toBe(ErrorCode.UnknownMessage);
    expect(refusal(() => client.decode('{"type":"Welcome","detail":{}}')).code).toBe(ErrorCode.InvalidField);
    expect(
      refusal(() => client.decode('{"type":"RegisterPeer","detail":{"peer":"p","files":[{"path":"../x","size":1}]}}'))
        .code,
    ).toBe(ErrorCode.InvalidField);
    expect(refusal(() => client.decode('x'.repeat(101))).code).toBe(ErrorCode.FrameTooLarge);
    expect(refusal(() => client.decode(new Uint8Array([1]))).code).toBe(ErrorCode.MalformedFrame);
  });

  it('names the refused message when its type is known, and keeps what it echoes short', () => {
    const server = serverCodec();
    const long = 'k'.repeat(10_000);
    const error = refusal(() =>
      server.decode(JSON.stringify({ type: 'UpdateFiles', detail: { files: [{ path: 'a', size: 1, [long]: 1 }] } })),
    );
    expect(error).toBeInstanceOf(RegistryDecodeError);
    expect((error as RegistryDecodeError).event).toBe('UpdateFiles');
    expect(error.code).toBe(ErrorCode.InvalidField);
    expect(error.message.length).toBeLessThan(400);
    expect(error.message).toMatch(/^UpdateFiles: `detail\.files\.0\.k{64}…`: /);
    // Unknown types and bad envelopes name nothing.
    expect(refusal(() => server.decode('{"type":"Nope"}'))).not.toBeInstanceOf(RegistryDecodeError);
  });

  it('checks a list against the server’s limits before it is sent', () => {
    const files = [
      { path: 'a', size: 1 },
      { path: 'b', size: 2 },
    ];
    expect(checkOutgoingList(files, { maxFiles: 2, maxFrameSize: 1000 })).toBeUndefined();
    expect(checkOutgoingList(files, { maxFiles: 1, maxFrameSize: 1000 })).toBe('a file list has at most 1 entries');
    const frame = JSON.stringify({ type: 'UpdateFiles', detail: { files } }).length;
    expect(checkOutgoingList(files, { maxFiles: 2, maxFrameSize: frame })).toBeUndefined();
    expect(checkOutgoingList(files, { maxFiles: 2, maxFrameSize: frame - 1 })).toBe(
      `the list makes a frame of ${frame} characters, over the server's cap of ${frame - 1}: share fewer files`,
    );
    expect(checkOutgoingList([{ path: '../x', size: 1 }], { maxFiles: 2, maxFrameSize: 1000 })).toMatch(/`\.\.`/);
  });

  it('decodes the data channel’s text frames and refuses the rest', () => {
    expect(channelCodec.decode('{"type":"RequestFile","detail":{"path":"../x"}}')).toEqual({
      type: 'RequestFile',
      detail: { path: '../x' },
    });
    expect(refusal(() => channelCodec.decode('{"type":"File","detail":{"path":"a","size":1}}')).code).toBe(
      ErrorCode.InvalidField,
    );
    expect(refusal(() => channelCodec.decode('{"type":"Error","detail":{"reason":"boom","message":""}}')).code).toBe(
      ErrorCode.InvalidField,
    );
    expect(refusal(() => channelCodec.decode('{"type":"Connect","detail":{}}')).code).toBe(ErrorCode.UnknownMessage);
    expect(refusal(() => channelCodec.decode(new Uint8Array([0, 0, 0, 0]))).code).toBe(ErrorCode.MalformedFrame);
  });
});

describe('reading what other implementations put in a relay (src/rtc/wire.ts)', () => {
  const SDP = 'v=0\r\ns=-\r\n';

  it('reads a description as an SDP string or { type, sdp }, and names the field it cannot read', () => {
    expect(readDescription(SDP, 'offer', 'sdp')).toEqual({ value: { type: 'offer', sdp: SDP } });
    expect(readDescription({ type: 'answer', sdp: SDP, extra: 1 }, 'answer', 'sdp')).toEqual({
      value: { type: 'answer', sdp: SDP },
    });
    // A missing `type` is taken as the expected one.
    expect(readDescription({ sdp: SDP }, 'offer', 'sdp')).toEqual({ value: { type: 'offer', sdp: SDP } });
    expect(readDescription('', 'offer', 'sdp')).toEqual({ field: 'sdp', problem: 'is empty' });
    expect(readDescription(null, 'offer', 'sdp')).toEqual({
      field: 'sdp',
      problem: 'must be an SDP string or { type, sdp }, not null',
    });
    expect(readDescription({ type: 'offer' }, 'offer', 'offer')).toEqual({
      field: 'offer.sdp',
      problem: 'must be a non-empty string, not missing',
    });
    const mismatch = readDescription({ type: 'pranswer', sdp: SDP }, 'answer', 'sdp');
    expect(mismatch).toEqual({ field: 'sdp.type', problem: 'is "pranswer", expected "answer"' });
    expect(wireProblem(mismatch as WireProblem)).toBe('`sdp.type` is "pranswer", expected "answer"');
  });

  it('reads a candidate as RTCIceCandidateInit, a candidate line, or the end of candidates', () => {
    const line = 'candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host';
    expect(readCandidate({ candidate: line, sdpMid: '0', sdpMLineIndex: 0, usernameFragment: null }, 'c')).toEqual({
      value: { candidate: line, sdpMid: '0', sdpMLineIndex: 0 },
    });
    expect(readCandidate(`a=${line}`, 'c')).toEqual({ value: { candidate: line, sdpMLineIndex: 0 } });
    expect(readCandidate({ candidate: `a=${line}`, sdpMid: '0' }, 'c')).toEqual({
      value: { candidate: line, sdpMid: '0' },
    });
    // Neither sdpMid nor sdpMLineIndex (null fields are left out): the first m-line's, as addIceCandidate needs one.
    expect(readCandidate({ candidate: line, sdpMid: null, sdpMLineIndex: null }, 'c')).toEqual({
      value: { candidate: line, sdpMLineIndex: 0 },
    });
    for (const end of [null, undefined, '', 'a=', { candidate: '' }, { candidate: null }, { sdpMid: '0' }])
      expect(readCandidate(end, 'c')).toEqual({ value: null });
    expect(readCandidate(7, 'c')).toEqual({
      field: 'c',
      problem: 'must be an RTCIceCandidateInit, a candidate string or null, not 7',
    });
    expect(readCandidate([line], 'c').problem).toMatch(/not an array/);
    expect(readCandidate({ candidate: 7 }, 'c')).toEqual({ field: 'c.candidate', problem: 'must be a string, not 7' });
    expect(readCandidate({ candidate: line, sdpMid: 0 }, 'c')).toEqual({
      field: 'c.sdpMid',
      problem: 'must be a string, not 0',
    });
    expect(readCandidate({ candidate: line, sdpMLineIndex: -1 }, 'c')).toEqual({
      field: 'c.sdpMLineIndex',
      problem: 'must be a whole number ≥ 0, not -1',
    });
  });

  it('lets the server relay any JSON there but refuses a detail nested deeper than 32', () => {
    const offer = (sdp: unknown) => JSON.stringify({ type: 'Offer', detail: { peer: 'p', connection: 'c', sdp } });
    const server = serverCodec();
    for (const sdp of [SDP, { type: 'offer', sdp: SDP }, 42, null, [1, { a: [] }]]) {
      expect(server.decode(offer(sdp))).toEqual({ type: 'Offer', detail: { peer: 'p', connection: 'c', sdp } });
    }
    const deep = JSON.parse(`${'['.repeat(31)}${']'.repeat(31)}`);
    expect(server.decode(offer(deep)).type).toBe('Offer'); // 32 levels with the detail itself
    const error = refusal(() => server.decode(offer([deep])));
    expect(error).toMatchObject({ code: ErrorCode.InvalidField, message: 'Offer: `detail`: nested deeper than 32' });
  });
});
