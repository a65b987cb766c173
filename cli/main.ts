import { parseArgs } from 'node:util';
import { jsonLogger } from '../src/logger.js';
import { startServer } from './server.js';
import {
  checkDirectory,
  DEFAULT_FILEDROP_SERVER,
  DEFAULT_ICE_SERVERS,
  iceServers,
  iceServerUrls,
  receiveFile,
  sendFile,
  serverUrl,
  WEBRTC_BACKENDS,
  type WebRtcBackend,
} from './transfer.js';

const USAGE = `Usage: signalbox <command> [options]

Commands:
  serve             Run the signalling server: CloudLink Omega at /ws/{ugi}, filedrop at /filedrop
                    (and /socket.io/ for socket.io 4 clients), workrooms at /workrooms, registry at
                    /registry, swarm at /swarm, GET /health, GET /metrics (Prometheus)
  send <file>       Offer a file over filedrop: prints its code on stdout, then serves one receiver
  receive <code>    Fetch the file offered under <code>, check its SHA-256 and save it

Options for serve:
  --port N            TCP port (default 8080; 0 picks a free one)
  --host H            interface to bind (default 0.0.0.0)
  --keepalive MS      KEEPALIVE interval in ms (default 10000)
  --max-frame N       largest client frame in characters, for every protocol
                      (default 65536; registry 262144)
  --max-connections N         most open connections in all; more get HTTP 503 (default 10000;
                              keep it below the open-file limit, ulimit -n)
  --max-connections-per-ip N  most open connections from one address; more get 503 (default 256)
  --trust-proxy       behind one reverse proxy: the client address is the last X-Forwarded-For entry
  --allow-origin O    a page origin (https://game.example) whose browsers may connect, repeatable;
                      other origins get 403 (default: any origin, with a warning at startup)
  --max-buffer BYTES  bytes queued for one client before it is closed 1008 "too slow" (default 4194304)
  --rate N            messages a connection may send per second, bursts of 2N (default 100)
  --rate-bytes BYTES  bytes a connection may send per second, bursts of 4x (default 1048576)
                      (a connection over a rate gets an ERR_RATE_LIMITED error, then a close)

Options for send and receive:
  --server URL        the server's filedrop endpoint (default ${DEFAULT_FILEDROP_SERVER});
                      http(s):// is taken as ws(s)://, a URL without a path gets /filedrop
  --webrtc LIB        WebRTC backend: werift (default) or node-datachannel (installed separately)
  --ice-server URL    a stun: or turn: server, repeatable; "none" for none (on one LAN)
                      (default: $SIGNALBOX_ICE_SERVERS, comma-separated, else ${DEFAULT_ICE_SERVERS.join(', ')})
  --out DIR           receive only: the directory to save into (default: the current one)

Progress goes to stderr (a bar on a terminal); Ctrl-C cancels and tells the other side.
Exit codes: 0 success, 1 the transfer failed, 2 bad usage.

  -h, --help          show this help
`;

/** The options of serve alone. */
const SERVE_ONLY = [
  'port',
  'host',
  'keepalive',
  'max-frame',
  'max-connections',
  'max-connections-per-ip',
  'trust-proxy',
  'allow-origin',
  'max-buffer',
  'rate',
  'rate-bytes',
] as const;

