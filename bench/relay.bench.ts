/**
 * Relay throughput and idle memory of signalbox's CloudLink Omega server,
 * against a bare `ws` relay and the PeerJS server measured in the same run
 * (see bench/README.md).
 *
 *   npm run bench:relay -- --pairs 100 --seconds 5 --payload 1024 --form object --window 16 --idle 2000 --rounds 3 --servers bare,signalbox,peerjs [--profile] [--pin false]
 *
 * One file, three roles (argv[2]): no role is the orchestrator, which runs the
 * servers under test on its own main thread; `client` is the load generator
 * (a child process); `memory` is a fresh server process for one idle-memory
 * measurement (it forks its own `client`).
 */
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { Session } from 'node:inspector/promises';
import type { AddressInfo, Socket } from 'node:net';
import { cpus, platform, tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer, type RawData } from 'ws';
import { builtStartServer, bundleServer } from './built-server.js';
import {
  exited,
  exposeGc,
  flagOption,
  median,
  nextMessage,
  numberOption,
  readOption,
  report,
  runMain,
  spawnRole,
  waitFor,
  zeroMask,
} from './harness.js';

const SELF = fileURLToPath(import.meta.url);
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const UGI = 'bench';
const IMPLS = ['bare', 'signalbox', 'peerjs'] as const;
const FORMS = ['object', 'string'] as const;
type Form = (typeof FORMS)[number];
type Impl = (typeof IMPLS)[number];

// ---------------------------------------------------------------------------
// Options: `--name value`, `--name=value` or the env BENCH_NAME (see harness.ts).

interface Options {
  pairs: number;
  seconds: number;
  payload: number;
  /** How descriptions travel: `object`, `{type, sdp}` as browsers send them, or `string`, bare SDP. */
  form: Form;
  window: number;
  idle: number;
  rounds: number;
  warmup: number;
  profile: boolean;
  /** Server on CPU 0 and generator on CPU 1 during the load rounds (Linux `taskset`, 2+ cores). */
  pin: boolean;
  /** The servers under test, in the order each round runs them (`bare` and `signalbox` always). */
  servers: Impl[];
}

function formOption(): Form {
  const raw = readOption('form') ?? 'object';
  const form = FORMS.find((f) => f === raw);
  if (form === undefined) throw new Error(`--form must be ${FORMS.join(' or ')}, got ${JSON.stringify(raw)}`);
  return form;
}

function serversOption(): Impl[] {
  const servers = (readOption('servers') ?? IMPLS.join(',')).split(',').map((name) => {
    const impl = IMPLS.find((i) => i === name.trim());
    if (impl === undefined) throw new Error(`--servers: unknown ${JSON.stringify(name)}; known: ${IMPLS.join(', ')}`);
    return impl;
  });
  for (const needed of ['bare', 'signalbox'] as const) {
    if (!servers.includes(needed)) throw new Error(`--servers must include ${needed} (the ratio compares the two)`);
  }
  return [...new Set(servers)];
}

function parseOptions(): Options {
  return {
    pairs: Math.round(numberOption('pairs', 100, 1, 2000)),
    seconds: numberOption('seconds', 5, 0.5, 60),
    payload: Math.round(numberOption('payload', 1024, 1, 60_000)),
    form: formOption(),
    window: Math.round(numberOption('window', 16, 1, 256)),
    idle: Math.round(numberOption('idle', 2000, 2, 10_000) / 2) * 2,
    rounds: Math.round(numberOption('rounds', 3, 1, 10)),
    warmup: numberOption('warmup', 1, 0, 10),
    profile: flagOption('profile'),
    pin: readOption('pin') === undefined ? cpus().length >= 2 && platform() === 'linux' : flagOption('pin'),
    servers: serversOption(),
  };
}

/** `size` bytes of SDP-looking ASCII text (CRLF lines, as a browser produces). */
function sdpText(size: number): string {
  const lines = [
    'v=0',
    'o=- 4611731400430051336 2 IN IP4 127.0.0.1',
    's=-',
    't=0 0',
    'a=group:BUNDLE 0',
    'a=extmap-allow-mixed',
    'a=msid-semantic: WMS',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
    'c=IN IP4 0.0.0.0',
    'a=ice-ufrag:Ik3e',
    'a=ice-pwd:y5zOCgM4B0ixXhQZ1Fk3Yw2n',
    'a=ice-options:trickle',
    'a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:4C:D3:BF:35:47:8E:2C:D0',
    'a=setup:actpass',
    'a=mid:0',
    'a=sctp-port:5000',
    'a=max-message-size:262144',
    'a=candidate:1467250027 1 udp 2122260223 192.168.0.196 46243 typ host generation 0',
  ];
  let text = '';
  for (let i = 0; text.length < size; i++) text += `${lines[i % lines.length]}\r\n`;
  return text.slice(0, size);
}

// ---------------------------------------------------------------------------
// Servers under test.

interface BenchServer {
  readonly impl: Impl;
  /** What the generator speaks to it. */
  readonly protocol: 'cloudlink' | 'peerjs';
  /** The WebSocket URL (for PeerJS, without the `id` and `token` each client adds). */
  readonly url: string;
  /** Open WebSocket connections as the server counts them. */
  connections(): number;
  close(): Promise<void>;
}

