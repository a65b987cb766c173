import { describe, expect, it } from 'vitest';
import { nobleSha256Stream, sha256Hex, sha256Implementation, sha256Stream } from '../src/sha256.js';

// FIPS 180-2 test vectors.
const VECTORS: Array<[string, string]> = [
  ['', 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'],
  ['abc', 'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'],
  [
    'abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq',
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1',
  ],
];

function pattern(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 131 + 17) & 0xff;
  return out;
}

describe('sha256', () => {
  it("uses Node's native hash on this Node", () => {
    expect(sha256Implementation).toBe('node:crypto');
  });

  it.each(VECTORS)('gives the standard digest of %j, natively and in JavaScript', (text, digest) => {
    const bytes = new TextEncoder().encode(text);
    expect(sha256Hex(bytes)).toBe(digest);
    const noble = nobleSha256Stream();
    noble.update(bytes);
    expect(noble.hex()).toBe(digest);
  });

  it('gives the same digest whatever the pieces, in both implementations', () => {
    const data = pattern(300_001);
    const whole = sha256Hex(data);
    for (const make of [sha256Stream, nobleSha256Stream]) {
      const hash = make();
      for (let at = 0, step = 1; at < data.byteLength; at += step, step = (step * 7) % 65_537) {
        hash.update(data.subarray(at, at + step));
      }
      expect(hash.hex()).toBe(whole);
    }
    // A one-byte change changes the digest.
    const changed = data.slice();
    changed[150_000] = changed[150_000]! ^ 1;
    expect(sha256Hex(changed)).not.toBe(whole);
  });
});
