import { describe, expect, it } from 'vitest';
import { ErrorCode, errorCodeOf } from '../src/errors.js';

describe('errorCodeOf', () => {
  it('keeps a code this library defines', () => {
    for (const code of Object.values(ErrorCode)) expect(errorCodeOf(code)).toBe(code);
  });
  it('reads any other code as the fallback, ERR_INVALID_FIELD unless told', () => {
    expect(errorCodeOf('E_UNHAPPY')).toBe(ErrorCode.InvalidField);
    expect(errorCodeOf('toString')).toBe(ErrorCode.InvalidField);
    expect(errorCodeOf('', ErrorCode.PeerGone)).toBe(ErrorCode.PeerGone);
  });
});