async function startImpl(impl: Impl, options: Options): Promise<BenchServer> {
  if (impl === 'bare') return startBare();
  if (impl === 'peerjs') return startPeerJs();
  // The server as the package ships it, not as tsx compiles it (see built-server.ts).
  const startServer = await builtStartServer();
  const server = await startServer({
    port: 0,
    host: '127.0.0.1',
    // Every client comes from 127.0.0.1 and relays as fast as it can: the
    // admission and rate limits stay in the path, but set out of reach.
    maxConnections: 100_000,
    maxConnectionsPerIp: 100_000,
    limits: {
      messagesPerSecond: 1e9,
      messageBurst: 1e9,
      bytesPerSecond: 1e12,
      byteBurst: 1e12,
      maxBufferedBytes: 1 << 30,
    },
    cloudlink: {
      keepaliveInterval: 600_000,
      initTimeout: 600_000,
      maxFrameSize: Math.max(65_536, options.payload * 2 + 1024),
    },
  });
  return {
    impl,
    protocol: 'cloudlink',
    url: `ws://127.0.0.1:${server.address.port}/ws/${UGI}`,
    connections: () => server.health().connections.total,
    close: () => server.close(),
  };
}

interface Frame {
  opcode: number;
  payload?: unknown;
  tx?: string;
  rx?: string;
}

/**
 * The baseline: the cheapest relay that speaks enough CloudLink for the load
 * generator. JSON.parse each frame, look `rx` up in a Map, stamp `tx`,
 * JSON.stringify, forward. No validation, no handshake-order checks, no keepalive.
 */
async function startBare(): Promise<BenchServer> {
  const sockets = new Map<string, WebSocket>();
  const lobbies = new Map<string, { host?: string; peers: Set<string> }>();
  const http: Server = createServer((req, res) => {
    if (req.method === 'GET' && req.url === '/health') {
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ connections: sockets.size }));
    } else {
      res.writeHead(404).end();
    }
  });
  const wss = new WebSocketServer({ server: http });
  const send = (id: string | undefined, frame: Frame) => {
    const ws = id === undefined ? undefined : sockets.get(id);
    if (ws) ws.send(JSON.stringify(frame));
  };

  wss.on('connection', (ws) => {
    const id = randomUUID();
    let lobby: string | undefined;
    sockets.set(id, ws);
    ws.on('message', (data: RawData, isBinary: boolean) => {
      if (isBinary) return;
      let msg: Frame;
      try {
        msg = JSON.parse(data.toString()) as Frame;
      } catch {
        return;
      }
      switch (msg.opcode) {
        case 10: // MAKE_OFFER → ANTICIPATE_OFFER
        case 12: // ACCEPT_OFFER → RETURN_OFFER
        case 14: // MAKE_ANSWER → ANTICIPATE_ANSWER
          send(msg.rx, { opcode: msg.opcode + 1, payload: msg.payload, tx: id });
          break;
        case 2: // INIT
          ws.send(JSON.stringify({ opcode: 3, payload: id }));
          break;
        case 4: // CONFIG_HOST
        case 5: {
          // CONFIG_PEER
          lobby = String(msg.payload);
          let entry = lobbies.get(lobby);
          if (!entry) lobbies.set(lobby, (entry = { peers: new Set() }));
          if (msg.opcode === 4) {
            entry.host = id;
            ws.send(JSON.stringify({ opcode: 7, payload: lobby }));
            for (const peer of entry.peers) {
              send(id, { opcode: 8, payload: peer });
              send(peer, { opcode: 9, payload: id });
            }
          } else {
            entry.peers.add(id);
            ws.send(JSON.stringify({ opcode: 6, payload: lobby }));
            if (entry.host !== undefined) {
              send(id, { opcode: 9, payload: entry.host });
              send(entry.host, { opcode: 8, payload: id });
            }
          }
          break;
        }
      }
    });
    ws.on('close', () => {
      sockets.delete(id);
      const entry = lobby === undefined ? undefined : lobbies.get(lobby);
      if (!entry) return;
      if (entry.host === id) entry.host = undefined;
      entry.peers.delete(id);
      if (entry.host === undefined && entry.peers.size === 0) lobbies.delete(lobby!);
    });
  });

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = http.address() as AddressInfo;
  return {
    impl: 'bare',
    protocol: 'cloudlink',
    url: `ws://127.0.0.1:${port}/ws/${UGI}`,
    connections: () => sockets.size,
    async close() {
      for (const ws of wss.clients) ws.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
      await new Promise<void>((resolve) => http.close(() => resolve()));
      http.closeAllConnections();
    },
  };
}

/** The PeerJS server's WebSocket key (its default). */
const PEERJS_KEY = 'peerjs';

/**
 * The PeerJS server (`peer` 1.0) as `PeerServer()` starts it, on the same
 * arrangement: its timers out of the way (no HEARTBEAT needed within an
 * hour) and its connection limit out of reach, like signalbox's. It has no
 * `close()`: its check timers keep running until the process exits, which
 * the orchestrator does when it is done.
 */
