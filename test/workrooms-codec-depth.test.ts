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
