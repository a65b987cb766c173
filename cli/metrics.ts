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
  const messagesIn = new Counter({
    name: 'signalbox_messages_received_total',
    help: 'Frames received from clients, by protocol',
    labelNames: ['protocol'],
    registers,
  });
  const messagesOut = new Counter({
    name: 'signalbox_messages_sent_total',
    help: 'Frames sent to clients, by protocol',
    labelNames: ['protocol'],
    registers,
  });
  const bytesIn = new Counter({
    name: 'signalbox_received_bytes_total',
    help: 'Characters (text) and bytes (binary) received from clients, by protocol',
    labelNames: ['protocol'],
    registers,
  });
  const bytesOut = new Counter({
    name: 'signalbox_sent_bytes_total',
    help: 'Characters (text) and bytes (binary) sent to clients, by protocol',
    labelNames: ['protocol'],
    registers,
  });
  const relays = new Counter({
    name: 'signalbox_relays_total',
    help: "Frames sent to one client while another client's frame was handled (relayed or announced), by protocol",
    labelNames: ['protocol'],
    registers,
  });
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
      messagesIn.inc({ protocol });
      bytesIn.inc({ protocol }, bytes);
    },
    sent(protocol, bytes, relay) {
      messagesOut.inc({ protocol });
      bytesOut.inc({ protocol }, bytes);
      if (relay) relays.inc({ protocol });
    },
    rateLimited: (protocol, kind) => rateLimited.inc({ protocol, kind }),
    refused: (reason, status) => refusals.inc({ reason, status: String(status) }),
    text: () => registry.metrics(),
  };
}
