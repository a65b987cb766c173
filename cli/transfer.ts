import { access, constants, mkdir, stat } from 'node:fs/promises';
import { extname, join } from 'node:path';
import cliProgress from 'cli-progress';
import { createActor, type Actor, type AnyActorLogic } from 'xstate';
import { fileSink, fileSource } from '../adapters/fs/index.js';
import { webSocketTransport } from '../adapters/websocket/node.js';
import { clientCodec } from '../machines/filedrop/codec.js';
import { FileDropError } from '../machines/filedrop/errors.js';
import {
  safeFileName,
  type FileInfo,
  type FileSink,
  type FileSource,
  type ResumableSink,
} from '../machines/transfer/files.js';
import { filedropReceiver, keepsBytes, type ReceiverEmitted } from '../machines/filedrop/receiver.machine.js';
import { filedropSender, type SenderEmitted } from '../machines/filedrop/sender.machine.js';
import { fromRtc, type RtcActorInit } from '../src/rtc/index.js';
import { fromTransport } from '../src/runtime.js';
import {
  formatBytes,
  formatDuration,
  formatRate,
  RateMeter,
  receiveCommand,
  type ReceiveCommandOptions,
} from './format.js';

/** Where `send` and `receive` connect unless `--server` says otherwise. */
export const DEFAULT_FILEDROP_SERVER = 'ws://127.0.0.1:8080/filedrop';

export type WebRtcBackend = 'werift' | 'node-datachannel';
export const WEBRTC_BACKENDS: readonly WebRtcBackend[] = ['werift', 'node-datachannel'];

/** The ICE servers of `send` and `receive` unless `SIGNALBOX_ICE_SERVERS` says otherwise: werift's own default. */
export const DEFAULT_ICE_SERVERS: readonly string[] = ['stun:stun.l.google.com:19302'];

/**
 * The ICE servers `send` and `receive` use, the same for both backends:
 * `SIGNALBOX_ICE_SERVERS` (comma-separated `stun:` / `turn:` URLs; set and
 * empty for none, as on one LAN or in tests), else {@link DEFAULT_ICE_SERVERS}.
 *
 * @example
 * ```ts
 * iceServers({ SIGNALBOX_ICE_SERVERS: 'stun:stun.example.org:3478' }); // [{ urls: 'stun:stun.example.org:3478' }]
 * iceServers({ SIGNALBOX_ICE_SERVERS: '' }); // []
 * ```
 */
export function iceServers(env: Record<string, string | undefined> = process.env): Array<{ urls: string }> {
  const value = env.SIGNALBOX_ICE_SERVERS;
  if (value === undefined) return DEFAULT_ICE_SERVERS.map((urls) => ({ urls }));
  try {
    return iceServerUrls(value.split(','));
  } catch (error) {
    throw new Error(`SIGNALBOX_ICE_SERVERS: ${(error as Error).message}`);
  }
}

/**
 * `--ice-server` values → ICE servers: each a `stun:`, `stuns:`, `turn:` or
 * `turns:` URL; blanks and `none` stand for nothing.
 * @throws Error naming a value that is not such a URL.
 */
export function iceServerUrls(values: readonly string[]): Array<{ urls: string }> {
  const urls = values.map((url) => url.trim()).filter((url) => url !== '' && url !== 'none');
  for (const url of urls)
    if (!/^(stuns?|turns?):\S+$/.test(url)) throw new Error(`an ICE server must be a stun: or turn: URL, got "${url}"`);
  return urls.map((url) => ({ urls: url }));
}

interface Writable {
  write(text: string): unknown;
  isTTY?: boolean;
}

export interface TransferCliOptions {
  /** A ws(s):// URL of the server's `/filedrop`. */
  server: string;
  webrtc: WebRtcBackend;
  /** @default iceServers(): `SIGNALBOX_ICE_SERVERS`, else {@link DEFAULT_ICE_SERVERS} */
  iceServers?: Array<{ urls: string }>;
  /** The code (send) or the saved path (receive) goes here, alone on its line. */
  out?: Writable;
  /** Progress and messages. */
  err?: Writable;
  /** `--server` and `--ice-server` as the user gave them, for the receive command `send` prints. */
  asGiven?: ReceiveCommandOptions;
  /**
   * The `RTCPeerConnection` to use instead of loading `webrtc`'s (a test's
   * stand-in, or an embedder's own build); `rtcConfig(webrtc, …)` still applies.
   */
  RTCPeerConnection?: RtcActorInit['RTCPeerConnection'];
}

