import { describe, expect, it } from 'vitest';
import { formatBytes, formatDuration, formatRate, RateMeter, receiveCommand, shellQuote } from '../cli/format.js';

describe('formatBytes and formatRate', () => {
  it.each([
    [0, '0 B'],
    [968.779564806055, '969 B'],
    [1023, '1023 B'],
    [1536, '1.5 KiB'],
    [1.25 * 1024 * 1024, '1.3 MiB'],
    [3 * 1024 ** 3, '3.0 GiB'],
    [5 * 1024 ** 5, '5120.0 TiB'],
  ])('%d bytes read "%s"', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });

  it('never prints a raw float for a rate', () => {
    expect(formatRate(968.779564806055)).toBe('969 B/s');
    expect(formatRate(1_234_567.891)).toBe('1.2 MiB/s');
    for (const rate of [0.4, 12.345, 1000.5, 65_535.9, 1e9 / 7])
      expect(formatRate(rate)).toMatch(/^\d+(\.\d)? (B|KiB|MiB|GiB)\/s$/);
  });
});

describe('formatDuration', () => {
  it.each([
    [0, '00:00'],
    [59.6, '01:00'],
    [75, '01:15'],
    [3725, '1:02:05'],
    [-3, '00:00'],
    [Infinity, '--:--'],
    [undefined, '--:--'],
  ])('%s s reads "%s"', (seconds, text) => {
    expect(formatDuration(seconds)).toBe(text);
  });
});

describe('RateMeter', () => {
  /** Feeds `bytesPerSecond` for `seconds` in 100 ms steps; returns the new totals. */
  function feed(meter: RateMeter, from: { value: number; at: number }, bytesPerSecond: number, seconds: number) {
    let { value, at } = from;
    for (let i = 0; i < seconds * 10; i++) {
      value += bytesPerSecond / 10;
      at += 100;
      meter.update(value, at);
    }
    return { value, at };
  }

  it('knows no rate and no ETA before the first update', () => {
    const meter = new RateMeter();
    meter.start(0, 1000);
    expect(meter.bytesPerSecond).toBeUndefined();
    expect(meter.eta(100)).toBeUndefined();
  });

  it('reads a steady rate exactly, and the ETA from it', () => {
    const meter = new RateMeter();
    meter.start(0, 0);
    feed(meter, { value: 0, at: 0 }, 1000, 5);
    expect(meter.bytesPerSecond).toBeCloseTo(1000, 6);
    expect(meter.eta(5000)).toBeCloseTo(5, 6);
  });

  it('follows a slowdown within seconds, where the average since the start would not', () => {
    const meter = new RateMeter();
    meter.start(0, 0);
    const fast = feed(meter, { value: 0, at: 0 }, 1000, 60);
    const slow = feed(meter, fast, 100, 15);
    const averageSinceStart = (slow.value * 1000) / slow.at; // about 820 B/s
    expect(averageSinceStart).toBeGreaterThan(800);
    expect(meter.bytesPerSecond!).toBeLessThan(130);
    expect(meter.eta(1000)!).toBeGreaterThan(7.5); // the average would say about 1.2 s
  });

  it('follows a speed-up the same way', () => {
    const meter = new RateMeter();
    meter.start(0, 0);
    const slow = feed(meter, { value: 0, at: 0 }, 100, 60);
    feed(meter, slow, 10_000, 15);
    expect(meter.bytesPerSecond!).toBeGreaterThan(9_500);
  });

  it('adds up updates within one millisecond into the next sample', () => {
    const meter = new RateMeter();
    meter.start(0, 0);
    meter.update(500, 0);
    meter.update(1000, 0);
    expect(meter.bytesPerSecond).toBeUndefined();
    meter.update(1000, 1000);
    expect(meter.bytesPerSecond).toBe(1000);
  });

  it('counts from where start() put it, as for a transfer that resumes', () => {
    const meter = new RateMeter();
    meter.start(1_000_000, 0);
    meter.update(1_000_500, 1000);
    expect(meter.bytesPerSecond).toBe(500);
  });
});

describe('receiveCommand', () => {
  it('is the bare command when the sender used the defaults', () => {
    expect(receiveCommand('ABCD2345')).toBe('npx signalbox receive ABCD2345');
  });

  it('repeats --server and every --ice-server as the sender gave them', () => {
    expect(
      receiveCommand('ABCD2345', {
        server: 'https://drop.example.org',
        iceServers: ['stun:a.example.org:3478', 'turn:b.example.org'],
      }),
    ).toBe(
      'npx signalbox receive ABCD2345 --server https://drop.example.org --ice-server stun:a.example.org:3478 --ice-server turn:b.example.org',
    );
  });

  it('says --ice-server none for an empty list (SIGNALBOX_ICE_SERVERS set and empty)', () => {
    expect(receiveCommand('ABCD2345', { iceServers: [''] })).toBe('npx signalbox receive ABCD2345 --ice-server none');
    expect(receiveCommand('ABCD2345', { iceServers: ['none'] })).toBe(
      'npx signalbox receive ABCD2345 --ice-server none',
    );
  });

  it('quotes what a shell would split or expand', () => {
    expect(shellQuote('ws://h:1/filedrop?a=1&b=2')).toBe("'ws://h:1/filedrop?a=1&b=2'");
    expect(shellQuote("it's")).toBe("'it'\\''s'");
    expect(receiveCommand('ABCD2345', { server: 'ws://h/x y' })).toBe(
      "npx signalbox receive ABCD2345 --server 'ws://h/x y'",
    );
  });
});