/** Runs the CLI with `argv` (without node and script); resolves with the exit code once a command is done. */
export async function main(argv: string[], out: { write(text: string): void } = process.stdout): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        port: { type: 'string' },
        host: { type: 'string' },
        keepalive: { type: 'string' },
        'max-frame': { type: 'string' },
        'max-connections': { type: 'string' },
        'max-connections-per-ip': { type: 'string' },
        'trust-proxy': { type: 'boolean' },
        'allow-origin': { type: 'string', multiple: true },
        'max-buffer': { type: 'string' },
        rate: { type: 'string' },
        'rate-bytes': { type: 'string' },
        server: { type: 'string' },
        webrtc: { type: 'string' },
        'ice-server': { type: 'string', multiple: true },
        out: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    process.stderr.write(`signalbox: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (command === 'serve') {
    for (const name of ['server', 'webrtc', 'ice-server', 'out'] as const)
      if (values[name] !== undefined) {
        process.stderr.write(`signalbox: --${name} is not an option of serve\n\n${USAGE}`);
        return 2;
      }
  }
  if (values.help || command === undefined) {
    (values.help ? out : process.stderr).write(USAGE);
    return values.help ? 0 : 2;
  }
  if (command === 'send' || command === 'receive') {
    const usage = (message: string) => {
      process.stderr.write(`signalbox: ${message}\n\n${USAGE}`);
      return 2;
    };
    const operand = positionals[1];
    if (operand === undefined || positionals.length > 2)
      return usage(`${command} takes exactly one ${command === 'send' ? '<file>' : '<code>'}`);
    for (const name of SERVE_ONLY) if (values[name] !== undefined) return usage(`--${name} is an option of serve only`);
    if (command === 'send' && values.out !== undefined) return usage('--out is an option of receive only');
    const webrtc = (values.webrtc ?? 'werift') as WebRtcBackend;
    if (!WEBRTC_BACKENDS.includes(webrtc))
      return usage(`--webrtc must be one of ${WEBRTC_BACKENDS.join(', ')}, got "${values.webrtc}"`);
    let server, ice;
    try {
      server = serverUrl(values.server ?? DEFAULT_FILEDROP_SERVER);
      ice = values['ice-server'] ? iceServerUrls(values['ice-server']) : iceServers();
    } catch (error) {
      return usage((error as Error).message);
    }
    const options = { server, webrtc, out, iceServers: ice };
    if (command === 'send') return sendFile(operand, options);
    const dir = values.out ?? '.';
    const problem = await checkDirectory(dir);
    if (problem) return usage(problem);
    return receiveFile(operand, dir, options);
  }
  if (command !== 'serve') {
    process.stderr.write(`signalbox: unknown command "${command}"\n\n${USAGE}`);
    return 2;
  }

  const number = (name: string, value: string | undefined, min: number, max: number): number | undefined => {
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
    return n;
  };
  let port, keepaliveInterval, maxFrameSize, maxConnections, maxConnectionsPerIp, maxBuffer, rate, rateBytes;
  let allowOrigins: string[] | undefined;
  try {
    port = number('port', values.port, 0, 65535);
    keepaliveInterval = number('keepalive', values.keepalive, 100, 3_600_000);
    maxFrameSize = number('max-frame', values['max-frame'], 256, 16 * 1024 * 1024);
    maxConnections = number('max-connections', values['max-connections'], 1, 10_000_000);
    maxConnectionsPerIp = number('max-connections-per-ip', values['max-connections-per-ip'], 1, 10_000_000);
    maxBuffer = number('max-buffer', values['max-buffer'], 1024, 1 << 30);
    rate = number('rate', values.rate, 1, 1_000_000);
    rateBytes = number('rate-bytes', values['rate-bytes'], 1024, 1 << 30);
    allowOrigins = values['allow-origin']?.map(origin);
  } catch (error) {
    process.stderr.write(`signalbox: ${(error as Error).message}\n`);
    return 2;
  }

  const logger = jsonLogger((line) => out.write(line + '\n'));
  let server;
  try {
    const frames = { maxFrameSize };
    server = await startServer({
      port,
      host: values.host,
      logger,
      maxConnections,
      maxConnectionsPerIp,
      trustProxy: values['trust-proxy'],
      allowOrigins,
      limits: {
        maxBufferedBytes: maxBuffer,
        ...(rate !== undefined && { messagesPerSecond: rate, messageBurst: 2 * rate }),
        ...(rateBytes !== undefined && { bytesPerSecond: rateBytes, byteBurst: 4 * rateBytes }),
      },
      cloudlink: { keepaliveInterval, maxFrameSize },
      ...(maxFrameSize !== undefined && {
        filedrop: frames,
        workrooms: frames,
        registry: frames,
        swarm: frames,
      }),
    });
  } catch (error) {
    logger.error('could not start', { error: (error as Error).message });
    return 1;
  }
  await new Promise<void>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      logger.info('shutting down', { signal });
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      void server.close().then(resolve);
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
  return 0;
}

/** An `--allow-origin` value: a scheme and host (and port), as a browser sends it in `Origin`. */
function origin(value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new Error(`--allow-origin must be an origin like https://game.example, got "${value}"`);
  }
  if (url.origin === 'null' || url.pathname.length > 1 || url.search || url.hash)
    throw new Error(`--allow-origin must be an origin like https://game.example, got "${value}"`);
  return url.origin;
}