/**
 * `--server` as given → the ws(s):// URL to connect to. http(s):// maps to
 * ws(s)://; a URL without a path gets `/filedrop`.
 * @throws Error when it is not an http(s) or ws(s) URL.
 */
export function serverUrl(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`--server must be a ws://, wss://, http:// or https:// URL, got "${value}"`);
  }
  const protocols: Record<string, string> = { 'ws:': 'ws:', 'wss:': 'wss:', 'http:': 'ws:', 'https:': 'wss:' };
  const protocol = protocols[url.protocol];
  if (!protocol) throw new Error(`--server must be a ws://, wss://, http:// or https:// URL, got "${value}"`);
  url.protocol = protocol;
  if (url.pathname === '/' || url.pathname === '') url.pathname = '/filedrop';
  return url.toString();
}

/** Loads the WebRTC library lazily, so the one not chosen need not be installed. */
async function loadRtc(backend: WebRtcBackend): Promise<RtcActorInit['RTCPeerConnection']> {
  try {
    if (backend === 'node-datachannel') {
      const ndc = await import('node-datachannel/polyfill');
      return ndc.RTCPeerConnection as unknown as RtcActorInit['RTCPeerConnection'];
    }
    const werift = await import('werift');
    return werift.RTCPeerConnection as unknown as RtcActorInit['RTCPeerConnection'];
  } catch (error) {
    throw new Error(
      `could not load the WebRTC backend "${backend}" (npm install ${backend}): ${(error as Error).message}`,
      { cause: error },
    );
  }
}

/**
 * The `RTCPeerConnection` config of `send` and `receive`: the ICE servers,
 * explicit for both backends (werift would otherwise add its own STUN
 * server, node-datachannel none), and for werift `iceStunGatherTimeout: 0`.
 *
 * werift's `setLocalDescription()` resolves only once gathering ends, and
 * gathering waits for the STUN server's answer (5 s by default): each side's
 * description, and so the connection, waited that long for a STUN server
 * that never answers (offline, UDP dropped), 10 s a transfer. With trickle
 * ICE nothing needs to wait: werift keeps asking the STUN server (about 6 s
 * of retransmissions) after its gathering timer ran out, and the
 * server-reflexive candidate it then gets goes out as one more trickled
 * candidate. So the description goes out with the host candidates at once,
 * which is all a connection on one LAN or host needs, and a STUN server that
 * answers at all still helps across NATs.
 * node-datachannel does not wait for STUN: nothing to set.
 *
 * @example
 * ```ts
 * rtcConfig('werift', [{ urls: 'stun:stun.example.org:3478' }]);
 * // { iceServers: [{ urls: 'stun:stun.example.org:3478' }], iceStunGatherTimeout: 0 }
 * ```
 */
export function rtcConfig(webrtc: WebRtcBackend, servers: Array<{ urls: string }>): Record<string, unknown> {
  return { iceServers: servers, ...(webrtc === 'werift' && { iceStunGatherTimeout: 0 }) };
}

function clientActors(options: TransferCliOptions, RTCPeerConnection: RtcActorInit['RTCPeerConnection']) {
  return {
    signalling: fromTransport(() => webSocketTransport(options.server), clientCodec()),
    // Trickle: what rtcConfig relies on for werift (a late STUN answer goes out as a candidate).
    rtc: fromRtc({
      RTCPeerConnection,
      trickle: true,
      config: rtcConfig(options.webrtc, options.iceServers ?? iceServers()),
    }),
  };
}

/**
 * A progress bar with rate and ETA on a TTY (cli-progress); elsewhere,
 * nothing until the end, so logs and pipes stay clean.
 *
 * A transfer may go on from an offset: a `.part` an earlier attempt left
 * ({@link Progress.startAt}), or a lost connection carried over by a new
 * one ({@link Progress.resume}).
 * The bar moves there and the rate and ETA are measured afresh from there
 * (bytes already there are no speed), and the summary counts only the bytes
 * moved in this run, saying where it resumed.
 *
 * @internal Exported for its unit test.
 */
