import { describe, expect, it } from 'vitest';
import { generateId, isId } from '../machines/workrooms/protocol.js';
import { memoryRegistry } from '../machines/workrooms/registry.js';

const A = generateId();
const B = generateId();
const C = generateId();

describe('workrooms ids', () => {
  it('draws 22 URL-safe characters, different every time', () => {
    const ids = Array.from({ length: 1000 }, generateId);
    for (const id of ids) expect(id).toMatch(/^[A-Za-z0-9_-]{22}$/);
    expect(new Set(ids).size).toBe(1000);
  });

  it('accepts 22 to 64 URL-safe characters (a UUID too), nothing shorter or stranger', () => {
    expect(isId(generateId())).toBe(true);
    expect(isId(crypto.randomUUID())).toBe(true);
    expect(isId('x'.repeat(64))).toBe(true);
    for (const bad of ['bob', 'x'.repeat(21), 'x'.repeat(65), `${'x'.repeat(21)}!`, `${'x'.repeat(21)} `, 42, null]) {
      expect(isId(bad)).toBe(false);
    }
  });
});

describe('memoryRegistry', () => {
  it('gives a session to a connection, and hands it over to the next one that claims it', () => {
    const registry = memoryRegistry();
    expect(registry.claim(A, 'conn:1')).toBeUndefined();
    expect(registry.heldBy('conn:1')).toBe(A);
    expect(registry.claim(A, 'conn:2')).toBe('conn:1');
    expect(registry.holder(A)).toBe('conn:2');
    expect(registry.heldBy('conn:1')).toBeUndefined();
    expect(registry.heldBy('conn:2')).toBe(A);
    // The old connection can no longer release it, nor send it away.
    registry.setAway(A, 'conn:1');
    expect(registry.isOnline(A)).toBe(true);
    expect(registry.release(A, 'conn:1')).toBe(false);
    expect(registry.size).toEqual({ sessions: 1, online: 1, calls: 0 });
  });

  it('keeps the calls and the profile of a session that is away, and gives them to whoever claims it', () => {
    const registry = memoryRegistry();
    registry.claim(A, 'conn:1');
    registry.claim(B, 'conn:2');
    registry.setProfile(A, { github: { login: 'ada' } });
    registry.addCall({ callid: 'c1', from: A, to: B });
    registry.setAway(A, 'conn:1');
    expect(registry.isOnline(A)).toBe(false);
    expect(registry.size).toEqual({ sessions: 2, online: 1, calls: 1 });
    expect(registry.search('ada', 10)).toEqual([]);
    expect(registry.claim(A, 'conn:3')).toBe('conn:1');
    expect(registry.callsOf(A)).toEqual([{ callid: 'c1', from: A, to: B }]);
    expect(registry.search('ADA', 10)).toEqual([{ sessionid: A, userprofiles: { github: { login: 'ada' } } }]);
    expect(registry.size).toEqual({ sessions: 2, online: 2, calls: 1 });
  });

  it('finds the call between two sessions either way, and forgets a released session’s calls', () => {
    const registry = memoryRegistry();
    for (const [id, conn] of [
      [A, 'conn:1'],
      [B, 'conn:2'],
      [C, 'conn:3'],
    ] as const)
      registry.claim(id, conn);
    registry.addCall({ callid: 'ab', from: A, to: B });
    registry.addCall({ callid: 'ca', from: C, to: A });
    expect(registry.callBetween(B, A)?.callid).toBe('ab');
    expect(registry.callBetween(A, C)?.callid).toBe('ca');
    expect(registry.callBetween(B, C)).toBeUndefined();
    expect(registry.release(A, 'conn:1')).toBe(true);
    expect(registry.callsOf(B)).toEqual([]);
    expect(registry.callsOf(C)).toEqual([]);
    expect(registry.size).toEqual({ sessions: 2, online: 2, calls: 0 });
  });

  it('searches the string fields of online profiles, never the searcher, at most `limit`', () => {
    const registry = memoryRegistry();
    registry.claim(A, 'conn:1');
    registry.claim(B, 'conn:2');
    registry.claim(C, 'conn:3');
    registry.setProfile(A, { github: { login: 'ann', name: 'Ann Smith', id: 7 } });
    registry.setProfile(B, { github: { login: 'bob', name: 'Bob Smith' } });
    expect(registry.search('smith', 10, A).map((e) => e.sessionid)).toEqual([B]);
    expect(registry.search('smith', 1).map((e) => e.sessionid)).toEqual([A]);
    expect(registry.search('7', 10)).toEqual([]);
    expect(registry.search('   ', 10)).toEqual([]);
  });
});