async function startPeerJs(): Promise<BenchServer> {
  const { PeerServer } = await import('peer');
  let open = 0;
  const http = await new Promise<Server>((resolve, reject) => {
    const app = PeerServer(
      { host: '127.0.0.1', port: 0, path: '/', key: PEERJS_KEY, alive_timeout: 3_600_000, concurrent_limit: 1_000_000 },
      (server) => resolve(server as Server),
    );
    app.on('connection', () => open++);
    app.on('disconnect', () => open--);
    app.on('error', reject);
  });
  const { port } = http.address() as AddressInfo;
  return {
    impl: 'peerjs',
    protocol: 'peerjs',
    url: `ws://127.0.0.1:${port}/peerjs?key=${PEERJS_KEY}`,
    connections: () => open,
    async close() {
      http.closeAllConnections();
      await new Promise<void>((resolve) => http.close(() => resolve()));
    },
  };
}

// ---------------------------------------------------------------------------
// IPC between the roles.

type Task =
  | {
      kind: 'load';
      protocol: BenchServer['protocol'];
      url: string;
      pairs: number;
      window: number;
      payload: number;
      form: Form;
    }
  | { kind: 'idle'; protocol: BenchServer['protocol']; url: string; count: number };

/** What the orchestrator tells a load generator once it is ready: start and stop the measured window. */
type Order = { type: 'mark' } | { type: 'stop' };

type ClientReport =
  | { type: 'ready'; connections: number; setupMs: number }
  | ({ type: 'end'; delivered: number; elapsedMs: number; framesPerWrite: number } & ProcessWindow);

interface MemoryReport {
  type: 'memory';
  impl: Impl;
  count: number;
  heapPerConn: number;
  rssPerConn: number;
  heapUsedPerConn: number;
  externalPerConn: number;
}

// ---------------------------------------------------------------------------
// Role `client`: the load generator, a plain `ws` client speaking CloudLink.

/** A client connection with an inbox for the handshake phase (the load phase takes its socket: {@link RawRelay}). */
class Conn {
  id = '';
  private inbox: Frame[] = [];
  private waiters: Array<{ opcode: number; resolve: (f: Frame) => void; reject: (e: Error) => void }> = [];

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data: RawData) => {
      this.take(JSON.parse(data.toString()) as Frame);
    });
    ws.on('close', (code, reason) => {
      const error = new Error(`socket closed (${code} ${reason.toString()}) during the handshake`);
      for (const w of this.waiters.splice(0)) w.reject(error);
    });
  }

  static open(url: string): Promise<Conn> {
    return new Promise<Conn>((resolve, reject) => {
      // The generator must be cheap so that the ratio measures the servers: an
      // all-zero mask lets ws skip masking (the server unmasks either way), and
      // what the server sends is not validated as UTF-8 a second time.
      const ws = new WebSocket(url, { perMessageDeflate: false, skipUTF8Validation: true, generateMask: zeroMask });
      ws.once('open', () => {
        ws.off('error', reject);
        ws.on('error', () => {});
        resolve(new Conn(ws));
      });
      ws.once('error', reject);
    });
  }

  send(frame: Frame | string) {
    this.ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame));
  }

  private take(frame: Frame) {
    if (frame.opcode === 1) return this.send({ opcode: 1 });
    if (frame.opcode === 0) {
      const error = new Error(`VIOLATION: ${frame.payload}`);
      for (const w of this.waiters.splice(0)) w.reject(error);
      return;
    }
    const i = this.waiters.findIndex((w) => w.opcode === frame.opcode);
    if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(frame);
    else this.inbox.push(frame);
  }

  /** The next frame with `opcode` (received already or to come). */
  next(opcode: number): Promise<Frame> {
    const i = this.inbox.findIndex((f) => f.opcode === opcode);
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    return new Promise<Frame>((resolve, reject) => this.waiters.push({ opcode, resolve, reject }));
  }

  /** INIT → INIT_OK. */
  async init(name: string) {
    this.send({ opcode: 2, payload: name });
    this.id = String((await this.next(3)).payload);
  }
}

/** Host and peer in lobby `lobby`, INIT'ed and introduced to each other. */
async function pair(url: string, lobby: string): Promise<[Conn, Conn]> {
  const host = await Conn.open(url);
  await host.init('host');
  host.send({ opcode: 4, payload: lobby });
  await host.next(7);
  const peer = await Conn.open(url);
  await peer.init('peer');
  peer.send({ opcode: 5, payload: lobby });
  await peer.next(6);
  const [newHost, newPeer] = await Promise.all([peer.next(9), host.next(8)]);
  if (newHost.payload !== host.id || newPeer.payload !== peer.id) throw new Error('NEW_HOST/NEW_PEER mismatch');
  return [host, peer];
}

/** Runs `fn(i)` for i < count with at most `limit` at a time. */
async function pool<T>(count: number, limit: number, fn: (i: number) => Promise<T>): Promise<T[]> {
  const out: T[] = new Array<T>(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      out[i] = await fn(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, count) }, worker));
  return out;
}

/** What a run reports about the generator's side (see {@link RawRelay}). */
interface LoadStats {
  delivered: number;
  /** Socket writes (each one carries every frame a socket owed at the end of a tick). */
  writes: number;
  frames: number;
}

/**
 * One connection's load phase, with `ws` out of the way: once the handshake
 * is done the generator reads the socket's bytes itself and only counts
 * frames (the server's frames are unmasked and never fragmented; the first
 * bytes of each are compared with `expect`), and writes pre-framed bytes
 * (text frames with an all-zero mask, `window`·2 copies framed once). A
 * tick's answers are batched: each frame received adds one to the socket's
 * debt, and once the tick's reads are done each indebted socket pays all of
 * it in one write. So the generator spends a few byte comparisons per frame,
 * and a syscall per socket per tick, which is what lets one process drive a
 * server to a full core (see bench/README.md).
 */