export class Progress {
  private bar?: cliProgress.SingleBar;
  private started = 0;
  private total = 0;
  /** Bytes done, as last reported. */
  private last = 0;
  /** Where the current stretch (what one connection moves) started. */
  private from = 0;
  /** Bytes moved by the earlier stretches of this run. */
  private moved = 0;
  /** Where each stretch started: the first is 0 unless the run itself resumed. */
  private starts = [0];
  private readonly meter = new RateMeter();

  /** @param now the clock, in ms (a test's own). */
  constructor(
    private readonly err: Writable,
    private readonly now: () => number = Date.now,
  ) {}

  start(total: number, label: string): void {
    this.started = this.now();
    this.total = total;
    this.last = this.from = this.moved = 0;
    this.starts = [0];
    this.meter.start(0, this.started);
    if (!this.err.isTTY) return;
    this.bar = new cliProgress.SingleBar(
      {
        stream: this.err as NodeJS.WritableStream,
        format: `${label} {bar} {percentage}% | {done}/{size} | {rate} | ETA {remaining}`,
        hideCursor: true,
        clearOnComplete: false,
      },
      cliProgress.Presets.shades_classic,
    );
    this.bar.start(total, 0, this.payload(0));
  }

  /**
   * This run starts at `offset` after all: the other side had the bytes
   * before it (a `.part`), or, having been asked to skip them, the sender
   * starts over at 0. Nothing moved so far counts as moved from there.
   */
  startAt(offset: number): void {
    this.moved += Math.max(0, this.last - this.from);
    this.starts[this.starts.length - 1] = offset;
    this.restart(offset);
  }

  /**
   * A new connection of this run carries the transfer on from `offset`. What
   * the one before moved counts, up to `offset` where the other side stored
   * more than it last reported.
   */
  resume(offset: number): void {
    const moved = Math.max(0, Math.max(this.last, offset) - this.from);
    this.moved += moved;
    // A connection that moved nothing gives way to this one (its start is no resume point).
    if (moved > 0) this.starts.push(offset);
    else this.starts[this.starts.length - 1] = offset;
    this.restart(offset);
  }

  update(value: number): void {
    // Fewer bytes than before: a new connection took over there without a word (back on the server, at 0).
    if (value < this.last) this.resume(value);
    this.last = value;
    this.meter.update(value, this.now());
    this.bar?.update(value, this.payload(value));
  }

  /** What the bar shows: bytes done of the size, the recent rate, the ETA at that rate. */
  status(): { done: string; size: string; rate: string; remaining: string } {
    return this.payload(this.last);
  }

  /**
   * Stops the bar; returns a one-line summary of what went through in this
   * run: `1.0 MiB in 0.5 s (2.0 MiB/s)`, and for a resumed transfer where
   * (`…, resumed at 195.3 KiB of 512.0 KiB`).
   */
  stop(): string {
    if (this.bar) {
      this.meter.update(this.last, this.now());
      this.bar.update(this.last, this.payload(this.last));
      this.bar.stop();
      this.bar = undefined;
    }
    const seconds = Math.max((this.now() - this.started) / 1000, 0.001);
    const bytes = this.moved + Math.max(0, this.last - this.from);
    const summary = `${formatBytes(bytes)} in ${seconds.toFixed(1)} s (${formatRate(bytes / seconds)})`;
    const resumed = this.starts[0] === 0 ? this.starts.slice(1) : this.starts;
    if (resumed.length === 0) return summary;
    return `${summary}, resumed at ${resumed.map(formatBytes).join(', then at ')} of ${formatBytes(this.total)}`;
  }

  /** The bar at `offset`, and the rate measured afresh from there. */
  private restart(offset: number): void {
    this.from = this.last = offset;
    this.meter.start(offset, this.now());
    this.bar?.update(offset, this.payload(offset));
  }

