import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { connect, createServer, type AddressInfo, type Socket } from 'node:net';
import { mkdir, mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { RTCPeerConnection as NdcPeerConnection } from 'node-datachannel/polyfill';
import { RTCPeerConnection as WeriftPeerConnection } from 'werift';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main.js';
import { createActor, waitFor } from 'xstate';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { clientCodec } from '../machines/filedrop/codec.js';
import { FileDropError } from '../machines/filedrop/errors.js';
import { filedropReceiver } from '../machines/filedrop/receiver.machine.js';
import { fromRtc } from '../src/rtc/index.js';
import { fromTransport } from '../src/runtime.js';
import { startServer, type SignalboxServer } from '../cli/server.js';
import {
  DEFAULT_ICE_SERVERS,
  failureMessage,
  freeSink,
  iceServers,
  iceServerUrls,
  integrityNote,
  prepareDirectory,
  Progress,
  receiveFile,
  rtcConfig,
  sendFile,
  type TransferCliOptions,
} from '../cli/transfer.js';
import { RtcPeer, WERIFT_LOOPBACK, stopPeers } from './rtc-helpers.js';

const TSX = ['--import', 'tsx', 'cli/bin.ts'];
// Tests that spawn the CLI get 60 s: each child compiles its TypeScript through
// tsx on start, which takes seconds on a busy machine (a bound, not a speed claim).

let server: SignalboxServer;
let dir: string;
let url: string;

function run(args: string[], env: Record<string, string> = {}) {
  // No STUN server: the test stays on this machine.
  const child = spawn(process.execPath, [...TSX, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, SIGNALBOX_ICE_SERVERS: '', ...env },
  });
  const stdout: string[] = [];
  const lineWaiters: Array<(line: string) => void> = [];
  createInterface({ input: child.stdout }).on('line', (line) => {
    stdout.push(line);
    lineWaiters.shift()?.(line);
  });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  return {
    child,
    exited,
    stdout,
    stderr: () => stderr,
    firstLine: () =>
      new Promise<string>((resolve) => (stdout.length > 0 ? resolve(stdout[0]!) : lineWaiters.push(resolve))),
  };
}

beforeAll(async () => {
  server = await startServer({ port: 0, host: '127.0.0.1' });
  url = `ws://127.0.0.1:${server.address.port}/filedrop`;
  dir = await mkdtemp(join(tmpdir(), 'signalbox-cli-'));
});
afterAll(async () => {
  await server.close();
  await rm(dir, { recursive: true, force: true });
});