class RawRelay {
  /** Bytes of a frame's start (header and the first bytes of its payload) that a read cut off. */
  private carry: Buffer | undefined;
  /** Payload bytes of the current frame still to skip. */
  private skip = 0;
  private readonly frames: Buffer;
  private readonly frameSize: number;
  owed = 0;

  constructor(
    readonly socket: Socket,
    text: string,
    copies: number,
    private readonly expect: Buffer,
    private readonly onFrame: (relay: RawRelay, match: boolean, head: string) => void,
  ) {
    const payload = Buffer.from(text);
    const n = payload.length;
    const header = n < 126 ? Buffer.from([0x81, 0x80 | n]) : Buffer.alloc(4);
    if (n >= 126) {
      if (n > 0xffff) throw new Error('a relayed frame must be under 64 KiB');
      header[0] = 0x81;
      header[1] = 0x80 | 126;
      header.writeUInt16BE(n, 2);
    }
    // Masked (as a client must) with the all-zero key: the payload goes as is.
    const one = Buffer.concat([header, Buffer.alloc(4), payload]);
    this.frameSize = one.length;
    this.frames = Buffer.concat(Array.from({ length: copies }, () => one));
    socket.removeAllListeners('data');
    socket.on('data', (chunk: Buffer) => this.read(chunk));
    socket.resume();
  }

  /** Writes `count` frames in one write (more than the copies framed: several writes). */
  pay(count: number): number {
    let writes = 0;
    const copies = this.frames.length / this.frameSize;
    while (count > 0) {
      const k = Math.min(count, copies);
      this.socket.write(k === copies ? this.frames : this.frames.subarray(0, k * this.frameSize));
      count -= k;
      writes++;
    }
    return writes;
  }

  private read(chunk: Buffer) {
    let at = 0;
    if (this.carry !== undefined) {
      // Rare (a read ended inside a frame's first bytes): parse the start from a small joined buffer.
      const joined = Buffer.concat([this.carry, chunk.subarray(0, 64)]);
      const used = this.frame(joined, 0);
      if (used < 0) {
        this.carry = chunk.length <= 64 ? joined : undefined;
        if (this.carry === undefined) throw new Error('unparseable frame start');
        return;
      }
      at = used - this.carry.length;
      this.carry = undefined;
    }
    while (at < chunk.length) {
      if (this.skip > 0) {
        const k = Math.min(this.skip, chunk.length - at);
        this.skip -= k;
        at += k;
        continue;
      }
      const used = this.frame(chunk, at);
      if (used < 0) {
        this.carry = Buffer.from(chunk.subarray(at));
        return;
      }
      at += used;
    }
  }

  /** Reads the frame starting at `at`: bytes used (header and compared prefix), or -1 if `buf` ends too soon. */
  private frame(buf: Buffer, at: number): number {
    if (buf.length - at < 2) return -1;
    const b1 = buf[at + 1]! & 0x7f;
    let size = 2;
    let length = b1;
    if (b1 === 126) {
      if (buf.length - at < 4) return -1;
      length = buf.readUInt16BE(at + 2);
      size = 4;
    } else if (b1 === 127) {
      if (buf.length - at < 10) return -1;
      length = Number(buf.readBigUInt64BE(at + 2));
      size = 10;
    }
    const check = Math.min(this.expect.length, length);
    if (buf.length - at - size < check) return -1;
    const start = at + size;
    const match =
      (buf[at]! & 0x0f) === 1 &&
      length >= this.expect.length &&
      buf.compare(this.expect, 0, this.expect.length, start, start + this.expect.length) === 0;
    this.skip = length - check;
    this.onFrame(this, match, match ? '' : buf.toString('latin1', at, Math.min(buf.length, start + 80)));
    return size + check;
  }
}

/**
 * Drives the relays: each connection sends `window` frames, then one more for
 * every frame it receives (so `window`·2 messages stay in flight per pair),
 * batched per socket and per tick. Counts what arrives.
 */
function drive(relays: Array<{ socket: Socket; text: string; expect: Buffer }>, window: number) {
  const stats: LoadStats = { delivered: 0, writes: 0, frames: 0 };
  let failure: string | undefined;
  let running = true;
  const owing: RawRelay[] = [];
  let flushing = false;
  const flush = () => {
    flushing = false;
    for (const relay of owing) {
      if (running) {
        stats.frames += relay.owed;
        stats.writes += relay.pay(relay.owed);
      }
      relay.owed = 0;
    }
    owing.length = 0;
  };
  const owe = (relay: RawRelay, count: number) => {
    if (relay.owed === 0) owing.push(relay);
    relay.owed += count;
    if (!flushing) {
      flushing = true;
      setImmediate(flush);
    }
  };
  const onFrame = (relay: RawRelay, match: boolean, head: string) => {
    if (match) {
      stats.delivered++;
      owe(relay, 1);
    } else failure ??= `unexpected frame from the server: ${JSON.stringify(head)}`;
  };
  const all = relays.map(({ socket, text, expect }) => {
    const relay = new RawRelay(socket, text, window * 2, expect, onFrame);
    socket.on('close', () => {
      if (running) failure ??= 'a relay socket closed during the run';
    });
    return relay;
  });
  for (const relay of all) owe(relay, window);
  return {
    stats,
    failure: () => failure,
    stop() {
      running = false;
      for (const relay of all) relay.socket.destroy();
    },
  };
}

