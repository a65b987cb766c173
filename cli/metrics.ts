import { collectDefaultMetrics, Counter, Gauge, Registry } from 'prom-client';
import type { ServerMetrics } from '../src/metrics.js';

/** Why a connection was refused before its upgrade, as the `reason` label of `signalbox_refusals_total`. */
export type RefusalReason = 'origin' | 'unauthorized' | 'server full' | 'address full';

/** The counters behind `GET /metrics`, and the {@link ServerMetrics} the protocol servers report to. */
export interface PrometheusMetrics extends ServerMetrics {
  readonly registry: Registry;
  /** A connection refused before the upgrade, with the HTTP status it got. */
  refused(reason: RefusalReason, status: number): void;
  /** The exposition text of every metric. */
  text(): Promise<string>;
}

/** Per-frame counts of one protocol since the start. */
interface Tally {
  messagesIn: number;
  bytesIn: number;
  messagesOut: number;
  bytesOut: number;
  relays: number;
}

/**
 * Prometheus metrics for one `signalbox serve` process, in a registry of
 * their own (prom-client's global one is left alone). `gauges` is read at
 * each scrape: open connections and buffered bytes per protocol, socket.io
 * connections on their own.
 *
 * @example
 * ```ts
 * const metrics = prometheusMetrics(() => ({ connections: { swarm: 3 }, buffered: { swarm: 0 }, socketIo: 0 }));
 * createSwarmServer({ metrics });
 * ```
 */
export function prometheusMetrics(
  gauges: () => { connections: Record<string, number>; buffered: Record<string, number>; socketIo: number },
): PrometheusMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const registers = [registry];
  const snapshot = () => gauges();
  new Gauge({
    name: 'signalbox_connections',
    help: 'Open connections, by protocol (socket.io ones included in filedrop)',
    labelNames: ['protocol'],
    registers,
    collect() {
      for (const [protocol, n] of Object.entries(snapshot().connections)) this.set({ protocol }, n);
    },
  });
  new Gauge({
    name: 'signalbox_socketio_connections',
    help: 'Open socket.io connections',
    registers,
    collect() {
      this.set(snapshot().socketIo);
    },
  });
  new Gauge({
    name: 'signalbox_buffered_bytes',
    help: 'Bytes queued for clients and not yet sent, by protocol',
    labelNames: ['protocol'],
    registers,
    collect() {
      for (const [protocol, n] of Object.entries(snapshot().buffered)) this.set({ protocol }, n);
    },
  });
  const opened = new Counter({
    name: 'signalbox_connections_opened_total',
    help: 'Sessions started, by protocol',
    labelNames: ['protocol'],
    registers,
  });
  const closes = new Counter({
    name: 'signalbox_closes_total',
    help: 'Connections closed, by protocol, close code and reason',
    labelNames: ['protocol', 'code', 'reason'],
    registers,
  });
  // The per-frame counts are plain numbers per protocol, handed to prom-client
  // at each scrape: a labelled `inc` hashes its labels and looks the series up
  // on every call, which cost ~3% of the relay's CPU (bench/README.md).
  const tallies = new Map<string, Tally>();
  const tally = (protocol: string): Tally => {
    let t = tallies.get(protocol);
    if (t === undefined)
      tallies.set(protocol, (t = { messagesIn: 0, bytesIn: 0, messagesOut: 0, bytesOut: 0, relays: 0 }));
    return t;
  };
  const perFrame = (name: string, help: string, key: keyof Tally) =>
    new Counter({
      name,
      help,
      labelNames: ['protocol'],
      registers,
      collect() {
        this.reset();
        for (const [protocol, t] of tallies) this.inc({ protocol }, t[key]);
      },
    });
  perFrame('signalbox_messages_received_total', 'Frames received from clients, by protocol', 'messagesIn');
  perFrame('signalbox_messages_sent_total', 'Frames sent to clients, by protocol', 'messagesOut');
  perFrame(
    'signalbox_received_bytes_total',
    'Characters (text) and bytes (binary) received from clients, by protocol',
    'bytesIn',
  );
  perFrame(
    'signalbox_sent_bytes_total',
    'Characters (text) and bytes (binary) sent to clients, by protocol',
    'bytesOut',
  );
  perFrame(
    'signalbox_relays_total',
    "Frames sent to one client while another client's frame was handled (relayed or announced), by protocol",
    'relays',
  );
  const rateLimited = new Counter({
    name: 'signalbox_rate_limited_total',
    help: 'Frames refused for the rate, by protocol and the limit that ran out (messages, bytes)',
    labelNames: ['protocol', 'kind'],
    registers,
  });
  const refusals = new Counter({
    name: 'signalbox_refusals_total',
    help: 'Connections refused before the upgrade, by reason and HTTP status',
    labelNames: ['reason', 'status'],
    registers,
  });
  return {
    registry,
    opened: (protocol) => opened.inc({ protocol }),
    closed: (protocol, code, reason) => closes.inc({ protocol, code: String(code), reason }),
    received(protocol, bytes) {
      const t = tally(protocol);
      t.messagesIn++;
      t.bytesIn += bytes;
    },
    sent(protocol, bytes, relay) {
      const t = tally(protocol);
      t.messagesOut++;
      t.bytesOut += bytes;
      if (relay) t.relays++;
    },
    rateLimited: (protocol, kind) => rateLimited.inc({ protocol, kind }),
    refused: (reason, status) => refusals.inc({ reason, status: String(status) }),
    text: () => registry.metrics(),
  };
}