  private payload(value: number) {
    return {
      done: formatBytes(value),
      size: formatBytes(this.total),
      rate: formatRate(this.meter.bytesPerSecond ?? 0),
      remaining: formatDuration(this.meter.eta(this.total - value)),
    };
  }
}

/** What a remote side's own reason (`error.remote`) means, in a CLI user's words. */
const REMOTE_REASONS: Partial<Record<string, string>> = {
  cancelled: 'cancelled',
  'sink-failed': 'could not save the file',
  'source-failed': 'could not read the file',
  'rtc-failed': 'lost its WebRTC connection',
  timeout: 'timed out',
  'size-mismatch': 'got a different size than announced',
  'digest-mismatch': 'got a different SHA-256 than announced',
  protocol: 'got a message it could not read',
};

/**
 * What a CLI user reads when a transfer fails: `reason: text`, the reason
 * being the {@link FileDropError} reason (for scripts and bug reports) and
 * the text plain words. Most errors' own messages already are; an
 * `rtc-failed` one is written for a library caller ("close this connection
 * and create a new one") and is replaced by what a user can do about it.
 *
 * @example
 * ```ts
 * failureMessage(new FileDropError('rtc-failed', 'ICE restart failed: …'), 'receive');
 * // 'rtc-failed: the WebRTC connection to the sender failed; …'
 * ```
 */
export function failureMessage(error: FileDropError | undefined, command: 'send' | 'receive'): string {
  if (!error) return 'transfer failed';
  const other = command === 'send' ? 'receiver' : 'sender';
  switch (error.reason) {
    case 'rtc-failed':
      return (
        `rtc-failed: the WebRTC connection to the ${other} failed; both sides must reach each other over UDP ` +
        '(on one LAN or host, --ice-server none is enough; across NATs that block it, a TURN server may be needed: ' +
        '--ice-server turn:…)'
      );
    case 'remote-cancelled': {
      const what = error.remote === undefined ? undefined : REMOTE_REASONS[error.remote];
      const reason = error.remote === undefined ? '' : ` (${error.remote})`;
      return `remote-cancelled: the ${other} ${what ?? 'gave up'}${reason}`;
    }
    default:
      return `${error.reason}: ${error.message}`;
  }
}

/**
 * Runs a machine until it stops; SIGINT (and SIGTERM) send it `cancel`, so
 * the other side is told. Resolves with the `stopped` error, if any.
 */
function untilStopped<T extends AnyActorLogic>(actor: Actor<T>): Promise<FileDropError | undefined> {
  return new Promise((resolve) => {
    const cancel = () => (actor as unknown as Actor<typeof filedropReceiver>).send({ type: 'cancel' });
    process.on('SIGINT', cancel);
    process.on('SIGTERM', cancel);
    actor.on('stopped', (event: { detail: { error?: FileDropError } }) => {
      process.off('SIGINT', cancel);
      process.off('SIGTERM', cancel);
      resolve(event.detail.error);
    });
    actor.start();
  });
}