/** Linux's run-queue wait of this process's main thread (ns), from /proc/self/schedstat: time it was ready but not running. */
function runQueueWaitNs(): number | undefined {
  try {
    return Number(readFileSync('/proc/self/schedstat', 'latin1').split(' ')[1]);
  } catch {
    return undefined;
  }
}

/** What the generator and the server each measure over a window: CPU, event-loop use, run-queue wait. */
interface ProcessWindow {
  /** CPU time (user + system, all threads) in ms; in {@link LoadResult}, as a share of the window. */
  cpuMs: number;
  sysMs: number;
  /** Share of the window the event loop was busy (not waiting in epoll). */
  busy: number;
  /** Share of the window the main thread was runnable but waiting for a core (Linux only). */
  waited?: number;
}

/** Starts measuring this process; the returned function ends the window. */
function measureWindow(): () => ProcessWindow & { elapsedMs: number } {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const e0 = performance.eventLoopUtilization();
  const w0 = runQueueWaitNs();
  return () => {
    const elapsedMs = performance.now() - t0;
    const c = process.cpuUsage(c0);
    const w1 = runQueueWaitNs();
    return {
      elapsedMs,
      cpuMs: (c.user + c.system) / 1000,
      sysMs: c.system / 1000,
      busy: performance.eventLoopUtilization(e0).utilization,
      waited: w0 === undefined || w1 === undefined ? undefined : (w1 - w0) / 1e6 / elapsedMs,
    };
  };
}

const socketOf = (ws: WebSocket) => (ws as unknown as { _socket: Socket })._socket;

/** A PeerJS client registered as `id`: connected, and the server's OPEN received. */
function openPeerJs(url: string, id: string): Promise<WebSocket> {
  return new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`${url}&id=${id}&token=${randomUUID().slice(0, 8)}`, {
      perMessageDeflate: false,
      skipUTF8Validation: true,
      generateMask: zeroMask,
    });
    ws.once('error', reject);
    ws.once('message', (data: RawData) => {
      const text = String(data);
      if (!text.startsWith('{"type":"OPEN"')) return reject(new Error(`PeerJS server answered ${text}`));
      ws.off('error', reject);
      ws.on('error', () => {});
      resolve(ws);
    });
  });
}

/** An endpoint of a relaying pair: its socket and the id its mate addresses it by. */
interface Endpoint {
  ws: WebSocket;
  id: string;
}

/**
 * `count` pairs that may relay to each other: for CloudLink a host and a peer
 * in a lobby of their own, introduced, with one offer exchanged (which allows
 * MAKE_ANSWER both ways); for PeerJS two registered clients.
 */
async function relayPairs(
  task: Extract<Task, { kind: 'load' }>,
  answerOrOffer: unknown,
): Promise<Array<[Endpoint, Endpoint]>> {
  const tag = randomUUID().slice(0, 8);
  if (task.protocol === 'peerjs') {
    return pool(task.pairs, 32, async (i) => {
      const a = `${tag}-a${i}`;
      const b = `${tag}-b${i}`;
      return [
        { ws: await openPeerJs(task.url, a), id: a },
        { ws: await openPeerJs(task.url, b), id: b },
      ];
    });
  }
  const pairs = await pool(task.pairs, 32, (i) => pair(task.url, `lobby-${tag}-${i}`));
  await Promise.all(
    pairs.map(async ([host, peer]) => {
      host.send({ opcode: 10, payload: answerOrOffer, rx: peer.id });
      const offer = await peer.next(11);
      if (offer.tx !== host.id) throw new Error('ANTICIPATE_OFFER from the wrong host');
      peer.send({ opcode: 12, payload: answerOrOffer, rx: host.id });
      const back = await host.next(13);
      if (back.tx !== peer.id) throw new Error('RETURN_OFFER from the wrong peer');
    }),
  );
  return pairs;
}

/** What each protocol's generator sends to relay an answer to `mate`, and how the relayed one starts. */
const RELAY = {
  cloudlink: {
    frame: (answer: string, mate: string) => `{"opcode":14,"payload":${answer},"rx":${JSON.stringify(mate)}}`,
    expect: Buffer.from('{"opcode":15,'),
  },
  // The PeerJS server forwards {type, src, dst, payload}, re-serialized.
  peerjs: {
    frame: (answer: string, mate: string) => `{"type":"ANSWER","dst":${JSON.stringify(mate)},"payload":${answer}}`,
    expect: Buffer.from('{"type":"ANSWER",'),
  },
} as const;

