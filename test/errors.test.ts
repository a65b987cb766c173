import { describe, expect, it } from 'vitest';
import { FileDropError } from '../machines/filedrop/errors.js';
import { RegistryError } from '../machines/registry/errors.js';
import { SwarmError } from '../machines/swarm/errors.js';
import { defineErrorClass, ErrorCode, errorCodeOf, SignalboxError } from '../src/errors.js';

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

describe('defineErrorClass and the protocol errors built on it', () => {
  it('maps each reason to its code, keeps the class name, and lets options.code and cause through', () => {
    const cause = new Error('disk full');
    const fd = new FileDropError('sink-failed', 'could not write', { cause, remote: 'busy' });
    expect(fd).toBeInstanceOf(FileDropError);
    expect(fd).toBeInstanceOf(SignalboxError);
    expect(fd).toBeInstanceOf(Error);
    expect(fd.name).toBe('FileDropError');
    expect(fd.code).toBe(ErrorCode.Io);
    expect(fd.reason).toBe('sink-failed');
    expect(fd.message).toBe('could not write');
    expect(fd.cause).toBe(cause);
    expect(fd.remote).toBe('busy');

    const reg = new RegistryError('not-listed', 'gone', { code: ErrorCode.PeerGone });
    expect(reg.name).toBe('RegistryError');
    expect(reg.code).toBe(ErrorCode.PeerGone);
    expect(reg).not.toBeInstanceOf(FileDropError);
    expect('cause' in reg).toBe(false);

    const sw = new SwarmError('not-found', 'nobody', { misses: [{ link: 'a', reason: 'timeout', message: 'slow' }] });
    expect([sw.name, sw.code, sw.misses.length]).toEqual(['SwarmError', ErrorCode.PeerGone, 1]);
    expect(new SwarmError('digest-mismatch', 'x').misses).toEqual([]);
  });

  it('builds a new protocol error from a name and a reason table', () => {
    const ChatError = defineErrorClass('ChatError', { timeout: ErrorCode.Timeout, gone: ErrorCode.PeerGone });
    const e = new ChatError('gone', 'left');
    expect([e.name, e.code, e.reason, e.message]).toEqual(['ChatError', ErrorCode.PeerGone, 'gone', 'left']);
    expect(e).toBeInstanceOf(SignalboxError);
  });
});