/** `signalbox send <file>`: prints the code, serves one receiver. Resolves with the exit code. */
export async function sendFile(path: string, options: TransferCliOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const err = options.err ?? process.stderr;
  let source: FileSource;
  let RTCPeerConnection;
  try {
    RTCPeerConnection = options.RTCPeerConnection ?? (await loadRtc(options.webrtc));
    // No digest up front: the file is hashed as it is sent, and the digest follows in `done` (read once).
    source = await fileSource(path, { sha256: false });
  } catch (error) {
    err.write(`signalbox: ${(error as Error).message}\n`);
    return 1;
  }
  const sender = createActor(filedropSender.provide({ actors: clientActors(options, RTCPeerConnection) }), {
    input: { source, once: true },
  });
  const progress = new Progress(err);
  sender.on('assigned', ({ detail }: Extract<SenderEmitted, { type: 'assigned' }>) => {
    out.write(`${detail.id}\n`);
    err.write(
      `Sending ${source.name} (${formatBytes(source.size)}). On the other side run:\n  ${receiveCommand(detail.id, options.asGiven)}\n`,
    );
  });
  sender.on('requested', () => progress.start(source.size, 'Sending  '));
  // A transfer that failed on the receiver's side leaves the sender serving (see SenderInput.once): say so.
  sender.on('failed', ({ detail }: Extract<SenderEmitted, { type: 'failed' }>) => {
    setImmediate(() => {
      const { status, context } = sender.getSnapshot();
      if (status !== 'active') return;
      progress.stop();
      err.write(
        `signalbox: that receiver failed: ${failureMessage(detail.error, 'send')}\n` +
          `The code ${context.id} still works: waiting for a receiver (Ctrl-C to stop).\n`,
      );
    });
  });
  // The receiver holds the bytes before `offset` (a `.part`, or what a lost connection brought): the
  // bar, the rate and the summary go on from there.
  sender.on('resuming', ({ detail }: Extract<SenderEmitted, { type: 'resuming' }>) => {
    if (detail.reconnect) progress.resume(detail.offset);
    else progress.startAt(detail.offset);
    if (detail.offset > 0) err.write(`The receiver has ${formatBytes(detail.offset)} already: sending the rest\n`);
  });
  sender.on('progress', ({ detail }: Extract<SenderEmitted, { type: 'progress' }>) => progress.update(detail.received));
  const error = await untilStopped(sender);
  const summary = progress.stop();
  if (error) {
    err.write(`signalbox: send failed: ${failureMessage(error, 'send')}\n`);
    return 1;
  }
  err.write(`Sent ${source.name}: ${summary}\n`);
  return 0;
}

/**
 * `signalbox receive <code>`: writes the file into `dir`, checking its size
 * and, when the sender gives one, its SHA-256 (the summary says which).
 * Resolves with the exit code.
 */
export async function receiveFile(code: string, dir: string, options: TransferCliOptions): Promise<number> {
  const out = options.out ?? process.stdout;
  const err = options.err ?? process.stderr;
  let RTCPeerConnection;
  try {
    RTCPeerConnection = options.RTCPeerConnection ?? (await loadRtc(options.webrtc));
  } catch (error) {
    err.write(`signalbox: ${(error as Error).message}\n`);
    return 1;
  }
  const progress = new Progress(err);
  let target = '';
  let sink: ResumableSink | undefined;
  // The file's name is known only now. A `.part` an earlier attempt at this same file left is
  // resumed; a name taken (or a `.part` of another file) gets `name (1).ext`, so nothing the
  // sender did is lost to a clash on this side.
  const opener = async (file: FileInfo): Promise<FileSink> => {
    const opened = await freeSink(dir, safeFileName(file.name), file);
    target = opened.path;
    sink = opened.sink;
    const stored = await opened.sink.size();
    err.write(
      stored > 0
        ? `Resuming ${file.name} (${formatBytes(file.size)}) into ${target}: ${formatBytes(stored)} already there\n`
        : `Receiving ${file.name} (${formatBytes(file.size)}) into ${target}\n`,
    );
    progress.start(file.size, 'Receiving');
    return opened.sink;
  };
  const receiver = createActor(filedropReceiver.provide({ actors: clientActors(options, RTCPeerConnection) }), {
    input: { code, sink: opener },
  });
  receiver.on('resumed', ({ detail }: Extract<ReceiverEmitted, { type: 'resumed' }>) => {
    // Asked to resume, the sender started over (it does not know offsets): the part was emptied.
    if (detail.offset > 0) return;
    progress.startAt(0);
    err.write('The sender does not resume transfers: receiving the whole file again\n');
  });
  // The sink holds the bytes before `offset` (a `.part`, or what a lost connection brought): the bar,
  // the rate and the summary go on from there.
  // Back on the server, the first connection again: it carries this run's transfer on, as a fresh one does.
  let rejoined = false;
  receiver.on('resuming', ({ detail }: Extract<ReceiverEmitted, { type: 'resuming' }>) => {
    if (detail.reconnect > 0 || rejoined) progress.resume(detail.offset);
    else progress.startAt(detail.offset);
    // (Back on the server, `reconnect` still counts the fresh connections before the loss: no news.)
    if (detail.reconnect > 0 && !rejoined) {
      err.write(`Connection lost: reconnecting (${detail.reconnect}), resuming at ${formatBytes(detail.offset)}\n`);
    }
    rejoined = false;
  });
  // The server connection dropped mid-transfer: the receiver connects again and asks the same code for the rest.
  receiver.on('rejoining', ({ detail }: Extract<ReceiverEmitted, { type: 'rejoining' }>) => {
    const why =
      detail.error.reason === 'busy'
        ? 'The sender is still serving the lost connection'
        : `Lost the connection to the server (${detail.error.message})`;
    err.write(`${why}: reconnecting in ${detail.delay / 1000} s (try ${detail.attempt} of ${detail.maxRejoins})\n`);
  });
  receiver.on('rejoined', () => {
    rejoined = true;
    err.write('Reconnected to the server: asking the sender for the rest\n');
  });
  receiver.on('progress', ({ detail }: Extract<ReceiverEmitted, { type: 'progress' }>) =>
    progress.update(detail.received),
  );
  let integrity = '';
  receiver.on('completed', ({ detail }: Extract<ReceiverEmitted, { type: 'completed' }>) => {
    integrity = integrityNote(detail);
  });
  const error = await untilStopped(receiver);
  const summary = progress.stop();
  if (error) {
    err.write(`signalbox: receive failed: ${failureMessage(error, 'receive')}\n`);
    const part = sink;
    const kept =
      part?.keep && keepsBytes(error.reason)
        ? await Promise.resolve()
            .then(() => part.size())
            .catch(() => 0)
        : 0;
    if (kept > 0) {
      err.write(`Kept ${formatBytes(kept)} in ${target}.part: run the same command again to resume\n`);
    }
    return error.reason === 'invalid-code' ? 2 : 1;
  }
  err.write(`Received ${target}: ${summary}; ${integrity}\n`);
  out.write(`${target}\n`);
  return 0;
}