async function runLoad(task: Extract<Task, { kind: 'load' }>): Promise<void> {
  const started = performance.now();
  const sdp = sdpText(task.payload);
  const description = (type: 'offer' | 'answer') => (task.form === 'object' ? { type, sdp } : sdp);
  const pairs = await relayPairs(task, description('offer'));
  // Both listened for now: a stalled generator may read 'mark' and 'stop' in one go.
  const marked = nextOrder('mark');
  const stopped = nextOrder('stop');
  report({ type: 'ready', connections: pairs.length * 2, setupMs: performance.now() - started } satisfies ClientReport);

  const answer = JSON.stringify(description('answer'));
  const { frame, expect } = RELAY[task.protocol];
  const run = drive(
    pairs.flatMap(([a, b]) =>
      [
        [a, b],
        [b, a],
      ].map(([self, mate]) => ({ socket: socketOf(self!.ws), text: frame(answer, mate!.id), expect })),
    ),
    task.window,
  );
  // The server's process keeps the clock (its window is what CPU per message
  // divides): 'mark' starts the window, 'stop' ends it. A busy server may
  // deliver them late, but it measures the same window the generator does.
  await marked;
  const before = { ...run.stats };
  const end = measureWindow();
  await stopped;
  const after = { ...run.stats };
  const window = end();
  run.stop();
  const failure = run.failure();
  if (failure) throw new Error(failure);
  report({
    type: 'end',
    delivered: after.delivered - before.delivered,
    framesPerWrite: (after.frames - before.frames) / Math.max(1, after.writes - before.writes),
    ...window,
  } satisfies ClientReport);
}

/** The next order of `type` from the orchestrator. */
function nextOrder(type: Order['type']): Promise<void> {
  return new Promise<void>((resolve) => {
    const onMessage = (m: Order) => {
      if (m.type !== type) return;
      process.off('message', onMessage);
      resolve();
    };
    process.on('message', onMessage);
  });
}

/** Opens `count` idle registered clients (CloudLink: host and peer of a lobby each) and holds them until killed. */
async function runIdleClients(task: Extract<Task, { kind: 'idle' }>): Promise<void> {
  const started = performance.now();
  const tag = randomUUID().slice(0, 8);
  const opened =
    task.protocol === 'peerjs'
      ? await pool(task.count, 32, (i) => openPeerJs(task.url, `idle-${tag}-${i}`))
      : (await pool(task.count / 2, 32, (i) => pair(task.url, `idle-${tag}-${i}`))).flat();
  report({ type: 'ready', connections: opened.length, setupMs: performance.now() - started } satisfies ClientReport);
}

async function clientRole() {
  const task = await new Promise<Task>((resolve) => process.once('message', (m) => resolve(m as Task)));
  if (task.kind === 'load') {
    await runLoad(task);
    process.disconnect();
  } else {
    // Held until the memory role kills this process (every socket drops at once).
    await runIdleClients(task);
  }
}

// ---------------------------------------------------------------------------
// Role `memory`: a fresh process holding one server; measures its growth for K idle clients.

async function settleAndMeasure(gc: () => void): Promise<NodeJS.MemoryUsage> {
  for (let i = 0; i < 4; i++) {
    await sleep(50);
    gc();
  }
  return process.memoryUsage();
}

async function idleClients(server: BenchServer, count: number): Promise<() => Promise<void>> {
  const child = spawnRole(SELF, ['client']);
  child.send({ kind: 'idle', protocol: server.protocol, url: server.url, count } satisfies Task);
  await nextMessage(child, 'ready', 60_000);
  await waitFor(`${count} connections on the server`, () => server.connections() === count, 10_000);
  return async () => {
    // Killed, not closed politely: the server sees every socket drop (1006) at once.
    child.kill('SIGKILL');
    await exited(child, 10_000);
    await waitFor('the server to drop its connections', () => server.connections() === 0, 10_000);
  };
}

async function memoryRole(impl: Impl, options: Options) {
  const gc = exposeGc();
  const server = await startImpl(impl, options);
  try {
    // Warm-up: the first connections compile and allocate one-time things.
    const closeWarm = await idleClients(server, 100);
    await closeWarm();
    const before = await settleAndMeasure(gc);
    const closeIdle = await idleClients(server, options.idle);
    const after = await settleAndMeasure(gc);
    await closeIdle();
    const k = options.idle;
    const heapUsed = (after.heapUsed - before.heapUsed) / k;
    const external = (after.external - before.external) / k;
    report({
      type: 'memory',
      impl,
      count: k,
      heapPerConn: heapUsed + external,
      heapUsedPerConn: heapUsed,
      externalPerConn: external,
      rssPerConn: (after.rss - before.rss) / k,
    } satisfies MemoryReport);
  } finally {
    await server.close();
  }
  process.disconnect();
}

// ---------------------------------------------------------------------------
// Orchestrator.

interface LoadResult {
  impl: Impl;
  msgsPerSec: number;
  /** Server CPU time per relayed message, in microseconds. */
  cpuPerMsg: number;
  /** The kernel's share of it (system time: socket reads and writes). */
  sysPerMsg: number;
  server: ProcessWindow;
  client: ProcessWindow;
  /** Frames per socket write in the generator: how much each of its ticks batched. */
  framesPerWrite: number;
  setupMs: number;
}

/**
 * Pins every thread of process `pid` to `cpus` (a taskset list: `0`, `1`,
 * `0-1`) with Linux's `taskset`; false where that is not possible.
 */
