import { describe, expect, it } from 'vitest';
import { ProtocolError } from '../src/errors.js';
import { serverCodec } from '../machines/workrooms/codec.js';

describe('workrooms relay depth', () => {
  // Found by test/fuzz-codecs.test.ts: valibot's output leaves out a `constructor` key, so a depth check on
  // the output let a 10,000-deep value through, and relaying it overflowed JSON.stringify's stack.
  it('refuses a relay nested too deep under a key valibot leaves out of its output (constructor)', () => {
    const deep = `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`;
    const frame = `{"type":"ice","detail":{"callid":"q2R0bW9yZ2VuLXNlc3Npb24","peerid":"q2R0bW9yZ2VuLXNlc3Npb24","candidate":null,"constructor":${deep}}}`;
    expect(() => serverCodec().decode(frame)).toThrow(ProtocolError);
  });
});

describe('workrooms autocomplete results depth', () => {
  // Found by test/fuzz-codecs.test.ts (seed -589099851): the ignored `results` of a request were taken at any
  // depth, and the server re-encodes the request to measure its answer's budget, which overflowed the stack.
  const request = (results: string) => `{"type":"autocomplete","detail":{"search":"ada","results":${results}}}`;

  it('refuses results nested thousands deep with a ProtocolError', () => {
    const frame = request(`${'['.repeat(10_000)}${']'.repeat(10_000)}`);
    expect(() => serverCodec().decode(frame)).toThrow(ProtocolError);
  });

  it("takes results as deep as the server's own answer can be", () => {
    // The array, an entry, its profiles record, then a profile nested to the profile bound.
    const profile = `${'{"a":'.repeat(15)}1${'}'.repeat(15)}`;
    const results = `[{"sessionid":"q2R0bW9yZ2VuLXNlc3Npb24","userprofiles":{"github":${profile}}}]`;
    const message = serverCodec().decode(request(results));
    expect(message.type).toBe('autocomplete');
    expect(() => serverCodec().decode(request(`[${results}]`))).toThrow(ProtocolError);
  });
});
