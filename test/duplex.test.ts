import { describe, expect, it } from 'vitest';
import { memoryPair } from '../adapters/memory/index.js';
import { joinTransports } from '../src/duplex.js';
import { nextEvent, transportCompliance } from './transport-compliance.js';

/** Two one-way links, the way CloudLink pairs use their two peer connections. */
function joinedPair() {
  const [aOut, bIn] = memoryPair();
  const [bOut, aIn] = memoryPair();
  return { a: joinTransports(aOut, aIn), b: joinTransports(bOut, bIn), parts: { aOut, aIn, bOut, bIn } };
}

transportCompliance('joinTransports over two memory links', async () => joinedPair());

describe('joinTransports', () => {
  it('sends on the outbound link only', async () => {
    const { a, parts } = joinedPair();
    const onInbound = parts.aIn.on('message', () => expect.unreachable('nothing may go out on the inbound link'));
    const got = nextEvent(parts.bIn, 'message');
    a.send('x');
    expect(await got).toBe('x');
    onInbound();
  });

  it('closes when either link closes, and closes the other link', async () => {
    const { a, b, parts } = joinedPair();
    const closed = nextEvent(a, 'close');
    const otherClosed = nextEvent(b, 'close');
    parts.bOut.close(1000, 'gone');
    expect(await closed).toMatchObject({ initiator: 'remote' });
    expect(await otherClosed).toMatchObject({ initiator: 'remote' });
    expect(parts.aOut.isOpen).toBe(false);
  });
});