function pin(pid: number, cpus: string): boolean {
  try {
    execFileSync('taskset', ['-a', '-p', '-c', cpus, String(pid)], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

async function measureLoad(impl: Impl, options: Options, profiler?: Session): Promise<LoadResult> {
  const server = await startImpl(impl, options);
  try {
    const child = spawnRole(SELF, ['client']);
    // Server and generator on a core each: left to the scheduler, two processes
    // that wake each other up tend to share one core (see bench/README.md).
    if (options.pin) pin(child.pid!, '1');
    const timeout = 60_000;
    child.send({
      kind: 'load',
      protocol: server.protocol,
      url: server.url,
      pairs: options.pairs,
      window: options.window,
      payload: options.payload,
      form: options.form,
    } satisfies Task);
    const ready = await nextMessage<Extract<ClientReport, { type: 'ready' }>>(child, 'ready', timeout);
    await sleep(options.warmup * 1000);
    if (profiler) await profiler.post('Profiler.start');
    child.send({ type: 'mark' } satisfies Order);
    const window = measureWindow();
    await sleep(options.seconds * 1000);
    const { elapsedMs, ...serverWindow } = window();
    child.send({ type: 'stop' } satisfies Order);
    const end = await nextMessage<Extract<ClientReport, { type: 'end' }>>(child, 'end', timeout);
    if (profiler) {
      const { profile } = await profiler.post('Profiler.stop');
      printProfile(impl, profile);
    }
    await exited(child, 10_000);
    const delivered = Math.max(1, end.delivered);
    const cpu = serverWindow.cpuMs;
    return {
      impl,
      msgsPerSec: (end.delivered / end.elapsedMs) * 1000,
      cpuPerMsg: (cpu * 1000) / delivered,
      sysPerMsg: (serverWindow.sysMs * 1000) / delivered,
      server: { ...serverWindow, cpuMs: cpu / elapsedMs, sysMs: serverWindow.sysMs / elapsedMs },
      client: {
        cpuMs: end.cpuMs / end.elapsedMs,
        sysMs: end.sysMs / end.elapsedMs,
        busy: end.busy,
        waited: end.waited,
      },
      framesPerWrite: end.framesPerWrite,
      setupMs: ready.setupMs,
    };
  } finally {
    await server.close();
  }
}

async function measureMemory(impl: Impl): Promise<MemoryReport> {
  const child = spawnRole(SELF, ['memory', impl, ...process.argv.slice(2)]);
  const result = await nextMessage<MemoryReport>(child, 'memory', 120_000);
  await exited(child, 10_000);
  return result;
}

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}

function where(url: string): string {
  if (!url) return '';
  const path = url.startsWith('file://') ? fileURLToPath(url) : url;
  return path.startsWith('/') ? relative(ROOT, path) : path;
}

function area(frame: ProfileNode['callFrame']): string {
  const path = where(frame.url);
  if (path === '') return /^\(.*\)$/.test(frame.functionName) ? frame.functionName : 'native (syscalls: writev, …)';
  if (path.startsWith('node:')) return 'node internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(path);
  if (pkg) return pkg[1]!;
  return path
    .split('/')
    .slice(0, path.startsWith('machines/') ? 2 : 1)
    .join('/');
}

/** Self and inclusive time by function and by area, from a V8 CPU profile. */
function printProfile(impl: Impl, profile: { nodes: ProfileNode[]; samples?: number[] }) {
  const file = join(tmpdir(), `signalbox-relay-${impl}-${Date.now()}.cpuprofile`);
  writeFileSync(file, JSON.stringify(profile));
  const nodes = new Map(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n.id);
  // Under tsx, line numbers of .ts files are those of the transpiled code: left out.
  const label = ({ callFrame: { functionName, url, lineNumber } }: ProfileNode) =>
    `${functionName || '(anonymous)'} ${where(url)}${url && !url.endsWith('.ts') ? `:${lineNumber + 1}` : ''}`;
  const self = new Map<string, number>();
  const byArea = new Map<string, number>();
  const inclusive = new Map<string, number>();
  const samples = profile.samples ?? [];
  for (const id of samples) {
    const node = nodes.get(id)!;
    self.set(label(node), (self.get(label(node)) ?? 0) + 1);
    byArea.set(area(node.callFrame), (byArea.get(area(node.callFrame)) ?? 0) + 1);
    const seen = new Set<string>();
    for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
      const n = nodes.get(at)!;
      if (!/^(machines|src|adapters|cli)\//.test(where(n.callFrame.url))) continue;
      const key = label(n);
      if (seen.has(key)) continue;
      seen.add(key);
      inclusive.set(key, (inclusive.get(key) ?? 0) + 1);
    }
  }
  const total = samples.length || 1;
  const top = (m: Map<string, number>, n: number) =>
    [...m]
      .sort((a, b) => b[1] - a[1])
      .slice(0, n)
      .map(([k, v]) => `    ${((v / total) * 100).toFixed(1).padStart(5)}%  ${k}`)
      .join('\n');
  console.log(`  ${impl} profile (${samples.length} samples, server main thread) written to ${file}`);
  console.log(`  self time by area:\n${top(byArea, 12)}`);
  console.log(`  self time by function:\n${top(self, 25)}`);
  if (inclusive.size > 0) console.log(`  inclusive time, project code:\n${top(inclusive, 20)}`);
}

const fmt = (n: number, digits = 0) =>
  n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
const pct = (x: number) => `${Math.round(x * 100)}%`;

async function orchestrate(options: Options) {
  const began = performance.now();
  await bundleServer();
  console.log(
    `relay bench: node ${process.version}, ${cpus().length} cpu(s); ${options.pairs} pairs, window ${options.window}/client, ` +
      `${options.payload} B SDP as ${options.form === 'object' ? '{type, sdp}' : 'a string'}, ${options.warmup} s warm-up + ${options.seconds} s x ${options.rounds} round(s) each; ` +
      `${options.idle} idle connections`,
  );

  const loads: LoadResult[] = [];
  const share = (w: ProcessWindow) =>
    `cpu ${pct(w.cpuMs)} busy ${pct(w.busy)}${w.waited === undefined ? '' : ` waited ${pct(w.waited)}`}`;
  const line = (label: string, r: LoadResult) =>
    console.log(
      `${label} ${r.impl.padEnd(9)}: ${fmt(r.msgsPerSec).padStart(8)} msgs/s, ` +
        `${fmt(r.cpuPerMsg, 1).padStart(5)} µs server cpu/msg (${fmt(r.sysPerMsg, 1)} sys); server ${share(r.server)}; ` +
        `generator ${share(r.client)}, ${fmt(r.framesPerWrite, 1)} frames/write; setup ${fmt(r.setupMs)} ms`,
    );
  // Server on core 0, generator on core 1 (see measureLoad); undone before the memory tests.
  const pinned = options.pin && pin(process.pid, '0');
  options.pin = pinned;
  console.log(
    pinned
      ? 'pinned: server on cpu 0, load generator on cpu 1'
      : 'not pinned: server and load generator where the scheduler puts them',
  );
  for (let round = 1; round <= options.rounds; round++) {
    for (const impl of options.servers) {
      const r = await measureLoad(impl, options);
      loads.push(r);
      line(`round ${round}`, r);
    }
  }
  if (options.profile) {
    // An extra round under the CPU profiler, left out of the summary.
    const profiler = new Session();
    profiler.connect();
    await profiler.post('Profiler.enable');
    for (const impl of options.servers) line('profiled', await measureLoad(impl, options, profiler));
    profiler.disconnect();
  }
  if (pinned) pin(process.pid, `0-${cpus().length - 1}`);

  const memory: MemoryReport[] = [];
  for (const impl of options.servers) {
    const m = await measureMemory(impl);
    memory.push(m);
    console.log(
      `idle ${impl.padEnd(9)}: ${fmt(m.heapPerConn).padStart(6)} B/conn heap (used ${fmt(m.heapUsedPerConn)} + external ` +
        `${fmt(m.externalPerConn)}), ${fmt(m.rssPerConn)} B/conn rss, over ${m.count} connections`,
    );
  }

  // Medians of the rounds: one lucky (or unlucky) round does not decide it.
  const middle = (impl: Impl, key: 'msgsPerSec' | 'cpuPerMsg') =>
    median(loads.filter((l) => l.impl === impl).map((l) => l[key]));
  const throughput = (impl: Impl) => middle(impl, 'msgsPerSec');
  const cpuPerMsg = (impl: Impl) => middle(impl, 'cpuPerMsg');
  const names: Record<Impl, string> = { bare: 'bare ws', signalbox: 'signalbox', peerjs: 'PeerJS' };
  console.log('');
  for (const impl of options.servers) {
    console.log(
      `relay throughput, ${names[impl].padEnd(9)} : ${fmt(throughput(impl)).padStart(8)} msgs/s (median of ${options.rounds}); ` +
        `${fmt(cpuPerMsg(impl), 1)} µs server cpu/msg`,
    );
  }
  for (const impl of options.servers) {
    const m = memory.find((r) => r.impl === impl)!;
    console.log(
      `idle memory, ${names[impl].padEnd(14)} : ${fmt(m.heapPerConn).padStart(8)} B/conn heap, ${fmt(m.rssPerConn)} B/conn rss`,
    );
  }
  // With the server saturated in every round, msgs/s is 1 ÷ its CPU per message
  // and the two ratios agree; where they do not, the throughput one is suspect.
  const unsaturated = loads.filter((l) => l.server.busy < 0.9).length;
  const ratios = (impl: Impl) =>
    `by cpu/msg (${names[impl]} µs ÷ signalbox µs) ${(cpuPerMsg(impl) / cpuPerMsg('signalbox')).toFixed(2)}, ` +
    `by throughput (signalbox ÷ ${names[impl]} msgs/s) ${(throughput('signalbox') / throughput(impl)).toFixed(2)}`;
  console.log(`signalbox against bare ws   : ${ratios('bare')} (medians)`);
  if (options.servers.includes('peerjs')) console.log(`signalbox against PeerJS    : ${ratios('peerjs')} (medians)`);
  if (unsaturated > 0) {
    console.log(
      `(${unsaturated} of ${loads.length} rounds left the server's event loop under 90% busy: their throughput is not the server's alone)`,
    );
  }
  console.log(`total time                  : ${fmt((performance.now() - began) / 1000, 1)} s`);
  console.log(`ratio=${(throughput('signalbox') / throughput('bare')).toFixed(2)}`);
}

// ---------------------------------------------------------------------------

async function main() {
  const role = process.argv[2];
  if (role === 'client') return clientRole();
  const options = parseOptions();
  if (role === 'memory') return memoryRole(process.argv[3] as Impl, options);
  await orchestrate(options);
  // The PeerJS server has no close(): its check timers would keep this process alive.
  process.exit(0);
}

runMain(main);