/** What the receiver could check of a file: its digest, or (no digest announced) only its size. */
export function integrityNote(detail: Extract<ReceiverEmitted, { type: 'completed' }>['detail']): string {
  if (detail.verified) return `SHA-256 ${detail.sha256} verified`;
  return `size checked (${detail.file.size} bytes); the sender announced no SHA-256, so the content is not verified (SHA-256 of what arrived: ${detail.sha256})`;
}

/** The most `name (n).ext` candidates {@link freeSink} tries before giving up. */
const MAX_NAME_TRIES = 1000;

/**
 * Opens a sink for `name` in `dir` under the first of `name`, `name (1).ext`,
 * `name (2).ext`, … that is free, or whose `.part` an earlier attempt at
 * `file` left (it is resumed: `fileSink` with `resume`). An existing file is
 * never replaced, and a `.part` of another file (another receiver's, running
 * or killed) never touched.
 * @throws the sink's error when it fails for another reason than the name being taken.
 */
export async function freeSink(
  dir: string,
  name: string,
  file?: FileInfo,
): Promise<{ path: string; sink: ResumableSink }> {
  const ext = extname(name); // '' for `.bashrc` and `README`
  const stem = name.slice(0, name.length - ext.length);
  for (let n = 0; n < MAX_NAME_TRIES; n++) {
    const path = join(dir, n === 0 ? name : `${stem} (${n})${ext}`);
    try {
      return { path, sink: await fileSink(path, file ? { resume: file } : {}) };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  throw new Error(`${join(dir, name)} and ${MAX_NAME_TRIES - 1} numbered variants are all taken`);
}

/**
 * `--out`: made (with its parents) when missing; must then be a directory
 * this process can write into. Checked before connecting, so a receiver that
 * could not save never takes a sender's one transfer.
 * @returns what is wrong, or `undefined`.
 */
export async function prepareDirectory(dir: string): Promise<string | undefined> {
  try {
    if (!(await stat(dir)).isDirectory()) return `--out: ${dir} is not a directory`;
  } catch {
    try {
      await mkdir(dir, { recursive: true });
    } catch (error) {
      return `--out: cannot create ${dir}: ${(error as Error).message}`;
    }
  }
  try {
    await access(dir, constants.W_OK | constants.X_OK);
  } catch (error) {
    return `--out: cannot write into ${dir}: ${(error as Error).message}`;
  }
  return undefined;
}
