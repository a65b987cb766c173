/**
 * What the CLI shows people: sizes, rates, durations, the recent transfer
 * rate behind the ETA, and the receive command a sender hands on.
 */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

/**
 * A byte count for people: whole bytes below 1 KiB, else one decimal in
 * binary units.
 *
 * @example
 * ```ts
 * formatBytes(968.78); // "969 B"
 * formatBytes(1536); // "1.5 KiB"
 * ```
 */
export function formatBytes(n: number): string {
  let i = 0;
  while (Math.abs(n) >= 1024 && i < UNITS.length - 1) {
    n /= 1024;
    i++;
  }
  return i === 0 ? `${Math.round(n)} B` : `${n.toFixed(1)} ${UNITS[i]}`;
}

/**
 * A rate in bytes per second for people, never a raw float.
 *
 * @example
 * ```ts
 * formatRate(968.779564806055); // "969 B/s"
 * formatRate(1.25 * 1024 * 1024); // "1.3 MiB/s"
 * ```
 */
export function formatRate(bytesPerSecond: number): string {
  return `${formatBytes(bytesPerSecond)}/s`;
}

/**
 * Seconds as `mm:ss`, or `h:mm:ss` from an hour on; `--:--` when unknown.
 *
 * @example
 * ```ts
 * formatDuration(75); // "01:15"
 * formatDuration(3725); // "1:02:05"
 * formatDuration(Infinity); // "--:--"
 * ```
 */
export function formatDuration(seconds: number | undefined): string {
  if (seconds === undefined || !Number.isFinite(seconds)) return '--:--';
  const s = Math.max(0, Math.round(seconds));
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, '0');
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}

/**
 * The recent transfer rate: an exponentially weighted average of the rate
 * between updates, where a sample `halfLife` ms old counts half as much as
 * the newest. So an ETA follows a transfer that speeds up or slows down
 * within seconds, where the average since the start would lag for minutes.
 *
 * @example
 * ```ts
 * const meter = new RateMeter();
 * meter.start(0, Date.now());
 * meter.update(received, Date.now()); // on every progress report
 * meter.eta(total - received); // seconds, or undefined before a rate is known
 * ```
 */
export class RateMeter {
  private rate: number | undefined;
  private at = 0;
  private value = 0;

  /** @param halfLife ms after which a rate sample weighs half; default 3 s. */
  constructor(private readonly halfLife = 3000) {}

  /** Starts over from `value` bytes at time `at` (ms), with no rate known. */
  start(value: number, at: number): void {
    this.rate = undefined;
    this.value = value;
    this.at = at;
  }

  /** `value` bytes done at time `at` (ms). Updates in the same millisecond add up into the next sample. */
  update(value: number, at: number): void {
    const dt = at - this.at;
    if (dt <= 0) return;
    const sample = ((value - this.value) * 1000) / dt;
    const weight = this.rate === undefined ? 0 : 0.5 ** (dt / this.halfLife);
    this.rate = weight * (this.rate ?? 0) + (1 - weight) * sample;
    this.value = value;
    this.at = at;
  }

  /** Bytes per second lately, or `undefined` before the first update. */
  get bytesPerSecond(): number | undefined {
    return this.rate;
  }

  /** Seconds to move `remaining` more bytes at the recent rate; `undefined` while it is unknown or zero. */
  eta(remaining: number): number | undefined {
    return this.rate !== undefined && this.rate > 0 ? Math.max(0, remaining) / this.rate : undefined;
  }
}

/**
 * `value` quoted for a POSIX shell when it needs it.
 *
 * @example
 * ```ts
 * shellQuote('ws://host:8080/filedrop'); // unchanged
 * shellQuote("it's"); // `'it'\''s'`
 * ```
 */
export function shellQuote(value: string): string {
  return /^[\w@%+=:,./-]+$/.test(value) ? value : `'${value.replaceAll("'", `'\\''`)}'`;
}

/** How the sender reached its server and ICE servers, as the receiver must repeat it. */
export interface ReceiveCommandOptions {
  /** `--server` as the sender gave it; none when it used the default. */
  server?: string;
  /** ICE servers as the sender gave them (`--ice-server` values, or `SIGNALBOX_ICE_SERVERS` split); none for the default. */
  iceServers?: readonly string[];
}

/**
 * The command the other side runs to receive `code`, with the sender's own
 * `--server` and `--ice-server` choices.
 *
 * @example
 * ```ts
 * receiveCommand('ABCD2345', { server: 'wss://drop.example.org', iceServers: ['none'] });
 * // "npx signalbox receive ABCD2345 --server wss://drop.example.org --ice-server none"
 * ```
 */
export function receiveCommand(code: string, options: ReceiveCommandOptions = {}): string {
  const words = ['npx', 'signalbox', 'receive', code];
  if (options.server !== undefined) words.push('--server', options.server);
  if (options.iceServers !== undefined) {
    const urls = options.iceServers.map((url) => url.trim()).filter((url) => url !== '' && url !== 'none');
    for (const url of urls.length > 0 ? urls : ['none']) words.push('--ice-server', url);
  }
  return words.map(shellQuote).join(' ');
}