describe('signalbox send / receive', () => {
  it('sends a 1 MiB file from one process to another, byte for byte', async () => {
    const data = randomBytes(1024 * 1024);
    await writeFile(join(dir, 'data.bin'), data);
    const out = join(dir, 'out');
    await mkdir(out);

    const sender = run(['send', join(dir, 'data.bin'), '--server', url]);
    const code = await sender.firstLine();
    expect(code).toMatch(/^[2-9A-Z]{8}$/);
    // http:// is mapped to ws://, and a bare origin gets /filedrop.
    const receiver = run(['receive', code, '--out', out, '--server', `http://127.0.0.1:${server.address.port}`]);

    const [sent, received] = await Promise.all([sender.exited, receiver.exited]);
    expect({ code: received, stderr: receiver.stderr() }).toMatchObject({ code: 0 });
    expect({ code: sent, stderr: sender.stderr() }).toMatchObject({ code: 0 });
    expect(sender.stdout).toEqual([code]);
    expect(receiver.stdout).toEqual([join(out, 'data.bin')]);
    expect(receiver.stderr()).toMatch(/SHA-256 [0-9a-f]{64} verified/);
    // stderr is not a TTY: no progress bar escapes.
    expect(receiver.stderr() + sender.stderr()).not.toMatch(/\x1b\[/); // eslint-disable-line no-control-regex
    expect(Buffer.compare(await readFile(join(out, 'data.bin')), data)).toBe(0);
  }, 60_000);

  it('chooses the WebRTC backend per side: a werift sender and a node-datachannel receiver', async () => {
    const data = randomBytes(256 * 1024);
    await writeFile(join(dir, 'mixed.bin'), data);
    const out = join(dir, 'mixed');
    await mkdir(out);
    const sender = run(['send', join(dir, 'mixed.bin'), '--server', url, '--webrtc', 'werift']);
    const code = await sender.firstLine();
    const receiver = run(['receive', code, '--out', out, '--server', url, '--webrtc', 'node-datachannel']);
    const [sent, received] = await Promise.all([sender.exited, receiver.exited]);
    expect({ code: received, stderr: receiver.stderr() }).toMatchObject({ code: 0 });
    expect({ code: sent, stderr: sender.stderr() }).toMatchObject({ code: 0 });
    expect(Buffer.compare(await readFile(join(out, 'mixed.bin')), data)).toBe(0);
  }, 60_000);

  it('says the SHA-256 was verified only when the sender gave one, and otherwise that only the size was checked', () => {
    const file = { name: 'a.bin', size: 3, type: '' };
    expect(integrityNote({ file, sha256: 'ab'.repeat(32), verified: true })).toBe(
      `SHA-256 ${'ab'.repeat(32)} verified`,
    );
    const unverified = integrityNote({ file, sha256: 'ab'.repeat(32), verified: false });
    expect(unverified).toMatch(
      /^size checked \(3 bytes\); the sender announced no SHA-256, so the content is not verified/,
    );
    expect(unverified).not.toMatch(/SHA-256 [0-9a-f]{64} verified/);
  });

  it('tells a CLI user what failed in plain words, never the advice meant for a library caller', () => {
    // What node-datachannel's polyfill ends with when an ICE restart is asked of it.
    const library = new FileDropError(
      'rtc-failed',
      'the ICE restart the sender asked for failed: ICE restart failed: this RTCPeerConnection does not support ' +
        "ICE restart (the new offer kept its ICE credentials; node-datachannel's polyfill cannot restart ICE): " +
        'close this connection and create a new one',
    );
    const receiving = failureMessage(library, 'receive');
    expect(receiving).toMatch(/^rtc-failed: the WebRTC connection to the sender failed; .*--ice-server none/);
    expect(receiving).not.toMatch(/RTCPeerConnection|polyfill|create a new one|ICE restart/);
    expect(
      failureMessage(new FileDropError('rtc-failed', 'the peer connection failed; no retries left'), 'send'),
    ).toMatch(/^rtc-failed: the WebRTC connection to the receiver failed/);
    const refused = new FileDropError('remote-cancelled', 'the receiver gave up (sink-failed)', {
      remote: 'sink-failed',
    });
    expect(failureMessage(refused, 'send')).toBe(
      'remote-cancelled: the receiver could not save the file (sink-failed)',
    );
    const odd = new FileDropError('remote-cancelled', 'the sender gave up (unknown reason)', {
      remote: 'disk on fire',
    });
    expect(failureMessage(odd, 'receive')).toBe('remote-cancelled: the sender gave up (disk on fire)');
    // Messages already written for people pass through, after the reason.
    expect(failureMessage(new FileDropError('no-such-peer', 'no sender has the code K7PQ2MZA'), 'receive')).toBe(
      'no-such-peer: no sender has the code K7PQ2MZA',
    );
    expect(failureMessage(undefined, 'send')).toBe('transfer failed');
  });

  it('measures a resumed transfer from its offset: the bar, the rate, the ETA and the summary count only what moved', () => {
    const MiB = 1024 * 1024;
    let now = 0;
    const progress = new Progress({ write: () => true }, () => now);
    // A transfer from the start: the summary as it always was.
    progress.start(MiB, 'Sending  ');
    now = 500;
    progress.update(MiB);
    expect(progress.stop()).toBe('1.0 MiB in 0.5 s (2.0 MiB/s)');

    // The receiver holds 18 MiB already (a `.part`, or back on the server): the bar goes on from there,
    // and the rate knows nothing until bytes move; 2 MiB in the next second are 2 MiB/s, not 20.
    now = 0;
    progress.start(48 * MiB, 'Sending  ');
    now = 1000;
    progress.startAt(18 * MiB);
    expect(progress.status()).toEqual({ done: '18.0 MiB', size: '48.0 MiB', rate: '0 B/s', remaining: '--:--' });
    now = 2000;
    progress.update(20 * MiB);
    expect(progress.status()).toEqual({ done: '20.0 MiB', size: '48.0 MiB', rate: '2.0 MiB/s', remaining: '00:14' });
    now = 16_000;
    progress.update(48 * MiB);
    expect(progress.stop()).toBe('30.0 MiB in 16.0 s (1.9 MiB/s), resumed at 18.0 MiB of 48.0 MiB');

    // A connection lost mid-way and a fresh one from where the receiver stored up to: the bytes of both count
    // (those sent twice, twice), and the rate starts afresh with the new connection.
    now = 0;
    progress.start(24 * MiB, 'Sending  ');
    now = 1000;
    progress.update(10 * MiB);
    now = 2000;
    progress.resume(9.5 * MiB);
    expect(progress.status()).toMatchObject({ done: '9.5 MiB', rate: '0 B/s', remaining: '--:--' });
    now = 3000;
    progress.update(12.5 * MiB);
    expect(progress.status()).toMatchObject({ rate: '3.0 MiB/s', remaining: '00:04' });
    now = 4000;
    progress.update(24 * MiB);
    expect(progress.stop()).toBe('24.5 MiB in 4.0 s (6.1 MiB/s), resumed at 9.5 MiB of 24.0 MiB');
    // A connection that moved nothing before the next took over is no resume point of its own.
    now = 0;
    progress.start(24 * MiB, 'Receiving');
    progress.update(10 * MiB);
    progress.resume(9.5 * MiB);
    progress.resume(9.5 * MiB);
    now = 1000;
    progress.update(24 * MiB);
    expect(progress.stop()).toBe('24.5 MiB in 1.0 s (24.5 MiB/s), resumed at 9.5 MiB of 24.0 MiB');

    // Asked to skip a `.part`, a sender that does not know offsets starts over at 0: a whole transfer after all.
    now = 0;
    progress.start(512 * 1024, 'Receiving');
    progress.startAt(200 * 1024);
    progress.startAt(0);
    now = 1000;
    progress.update(512 * 1024);
    expect(progress.stop()).toBe('512.0 KiB in 1.0 s (512.0 KiB/s)');

    // Fewer bytes than before with no word (back on the server, nothing whole stored): a new connection at 0.
    now = 0;
    progress.start(MiB, 'Receiving');
    progress.update(100 * 1024);
    progress.update(0);
    now = 1000;
    progress.update(MiB);
    expect(progress.stop()).toBe('1.1 MiB in 1.0 s (1.1 MiB/s), resumed at 0 B of 1.0 MiB');
  });

  it('takes its ICE servers from SIGNALBOX_ICE_SERVERS, the same for both backends', () => {
    expect(iceServers({})).toEqual(DEFAULT_ICE_SERVERS.map((urls) => ({ urls })));
    expect(iceServers({ SIGNALBOX_ICE_SERVERS: '' })).toEqual([]);
    expect(iceServers({ SIGNALBOX_ICE_SERVERS: ' stun:a.example:3478 , turn:b.example ' })).toEqual([
      { urls: 'stun:a.example:3478' },
      { urls: 'turn:b.example' },
    ]);
  });

  it('takes --ice-server URLs over the environment, "none" for none, and refuses what is not stun:/turn:', () => {
    expect(iceServerUrls(['stun:a.example:3478', 'turns:b.example'])).toEqual([
      { urls: 'stun:a.example:3478' },
      { urls: 'turns:b.example' },
    ]);
    expect(iceServerUrls(['none'])).toEqual([]);
    expect(() => iceServerUrls(['http://a.example'])).toThrow(/must be a stun: or turn: URL, got "http:\/\/a.example"/);
    expect(() => iceServers({ SIGNALBOX_ICE_SERVERS: 'nope' })).toThrow(/^SIGNALBOX_ICE_SERVERS: .*got "nope"/);
  });

  it('exits 2, before connecting, when SIGNALBOX_ICE_SERVERS is not a list of stun:/turn: URLs', async () => {
    const child = run(['receive', 'ABCD2345', '--out', dir, '--server', url], { SIGNALBOX_ICE_SERVERS: 'nope' });
    expect(await child.exited).toBe(2);
    expect(child.stderr()).toMatch(
      /^signalbox: SIGNALBOX_ICE_SERVERS: an ICE server must be a stun: or turn: URL, got "nope"/,
    );
  });

  it('fails with exit code 1 and a clear message for a code nobody holds', async () => {
    const receiver = run(['receive', '2345-6789', '--out', dir, '--server', url]);
    expect(await receiver.exited).toBe(1);
    expect(receiver.stderr()).toMatch(/receive failed: no-such-peer/);
    expect(receiver.stdout).toEqual([]);
  }, 60_000);

  it.each([
    [['send'], /send takes exactly one <file>/],
    [['receive'], /receive takes exactly one <code>/],
    [['send', 'a', 'b'], /send takes exactly one <file>/],
    [['receive', 'ABCD2345', '--webrtc', 'nope'], /--webrtc must be one of/],
    [['receive', 'ABCD2345', '--server', 'ftp://example.org'], /--server must be a ws:\/\//],
    [['send', 'x', '--out', '.'], /--out is not an option of send/],
    [['send', 'x', '--bogus'], /Unknown option '--bogus'/],
    [['receive', 'ABCD2345', '--ice-server', 'http://stun.example.org'], /must be a stun: or turn: URL/],
  ])('exits 2 on bad usage: %j', async (args, message) => {
    const { code, stderr } = await runMain(args);
    expect(code).toBe(2);
    expect(stderr).toMatch(/^signalbox: .+\n\nUsage:/);
    expect(stderr).toMatch(message);
  });

  it('exits 2, before connecting, when --out cannot be made or is not a directory', async () => {
    await writeFile(join(dir, 'plain.txt'), 'x');
    // A server nobody answers at: reaching the network would fail differently (exit 1).
    const nowhere = ['--server', 'ws://127.0.0.1:9/filedrop'];
    const notDir = await runMain(['receive', 'ABCD2345', '--out', join(dir, 'plain.txt'), ...nowhere]);
    expect(notDir).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^signalbox: --out: .*plain\.txt is not a directory/),
    });
    const under = await runMain(['receive', 'ABCD2345', '--out', join(dir, 'plain.txt', 'sub'), ...nowhere]);
    expect(under).toMatchObject({
      code: 2,
      stderr: expect.stringMatching(/^signalbox: --out: cannot create .*ENOTDIR/),
    });
  });

  it("makes a missing --out (with its parents), as the README's `--out ./downloads` expects", async () => {
    const missing = join(dir, 'made', 'downloads');
    expect(await prepareDirectory(missing)).toBeUndefined();
    expect((await stat(missing)).isDirectory()).toBe(true);
  });

  it('saves under "name (n).ext" when the name or its .part is taken, replacing and touching nothing', async () => {
    const into = join(dir, 'clash');
    await mkdir(into);
    await writeFile(join(into, 'photo.jpg'), 'kept');
    await writeFile(join(into, 'photo (1).jpg.part'), 'another receiver');
    const first = await freeSink(into, 'photo.jpg');
    expect(first.path).toBe(join(into, 'photo (2).jpg'));
    await first.sink.write(new TextEncoder().encode('new'));
    await first.sink.close();
    expect(await readFile(join(into, 'photo (2).jpg'), 'utf8')).toBe('new');
    expect(await readFile(join(into, 'photo.jpg'), 'utf8')).toBe('kept');
    expect(await readFile(join(into, 'photo (1).jpg.part'), 'utf8')).toBe('another receiver');
    await writeFile(join(into, 'README'), '');
    const bare = await freeSink(into, 'README');
    expect(bare.path).toBe(join(into, 'README (1)'));
    await bare.sink.abort(new Error('test done'));
  });

  it('resumes a .part an earlier attempt at the same file left, and verifies the whole file', async () => {
    const data = randomBytes(512 * 1024);
    await writeFile(join(dir, 'resumed.bin'), data);
    const out = join(dir, 'resumed-out');
    await mkdir(out);
    // What a receiver that was killed (or lost its connection) leaves: the bytes so far and their file's record.
    await writeFile(join(out, 'resumed.bin.part'), data.subarray(0, 200_000));
    await writeFile(join(out, 'resumed.bin.part.json'), JSON.stringify({ name: 'resumed.bin', size: data.byteLength }));
    const sender = run(['send', join(dir, 'resumed.bin'), '--server', url]);
    const code = await sender.firstLine();
    const receiver = run(['receive', code, '--out', out, '--server', url]);
    const [sent, received] = await Promise.all([sender.exited, receiver.exited]);
    expect({ code: received, stderr: receiver.stderr() }).toMatchObject({ code: 0 });
    expect({ code: sent, stderr: sender.stderr() }).toMatchObject({ code: 0 });
    expect(receiver.stderr()).toMatch(
      /Resuming resumed\.bin \(512\.0 KiB\) into .*resumed\.bin: 195\.3 KiB already there/,
    );
    // Only the rest moved (the part is resumed from its last whole 16 KiB chunk, 192 KiB): 320 KiB.
    expect(receiver.stderr()).toMatch(
      new RegExp(
        `Received .*resumed\\.bin: 320\\.0 KiB in ${SECONDS} s \\(${SIZE}/s\\), resumed at 192\\.0 KiB of 512\\.0 KiB;`,
      ),
    );
    expect(sender.stderr()).toMatch(
      new RegExp(
        `Sent resumed\\.bin: 320\\.0 KiB in ${SECONDS} s \\(${SIZE}/s\\), resumed at 192\\.0 KiB of 512\\.0 KiB\n`,
      ),
    );
    expect(receiver.stderr()).toMatch(/SHA-256 [0-9a-f]{64} verified/);
    expect(receiver.stdout).toEqual([join(out, 'resumed.bin')]);
    expect(Buffer.compare(await readFile(join(out, 'resumed.bin')), data)).toBe(0);
    expect((await readdir(out)).sort()).toEqual(['resumed.bin']);
  }, 60_000);

  it('a .part whose bytes are not the file fails the whole-file check: exit 1, no file, no part kept', async () => {
    const data = randomBytes(256 * 1024);
    await writeFile(join(dir, 'spoiled.bin'), data);
    const out = join(dir, 'spoiled-out');
    await mkdir(out);
    await writeFile(join(out, 'spoiled.bin.part'), randomBytes(100_000));
    await writeFile(join(out, 'spoiled.bin.part.json'), JSON.stringify({ name: 'spoiled.bin', size: data.byteLength }));
    const sender = run(['send', join(dir, 'spoiled.bin'), '--server', url]);
    const code = await sender.firstLine();
    const receiver = run(['receive', code, '--out', out, '--server', url]);
    const [, received] = await Promise.all([sender.exited, receiver.exited]);
    expect({ code: received, stderr: receiver.stderr() }).toMatchObject({
      code: 1,
      stderr: expect.stringMatching(/receive failed: digest-mismatch: SHA-256 of the 262144 bytes/),
    });
    expect(receiver.stderr()).not.toMatch(/Kept/);
    expect(await readdir(out)).toEqual([]);
  }, 60_000);

  it('receives into a new name when the file is already there, and the sender completes', async () => {
    const data = randomBytes(64 * 1024);
    await writeFile(join(dir, 'twice.bin'), data);
    const out = join(dir, 'twice-out');
    await mkdir(out);
    await writeFile(join(out, 'twice.bin'), 'older');
    await writeFile(join(out, 'twice (1).bin.part'), 'stale');
    const sender = run(['send', join(dir, 'twice.bin'), '--server', url]);
    const code = await sender.firstLine();
    const receiver = run(['receive', code, '--out', out, '--server', url]);
    const [sent, received] = await Promise.all([sender.exited, receiver.exited]);
    expect({ code: received, stderr: receiver.stderr() }).toMatchObject({ code: 0 });
    expect({ code: sent, stderr: sender.stderr() }).toMatchObject({ code: 0 });
    expect(receiver.stdout).toEqual([join(out, 'twice (2).bin')]);
    expect(Buffer.compare(await readFile(join(out, 'twice (2).bin')), data)).toBe(0);
    expect(await readFile(join(out, 'twice.bin'), 'utf8')).toBe('older');
  }, 60_000);

  it('does not stall on a STUN server that never answers (werift): the transfer ends well within its 5 s default wait', async () => {
    // A UDP port that is bound but never answers: the STUN request goes unanswered, as to an unreachable server.
    const silent = createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.0.0.1', resolve));
    try {
      await writeFile(join(dir, 'stun.bin'), randomBytes(1024));
      const out = join(dir, 'stun-out');
      const ice = [{ urls: `stun:127.0.0.1:${silent.address().port}` }];
      const sink = () => ({ write: () => true });
      let code = '';
      const started = Date.now();
      const sent = sendFile(join(dir, 'stun.bin'), {
        server: url,
        webrtc: 'werift',
        iceServers: ice,
        out: { write: (text) => void (code ||= text.trim()) },
        err: sink(),
      });
      while (!code) await new Promise((resolve) => setTimeout(resolve, 20));
      const received = receiveFile(code, out, {
        server: url,
        webrtc: 'werift',
        iceServers: ice,
        out: sink(),
        err: sink(),
      });
      await mkdir(out, { recursive: true });
      expect(await Promise.all([sent, received])).toEqual([0, 0]);
      // With werift's own 5 s wait, each side's description waited for the answer: 10 s at the least,
      // however idle the machine. Now nothing waits for it (the test above shows the order); the
      // margin is for a loaded machine.
      expect(Date.now() - started).toBeLessThan(8_000);
    } finally {
      silent.close();
    }
  }, 60_000);

  it("does not hold a werift description for the STUN server's answer, and still trickles that answer when it comes", async () => {
    // A STUN server on 127.0.0.1 that keeps every binding request unanswered until told to answer.
    const stun = createSocket('udp4');
    await new Promise<void>((resolve) => stun.bind(0, '127.0.0.1', resolve));
    const requests: Array<{ message: Buffer; port: number }> = [];
    stun.on('message', (message, remote) => requests.push({ message, port: remote.port }));
    const ice = [{ urls: `stun:127.0.0.1:${stun.address().port}` }];
    const config = { ...WERIFT_LOOPBACK, ...rtcConfig('werift', ice) };
    try {
      const offerer = new RtcPeer(
        { label: 'a', role: 'offerer' },
        { RTCPeerConnection: WeriftPeerConnection, trickle: true, config: WERIFT_LOOPBACK },
      );
      const offer = await offerer.waitFor('rtc.description');
      const answerer = new RtcPeer(
        { label: 'b', role: 'answerer', remoteOffer: offer.description.sdp },
        { RTCPeerConnection: WeriftPeerConnection, trickle: true, config },
      );
      const answer = await answerer.waitFor('rtc.description');
      expect(answer.description.type).toBe('answer');
      // werift repeats an unanswered request after 50 ms (then 100, 200, … ms). The answer went out
      // before the first repeat: gathering did not wait for the STUN server at all (werift's own
      // default waits 5 s).
      expect(requests.length).toBeLessThanOrEqual(1);
      await until(() => requests.length > 0);
      // Answered late, the STUN server's word still goes out: a server-reflexive candidate.
      const { message, port } = requests[0]!;
      stun.send(stunBindingSuccess(message, '203.0.113.7', 40000), port, '127.0.0.1');
      await until(() => answerer.of('rtc.candidate').some((c) => / typ srflx/.test(c.candidate.candidate ?? '')));
      const srflx = answerer.of('rtc.candidate').find((c) => / typ srflx/.test(c.candidate.candidate ?? ''))!;
      expect(srflx.candidate.candidate).toContain('203.0.113.7 40000');
      expect(answerer.of('rtc.failed')).toEqual([]);
    } finally {
      stopPeers();
      stun.close();
    }
  });

  it("keeps the sender's code when a receiver fails on its side after the handshake: the next receiver gets the file", async () => {
    const data = randomBytes(64 * 1024);
    await writeFile(join(dir, 'again.bin'), data);
    let code = '';
    let senderErr = '';
    const sent = sendFile(join(dir, 'again.bin'), {
      server: url,
      webrtc: 'werift',
      iceServers: [],
      out: { write: (text) => void (code ||= text.trim()) },
      err: { write: (text) => void (senderErr += text) },
    });
    while (!code) await new Promise((resolve) => setTimeout(resolve, 20));
    // A receiver whose disk fails at the first write: it reports sink-failed to the sender.
    const failing = createActor(
      filedropReceiver.provide({
        actors: {
          signalling: fromTransport(() => webSocketTransport(url), clientCodec()),
          rtc: fromRtc({ RTCPeerConnection: WeriftPeerConnection, trickle: true, config: WERIFT_LOOPBACK }),
        },
      }),
      {
        input: {
          code,
          sink: { write: () => Promise.reject(new Error('disk full')), close: () => {}, abort: () => {} },
        },
      },
    ).start();
    await waitFor(failing, (s) => s.status === 'done', { timeout: 20_000 });
    expect(failing.getSnapshot().context.error).toMatchObject({ reason: 'sink-failed' });
    for (let i = 0; i < 250 && !/still works/.test(senderErr); i++) await new Promise((r) => setTimeout(r, 20));
    expect(senderErr).toContain(
      'signalbox: that receiver failed: remote-cancelled: the receiver could not save the file',
    );
    expect(senderErr).toContain(`The code ${code} still works`);

    const out = join(dir, 'again-out');
    await mkdir(out);
    const sink = { write: () => true };
    let receiverErr = '';
    const received = await receiveFile(code, out, {
      server: url,
      webrtc: 'werift',
      iceServers: [],
      out: sink,
      err: { write: (text) => void (receiverErr += text) },
    });
    expect({ received, receiverErr }).toMatchObject({ received: 0 });
    expect(await sent).toBe(0);
    expect(Buffer.compare(await readFile(join(out, 'again.bin')), data)).toBe(0);
    expect(senderErr).toMatch(/Sent again\.bin: /);
  }, 60_000);

  it("carries a transfer over the receiver's lost server connection: reconnects, resumes, and the file is whole", async () => {
    const data = randomBytes(48 * 1024 * 1024);
    await writeFile(join(dir, 'rejoin.bin'), data);
    const out = join(dir, 'rejoin-out');
    await mkdir(out);
    // The receiver reaches the server through a proxy the test cuts mid-transfer.
    const links: Socket[] = [];
    const proxy = createServer((client) => {
      const upstream = connect(server.address.port, '127.0.0.1');
      links.push(client, upstream);
      client.pipe(upstream).pipe(client);
      client.on('error', () => upstream.destroy());
      upstream.on('error', () => client.destroy());
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    const proxyUrl = `ws://127.0.0.1:${(proxy.address() as AddressInfo).port}/filedrop`;
    try {
      const sender = run(['send', join(dir, 'rejoin.bin'), '--server', url]);
      const code = await sender.firstLine();
      const receiver = run(['receive', code, '--out', out, '--server', proxyUrl]);
      const part = join(out, 'rejoin.bin.part');
      const stored = async () => (await stat(part).catch(() => undefined))?.size ?? 0;
      for (let i = 0; i < 3000 && (await stored()) === 0; i++) await new Promise((r) => setTimeout(r, 5));
      const cutAt = await stored();
      for (const link of links.splice(0)) link.destroy();

      const [sent, received] = await Promise.all([sender.exited, receiver.exited]);
      expect({ code: received, stderr: receiver.stderr() }).toMatchObject({ code: 0 });
      expect({ code: sent, stderr: sender.stderr() }).toMatchObject({ code: 0 });
      expect(cutAt).toBeGreaterThan(0);
      expect(cutAt).toBeLessThan(data.byteLength);
      expect(receiver.stderr()).toMatch(/Lost the connection to the server .*: reconnecting in 1 s \(try 1 of 5\)/);
      expect(receiver.stderr()).toContain('Reconnected to the server: asking the sender for the rest');
      expect(receiver.stderr()).toMatch(/SHA-256 [0-9a-f]{64} verified/);
      expect(sender.stderr()).toMatch(/The receiver has [\d.]+ [KM]iB already: sending the rest/);
      // Each side's summary counts what moved in this run, and says where it resumed: the sender's second
      // transfer (the first ended with the lost connection) sent only the rest, from where the receiver had.
      // (The last: the first transfer may have had a fresh connection of its own before the loss.)
      const had = [...sender.stderr().matchAll(/The receiver has ([\d.]+ [KM]iB) already/g)].at(-1)![1]!;
      const sentLine = new RegExp(
        `Sent rejoin\\.bin: (${SIZE}) in ${SECONDS} s \\(${SIZE}/s\\), resumed at ${had} of 48\\.0 MiB\n`,
      );
      expect(sender.stderr()).toMatch(sentLine);
      // (Each figure is rounded to a tenth: the two may be a tenth off 48.)
      expect(Math.abs(mebibytes(sentLine.exec(sender.stderr())![1]!) + mebibytes(had) - 48)).toBeLessThan(0.11);
      // The receiver moved the bytes before the loss and the rest after it: the whole file, or more. It
      // resumed where the sender's second transfer started (after any fresh connection before the loss).
      const gotLine = new RegExp(
        `Received .*rejoin\\.bin: (${SIZE}) in ${SECONDS} s \\(${SIZE}/s\\), resumed at (?:[^;]*, then at )?${had} of 48\\.0 MiB; SHA-256`,
      );
      expect(receiver.stderr()).toMatch(gotLine);
      expect(mebibytes(gotLine.exec(receiver.stderr())![1]!)).toBeGreaterThanOrEqual(48);
      // Back on the server, it says so once: no "Connection lost" for the same loss.
      expect(receiver.stderr().split('Reconnected to the server')[1]).not.toMatch(/Connection lost/);
      expect(Buffer.compare(await readFile(join(out, 'rejoin.bin')), data)).toBe(0);
      expect(await readdir(out)).toEqual(['rejoin.bin']);
    } finally {
      await new Promise((resolve) => proxy.close(resolve));
    }
  }, 60_000);

  it('carries a transfer over a connection that fails where ICE cannot restart: a fresh one, and no advice for a library caller', async () => {
    NoRestartPeerConnection.made.length = 0;
    const side: Side = { webrtc: 'werift', RTCPeerConnection: NoRestartPeerConnection };
    // Mid-transfer, the sender's connection fails: it asks for an ICE restart, which this backend cannot make.
    const { receiverErr } = await cutMidTransfer('fresh', side, side, () =>
      NoRestartPeerConnection.made.find((pc) => pc.answered)!.fail(),
    );
    // A fresh connection carried it: a third and a fourth peer connection, the receiver's and the sender's.
    expect(NoRestartPeerConnection.made.length).toBe(4);
    expect(receiverErr).toMatch(/SHA-256 [0-9a-f]{64} verified/);
  }, 60_000);

  it('carries a transfer over a sender that cannot apply an ICE-restart offer: the receiver restarts once, then a fresh connection', async () => {
    RefusingRestartPeerConnection.made.length = 0;
    RefusingRestartPeerConnection.refused = 0;
    // Only the sender's side cannot restart; the receiver is plain werift, which can. Mid-transfer, the
    // sender's connection fails and carries no more bytes: it asks for an ICE restart, whose offer (a
    // real one, from werift) this backend rejects.
    const { receiverErr } = await cutMidTransfer(
      'norestart',
      { webrtc: 'werift', RTCPeerConnection: RefusingRestartPeerConnection },
      { webrtc: 'werift' },
      () => RefusingRestartPeerConnection.made[0]!.fail(),
    );
    // The restart offer came and was refused once; then a fresh connection (a second sender-side one) carried it.
    expect(RefusingRestartPeerConnection.refused).toBe(1);
    expect(RefusingRestartPeerConnection.made.length).toBe(2);
    expect(receiverErr).toMatch(/SHA-256 [0-9a-f]{64} verified/);
  }, 60_000);

  it('carries a transfer from a real node-datachannel sender to a werift receiver over a failed connection: a fresh one', async () => {
    FailingNdcPeerConnection.made.length = 0;
    FailingNdcPeerConnection.rejected.length = 0;
    await cutMidTransfer(
      'ndc',
      {
        webrtc: 'node-datachannel',
        RTCPeerConnection: FailingNdcPeerConnection as unknown as TransferCliOptions['RTCPeerConnection'],
      },
      { webrtc: 'werift' },
      () => FailingNdcPeerConnection.made[0]!.fail(),
    );
    // node-datachannel itself rejected werift's ICE-restart offer; a second connection carried the rest.
    expect(FailingNdcPeerConnection.rejected).toEqual([expect.stringMatching(/ICE/)]);
    expect(FailingNdcPeerConnection.made.length).toBe(2);
  }, 60_000);

  it('exits 2 on bad usage from a spawned process too', async () => {
    const child = run(['receive']);
    expect(await child.exited).toBe(2);
    expect(child.stderr()).toMatch(/^signalbox: receive takes exactly one <code>\n\nUsage:/);
  });
});

/** werift on the loopback that can be made to report its connection `failed` (`reportFailed()`). */
abstract class FailableWeriftPeerConnection extends WeriftPeerConnection {
  private readonly stateListeners: Array<(event: unknown) => void> = [];

  constructor(config: ConstructorParameters<typeof WeriftPeerConnection>[0] = {}) {
    super({ ...WERIFT_LOOPBACK, ...config });
    // werift's addEventListener is a field: wrap it to learn who listens for state changes.
    const add = this.addEventListener.bind(this) as (type: string, listener: (event: unknown) => void) => void;
    (this as { addEventListener: unknown }).addEventListener = (type: string, listener: (event: unknown) => void) => {
      if (type === 'connectionstatechange') this.stateListeners.push(listener);
      add(type, listener);
    };
  }

  /** From now on the connection says `failed` to those who ask, and its listeners are told so. */
  protected reportFailed(): void {
    // werift's own updates of the field are dropped: the connection stays failed for its listeners.
    Object.defineProperty(this, 'connectionState', { get: () => 'failed', set: () => {}, configurable: true });
    for (const listener of this.stateListeners) listener({ type: 'connectionstatechange' });
  }
}

/**
 * werift, but without ICE restarts (as node-datachannel's polyfill): `createOffer`
 * ignores `iceRestart`, so a restart offer keeps its ICE credentials and the rtc
 * actor refuses it. `fail()` makes the connection report `failed`.
 */
class NoRestartPeerConnection extends FailableWeriftPeerConnection {
  static readonly made: NoRestartPeerConnection[] = [];
  answered = false;

  constructor(config?: ConstructorParameters<typeof WeriftPeerConnection>[0]) {
    super(config);
    NoRestartPeerConnection.made.push(this);
  }

  override createOffer() {
    return super.createOffer();
  }

  override createAnswer() {
    this.answered = true;
    return super.createAnswer();
  }

  /** From now on the connection says `failed` to those who ask (werift itself goes on as it was). */
  fail(): void {
    this.reportFailed();
  }
}

/**
 * werift as an answerer that cannot restart ICE, as node-datachannel's
 * polyfill (0.33): `setRemoteDescription` rejects an offer whose ICE
 * credentials differ from the first one's. `fail()` makes the connection
 * report `failed` and stop carrying data: what it sends from then on is
 * buffered and never leaves, as on a dead path.
 */
class RefusingRestartPeerConnection extends FailableWeriftPeerConnection {
  static readonly made: RefusingRestartPeerConnection[] = [];
  /** Restart offers rejected, by every instance. */
  static refused = 0;
  private ufrag: string | undefined;

  constructor(config?: ConstructorParameters<typeof WeriftPeerConnection>[0]) {
    super(config);
    RefusingRestartPeerConnection.made.push(this);
  }

  override async setRemoteDescription(description: Parameters<WeriftPeerConnection['setRemoteDescription']>[0]) {
    const ufrag = /^a=ice-ufrag:(.+)$/m.exec(description.sdp ?? '')?.[1]?.trim();
    if (description.type === 'offer' && this.ufrag !== undefined && ufrag !== this.ufrag) {
      RefusingRestartPeerConnection.refused++;
      throw new Error('ICE restart is not supported');
    }
    if (description.type === 'offer') this.ufrag = ufrag;
    return super.setRemoteDescription(description);
  }

  fail(): void {
    const sctp = this.sctpTransport!;
    // Sent data waits in the buffer for good: the upload stalls on its window of buffered bytes.
    sctp.datachannelSend = (channel, message) => {
      const size = typeof message === 'string' ? Buffer.byteLength(message) : message.byteLength;
      channel.addBufferedAmount(size);
      return size;
    };
    this.reportFailed();
  }
}

/**
 * node-datachannel's polyfill, as it is (its `setRemoteDescription` rejects
 * an ICE-restart offer), but for `fail()`: the connection reports `failed`
 * and its data channel stops carrying data (what is sent from then on
 * counts as buffered and never leaves, as on a dead path).
 */
class FailingNdcPeerConnection extends NdcPeerConnection {
  static readonly made: FailingNdcPeerConnection[] = [];
  /** Why node-datachannel rejected a remote description, by every instance. */
  static readonly rejected: string[] = [];
  private failed = false;

  constructor(config?: ConstructorParameters<typeof NdcPeerConnection>[0]) {
    super(config);
    FailingNdcPeerConnection.made.push(this);
    this.addEventListener('datachannel', (event) => {
      const channel = (event as unknown as { channel: { send(data: unknown): void } }).channel;
      const send = channel.send.bind(channel);
      let stuck = 0;
      channel.send = (data: unknown) => {
        if (!this.failed) return send(data);
        stuck += typeof data === 'string' ? Buffer.byteLength(data) : (data as ArrayBufferView).byteLength;
        Object.defineProperty(channel, 'bufferedAmount', { get: () => stuck, configurable: true });
      };
    });
  }

  override async setRemoteDescription(description: Parameters<NdcPeerConnection['setRemoteDescription']>[0]) {
    try {
      return await super.setRemoteDescription(description);
    } catch (error) {
      FailingNdcPeerConnection.rejected.push((error as Error).message);
      throw error;
    }
  }

  fail(): void {
    this.failed = true;
    Object.defineProperty(this, 'connectionState', { get: () => 'failed', configurable: true });
    this.dispatchEvent(new Event('connectionstatechange'));
  }
}

/** One side of {@link cutMidTransfer}: its WebRTC backend, and the stand-in `RTCPeerConnection` if any. */
type Side = Pick<TransferCliOptions, 'webrtc' | 'RTCPeerConnection'>;

/**
 * Sends a fresh 24 MiB file `{name}.bin` in this process from `sender` to `receiver` (no ICE
 * servers), calls `cut` once the receiver has stored part of it, and checks what every such test
 * expects: both sides exit 0, the cut fell mid-transfer, the file arrived whole, the receiver
 * reconnected, and neither side printed advice meant for a library caller.
 * @returns both sides' stderr, for the test's own checks.
 */
async function cutMidTransfer(name: string, sender: Side, receiver: Side, cut: () => void) {
  const data = randomBytes(24 * 1024 * 1024);
  await writeFile(join(dir, `${name}.bin`), data);
  const out = join(dir, `${name}-out`);
  await mkdir(out);
  let code = '';
  let senderErr = '';
  const sent = sendFile(join(dir, `${name}.bin`), {
    server: url,
    iceServers: [],
    ...sender,
    out: { write: (text) => void (code ||= text.trim()) },
    err: { write: (text) => void (senderErr += text) },
  });
  await until(() => code !== '', 20_000);
  let receiverErr = '';
  const received = receiveFile(code, out, {
    server: url,
    iceServers: [],
    ...receiver,
    out: { write: () => true },
    err: { write: (text) => void (receiverErr += text) },
  });
  const part = join(out, `${name}.bin.part`);
  const stored = async () => (await stat(part).catch(() => undefined))?.size ?? 0;
  for (let i = 0; i < 4000 && (await stored()) === 0; i++) await new Promise((r) => setTimeout(r, 5));
  const cutAt = await stored();
  cut();

  expect({ code: await received, receiverErr }).toMatchObject({ code: 0 });
  expect({ code: await sent, senderErr }).toMatchObject({ code: 0 });
  expect(cutAt).toBeGreaterThan(0);
  expect(cutAt).toBeLessThan(data.byteLength);
  expect(Buffer.compare(await readFile(join(out, `${name}.bin`)), data)).toBe(0);
  expect(receiverErr).toMatch(/Connection lost: reconnecting \(1\), resuming at /);
  // Both summaries name where the fresh connection took over (the same offset on both sides), and count the
  // bytes of both connections: the whole file, or more (what the lost connection moved past that offset).
  const summary = (text: string, verb: string) =>
    new RegExp(
      `${verb} .*${name}\\.bin: (${SIZE}) in ${SECONDS} s \\(${SIZE}/s\\), resumed at (.+) of 24\\.0 MiB`,
    ).exec(text);
  const receivedSummary = summary(receiverErr, 'Received');
  const sentSummary = summary(senderErr, 'Sent');
  expect({ received: receivedSummary?.[2], sent: sentSummary?.[2], receiverErr, senderErr }).toMatchObject({
    received: expect.stringMatching(/^[\d.]+ [KM]iB$/),
    sent: receivedSummary?.[2],
  });
  expect(mebibytes(receivedSummary![1]!)).toBeGreaterThanOrEqual(24);
  expect(mebibytes(sentSummary![1]!)).toBeGreaterThanOrEqual(24);
  for (const text of [receiverErr, senderErr]) {
    expect(text).not.toMatch(/RTCPeerConnection|polyfill|create a new one|ICE restart|rtc-failed/);
  }
  return { senderErr, receiverErr };
}

/** A byte count as the CLI prints it, and a duration in seconds, in a RegExp. */
const SIZE = '[\\d.]+ (?:B|KiB|MiB|GiB)';
const SECONDS = '[\\d.]+';

/** A byte count as the CLI prints it (`formatBytes`), in MiB. */
function mebibytes(text: string): number {
  const [value, unit] = text.split(' ');
  return (Number(value) * { B: 1, KiB: 1024, MiB: 1024 ** 2, GiB: 1024 ** 3 }[unit as 'B']) / 1024 ** 2;
}

/** Runs main() in this process; its exit code and what it wrote to stdout and stderr. */
async function runMain(args: string[]) {
  let stdout = '';
  let stderr = '';
  const code = await main(args, { write: (text) => (stdout += text) }, { write: (text) => (stderr += text) });
  return { code, stdout, stderr };
}

/** Resolves once `check()` holds (polled every 10 ms); rejects after `timeout` ms. */
async function until(check: () => boolean, timeout = 5000) {
  const started = Date.now();
  while (!check()) {
    if (Date.now() - started > timeout) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** A STUN Binding success response (RFC 8489) to `request`, mapping to `address:port`. */
function stunBindingSuccess(request: Buffer, address: string, port: number): Buffer {
  const COOKIE = 0x2112a442;
  const response = Buffer.alloc(20 + 12);
  response.writeUInt16BE(0x0101, 0); // Binding success response
  response.writeUInt16BE(12, 2); // one attribute: 4 bytes of header, 8 of value
  response.writeUInt32BE(COOKIE, 4);
  request.copy(response, 8, 8, 20); // the transaction id
  response.writeUInt16BE(0x0020, 20); // XOR-MAPPED-ADDRESS
  response.writeUInt16BE(8, 22);
  response.writeUInt16BE(0x0001, 24); // IPv4
  response.writeUInt16BE(port ^ (COOKIE >>> 16), 26);
  const ip = address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
  response.writeUInt32BE((ip ^ COOKIE) >>> 0, 28);
  return response;
}
