import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { isPeerId, normalizeCode } from '../machines/filedrop/protocol.js';
import { jsonLogger } from '../src/logger.js';
import { startServer, type SignalboxServerOptions } from './server.js';
import {
  DEFAULT_FILEDROP_SERVER,
  DEFAULT_ICE_SERVERS,
  iceServers,
  iceServerUrls,
  prepareDirectory,
  receiveFile,
  sendFile,
  serverUrl,
  WEBRTC_BACKENDS,
  type WebRtcBackend,
} from './transfer.js';

/** One command-line option: how `parseArgs` reads it and the line `--help` shows for it. */
interface CliOption {
  type: 'string' | 'boolean';
  multiple?: boolean;
  short?: string;
  /** The value's placeholder in help: `N` shows `--port N`. */
  value?: string;
  /** What it does and its default; `\n` continues on the next help line. */
  help: string;
}

interface Command {
  /** What follows `signalbox <name>` in the usage line. */
  operands: string;
  /** Its line in `signalbox help`. */
  brief: string;
  /** The opening of its `--help`. */
  summary: string;
  options: Record<string, CliOption>;
  /** Closing lines of `--help`. */
  notes?: string;
}

const TRANSFER_OPTIONS: Record<string, CliOption> = {
  server: {
    type: 'string',
    value: 'URL',
    help: `the server's filedrop endpoint (default ${DEFAULT_FILEDROP_SERVER});\nhttp(s):// is taken as ws(s)://, a URL without a path gets /filedrop`,
  },
  webrtc: {
    type: 'string',
    value: 'LIB',
    help: 'WebRTC backend: werift (default) or node-datachannel (installed separately)',
  },
  'ice-server': {
    type: 'string',
    multiple: true,
    value: 'URL',
    help: `a stun: or turn: server, repeatable; "none" for none (both sides on one LAN or host)\n(default: $SIGNALBOX_ICE_SERVERS, comma-separated, else ${DEFAULT_ICE_SERVERS.join(', ')})`,
  },
};

const TRANSFER_NOTES = `Progress goes to stderr (a bar on a terminal); Ctrl-C cancels and tells the other side.
Exit codes: 0 success, 1 the transfer failed, 2 bad usage.`;

/** Every command, its options and its help: adding an option is one line here (and reading it below). */
const COMMANDS: Record<'serve' | 'send' | 'receive', Command> = {
  serve: {
    operands: '[options]',
    brief: 'Run the signalling server for every protocol',
    summary:
      'Run the signalling server: CloudLink Omega at /ws/{ugi}, filedrop at /filedrop (and /socket.io/\nfor socket.io 4 clients), workrooms at /workrooms, registry at /registry, swarm at /swarm, GET /health, GET /metrics (Prometheus), the demo at /.\nLogs are JSON lines on stdout; SIGINT or SIGTERM closes every connection and exits 0.',
    options: {
      port: { type: 'string', value: 'N', help: 'TCP port (default 8080; 0 picks a free one)' },
      host: { type: 'string', value: 'H', help: 'interface to bind (default 0.0.0.0)' },
      keepalive: { type: 'string', value: 'MS', help: 'KEEPALIVE interval in ms (default 10000)' },
      'max-frame': {
        type: 'string',
        value: 'N',
        help: 'largest client frame in characters, for every protocol\n(default 65536; registry 262144)',
      },
      'max-connections': {
        type: 'string',
        value: 'N',
        help: 'most open connections in all; more get HTTP 503 (default 10000;\nkeep it below the open-file limit, ulimit -n)',
      },
      'max-connections-per-ip': {
        type: 'string',
        value: 'N',
        help: 'most open connections from one address; more get 503 (default 256)',
      },
      'trust-proxy': {
        type: 'boolean',
        help: 'behind one reverse proxy: the client address is the last X-Forwarded-For entry',
      },
      'allow-origin': {
        type: 'string',
        multiple: true,
        value: 'O',
        help: 'a page origin (https://game.example) whose browsers may connect, repeatable;\nother origins get 403 (default: any origin, with a warning at startup)',
      },
      'max-buffer': {
        type: 'string',
        value: 'BYTES',
        help: 'bytes queued for one client before it is closed 1008 "too slow" (default 4194304)',
      },
      rate: {
        type: 'string',
        value: 'N',
        help: 'messages a connection may send per second, bursts of 2N (default 100)',
      },
      'rate-bytes': {
        type: 'string',
        value: 'BYTES',
        help: 'bytes a connection may send per second, bursts of 4x (default 1048576)\n(a connection over a rate gets an ERR_RATE_LIMITED error, then a close)',
      },
      'rate-strikes': {
        type: 'string',
        value: 'N',
        help: 'frames refused for the rate before the connection is closed 1008 "rate limited"\n(default 50)',
      },
      'unknown-codes': {
        type: 'string',
        value: 'N',
        help: 'filedrop: codes nobody holds that one address may name per minute, bursts of N;\npast it ERR_RATE_LIMITED and a close (default 30; 0 turns the limit off)',
      },
      'register-timeout': {
        type: 'string',
        value: 'MS',
        help: 'workrooms: time a new connection has to send register before it is closed 1008\n(default 30000)',
      },
      'search-budget': {
        type: 'string',
        value: 'CHARS',
        help: "workrooms: an autocomplete answer holds at most the larger of CHARS and\n--search-factor times the request's size, in characters (default 32768)",
      },
      'search-factor': {
        type: 'string',
        value: 'N',
        help: 'workrooms: see --search-budget (default 16)',
      },
      'max-files': {
        type: 'string',
        value: 'N',
        help: 'registry: most entries in one file list (default 1000)',
      },
      inspect: {
        type: 'boolean',
        help: "stream every session's inspection events at the WebSocket /inspect\nand show them, live, on the page /inspect (trusted networks only)",
      },
      redis: {
        type: 'string',
        value: 'URL',
        help: 'scale-out: every process given the same Redis (redis://HOST:PORT) serves as one\nnetwork (default: $SIGNALBOX_REDIS_URL, else none: all state in this process);\nRedis unreachable at start exits with 1',
      },
      'redis-ttl': {
        type: 'string',
        value: 'MS',
        help: "with --redis: how long a silent process's sessions and lobbies outlive it; a\nprocess killed outright is cleared within MS plus MS/3 (default 15000)",
      },
    },
    notes: 'Exit codes: 0 after a signal, 1 could not start (e.g. the port is taken), 2 bad usage.',
  },
  send: {
    operands: '<file> [options]',
    brief: 'Offer a file: prints its code, then serves one receiver',
    summary: 'Offer a file over filedrop: prints its code on stdout, then serves one receiver.',
    options: TRANSFER_OPTIONS,
    notes: TRANSFER_NOTES,
  },
  receive: {
    operands: '<code> [options]',
    brief: 'Fetch the file offered under <code>, check its SHA-256 and save it',
    summary: 'Fetch the file offered under <code>, check its SHA-256 and save it.',
    options: {
      ...TRANSFER_OPTIONS,
      out: {
        type: 'string',
        value: 'DIR',
        help: 'the directory to save into, made when missing (default: the current one);\na name already taken there gets "name (1).ext"',
      },
    },
    notes: TRANSFER_NOTES,
  },
};
type CommandName = keyof typeof COMMANDS;

const HELP_OPTION: CliOption = { type: 'boolean', short: 'h', help: 'show this help' };

function optionLines(options: Record<string, CliOption>): string {
  return Object.entries(options)
    .map(([name, option]) => {
      const flag = `${option.short ? `-${option.short}, ` : ''}--${name}${option.value ? ` ${option.value}` : ''}`;
      const lines = option.help.split('\n').map((line) => `${' '.repeat(22)}${line}`);
      // A flag too long for its column goes on a line of its own, its help below it.
      if (flag.length > 18) return [`  ${flag}`, ...lines].join('\n');
      return [`  ${flag.padEnd(20)}${lines[0]!.trimStart()}`, ...lines.slice(1)].join('\n');
    })
    .join('\n');
}

/** `signalbox <command> --help`. */
export function commandHelp(name: CommandName): string {
  const command = COMMANDS[name];
  const notes = command.notes ? `\n${command.notes}\n` : '';
  return `Usage: signalbox ${name} ${command.operands}

${command.summary}

Options:
${optionLines({ ...command.options, help: HELP_OPTION })}
${notes}`;
}

/** `signalbox help`, `signalbox --help`. */
export function generalHelp(): string {
  const commands = Object.entries(COMMANDS)
    .map(([name, command]) => `  ${`${name} ${command.operands.replace('[options]', '')}`.padEnd(18)}${command.brief}`)
    .join('\n');
  return `Usage: signalbox <command> [options]

Commands:
${commands}
  help [command]    show this help, or a command's

Run \`signalbox <command> --help\` for its options.

Options:
  -h, --help          show this help
  --version           print the version
`;
}

/** This package's version, from the package.json above this file (cli/ in the source, dist/ when built). */
export function version(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'signalbox' && pkg.version) return pkg.version;
    } catch {
      // no package.json here: look further up
    }
    const parent = dirname(dir);
    if (parent === dir) return 'unknown';
    dir = parent;
  }
}

const isCommand = (name: string | undefined): name is CommandName =>
  name !== undefined && Object.hasOwn(COMMANDS, name);

/** `--name` is an option of some other command: the message that says so. */
function misplacedOption(error: Error, command: CommandName): string | undefined {
  const flag = /'(--?[^'\s]+)'/.exec(error.message)?.[1];
  const name = flag?.replace(/^--?/, '');
  if (!name) return undefined;
  const owners = (Object.keys(COMMANDS) as CommandName[]).filter((c) => Object.hasOwn(COMMANDS[c].options, name));
  if (owners.length === 0) return undefined;
  return `--${name} is not an option of ${command} (it is one of ${owners.join(' and ')})`;
}

/** Runs the CLI with `argv` (without node and script); resolves with the exit code once a command is done. */
export async function main(
  argv: string[],
  out: { write(text: string): void } = process.stdout,
  err: { write(text: string): void } = process.stderr,
): Promise<number> {
  const [first, ...rest] = argv;
  if (first === undefined) {
    err.write(generalHelp());
    return 2;
  }
  if (first === '--version') {
    out.write(`${version()}\n`);
    return 0;
  }
  if (first === '--help' || first === '-h') {
    out.write(generalHelp());
    return 0;
  }
  if (first === 'help') {
    const topic = rest[0];
    if (topic === undefined) out.write(generalHelp());
    else if (isCommand(topic)) out.write(commandHelp(topic));
    else {
      err.write(`signalbox: unknown command "${topic}"\n\n${generalHelp()}`);
      return 2;
    }
    return 0;
  }
  if (!isCommand(first)) {
    const problem = first.startsWith('-') ? `the command comes first, before ${first}` : `unknown command "${first}"`;
    err.write(`signalbox: ${problem}\n\n${generalHelp()}`);
    return 2;
  }
  const command = first;
  const usage = (message: string) => {
    err.write(`signalbox: ${message}\n\n${commandHelp(command)}`);
    return 2;
  };

  const config: NonNullable<ParseArgsConfig['options']> = {};
  for (const [name, { type, multiple, short }] of Object.entries({ ...COMMANDS[command].options, help: HELP_OPTION }))
    config[name] = { type, ...(multiple && { multiple }), ...(short && { short }) };
  let parsed;
  try {
    parsed = parseArgs({ args: rest, allowPositionals: true, options: config });
  } catch (error) {
    return usage(misplacedOption(error as Error, command) ?? (error as Error).message);
  }
  const values = parsed.values as Record<string, string | string[] | boolean | undefined>;
  const positionals = parsed.positionals;
  if (values.help) {
    out.write(commandHelp(command));
    return 0;
  }
  const string = (name: string) => values[name] as string | undefined;

  if (command === 'send' || command === 'receive') {
    const operand = positionals[0];
    if (operand === undefined || positionals.length > 1)
      return usage(`${command} takes exactly one ${command === 'send' ? '<file>' : '<code>'}`);
    if (command === 'receive' && !isPeerId(normalizeCode(operand)))
      return usage(`"${operand}" is not a code: 8 characters of 2-9 and A-Z without I, L, O, U`);
    const webrtc = (string('webrtc') ?? 'werift') as WebRtcBackend;
    if (!WEBRTC_BACKENDS.includes(webrtc))
      return usage(`--webrtc must be one of ${WEBRTC_BACKENDS.join(', ')}, got "${webrtc}"`);
    const iceFlags = values['ice-server'] as string[] | undefined;
    let server, ice;
    try {
      server = serverUrl(string('server') ?? DEFAULT_FILEDROP_SERVER);
      ice = iceFlags ? iceServerUrls(iceFlags) : iceServers();
    } catch (error) {
      return usage((error as Error).message);
    }
    const envIce = process.env.SIGNALBOX_ICE_SERVERS;
    const options = {
      server,
      webrtc,
      out,
      err,
      iceServers: ice,
      asGiven: { server: string('server'), iceServers: iceFlags ?? envIce?.split(',') },
    };
    if (command === 'send') return sendFile(operand, options);
    const dir = string('out') ?? '.';
    const problem = await prepareDirectory(dir);
    if (problem) return usage(problem);
    return receiveFile(operand, dir, options);
  }

  if (positionals.length > 0) return usage(`serve takes no operands, got "${positionals[0]}"`);
  let options: SignalboxServerOptions;
  try {
    options = serveOptions(values);
  } catch (error) {
    return usage((error as Error).message);
  }

  const logger = jsonLogger((line) => out.write(line + '\n'));
  let server;
  try {
    server = await startServer({ ...options, logger });
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

type ParsedValues = Record<string, string | string[] | boolean | undefined>;

/**
 * The `startServer()` options that `signalbox serve` runs with, from its
 * parsed command-line values (and `SIGNALBOX_REDIS_URL` from `env`); the
 * logger is the caller's. Throws an `Error` whose message names the option
 * for a value out of range.
 *
 * @example
 * ```ts
 * serveOptions({ port: '0', 'register-timeout': '5000' }).workrooms?.registerTimeout; // 5000
 * ```
 */
export function serveOptions(values: ParsedValues, env: NodeJS.ProcessEnv = process.env): SignalboxServerOptions {
  const string = (name: string) => values[name] as string | undefined;
  const number = (name: string, min: number, max: number): number | undefined => {
    const value = string(name);
    if (value === undefined) return undefined;
    const n = Number(value);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new Error(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
    return n;
  };
  const port = number('port', 0, 65535);
  const keepaliveInterval = number('keepalive', 100, 3_600_000);
  const maxFrameSize = number('max-frame', 256, 16 * 1024 * 1024);
  const maxConnections = number('max-connections', 1, 10_000_000);
  const maxConnectionsPerIp = number('max-connections-per-ip', 1, 10_000_000);
  const maxBuffer = number('max-buffer', 1024, 1 << 30);
  const rate = number('rate', 1, 1_000_000);
  const rateBytes = number('rate-bytes', 1024, 1 << 30);
  const rateStrikes = number('rate-strikes', 1, 1_000_000);
  const unknownCodes = number('unknown-codes', 0, 1_000_000);
  const registerTimeout = number('register-timeout', 100, 3_600_000);
  const searchFloor = number('search-budget', 1024, 16 * 1024 * 1024);
  const searchFactor = number('search-factor', 1, 10_000);
  const maxFiles = number('max-files', 1, 1_000_000);
  const allowOrigins = (values['allow-origin'] as string[] | undefined)?.map(origin);
  const redisTtl = number('redis-ttl', 1000, 3_600_000);
  const redis = string('redis') ?? (env.SIGNALBOX_REDIS_URL || undefined);
  if (redisTtl !== undefined && redis === undefined)
    throw new Error('--redis-ttl needs --redis (or SIGNALBOX_REDIS_URL)');

  const frames = maxFrameSize === undefined ? {} : { maxFrameSize };
  const searchBudget = {
    ...(searchFloor !== undefined && { floor: searchFloor }),
    ...(searchFactor !== undefined && { factor: searchFactor }),
  };
  return {
    port,
    host: string('host'),
    maxConnections,
    maxConnectionsPerIp,
    trustProxy: values['trust-proxy'] as boolean | undefined,
    allowOrigins,
    ...(redis && { redis: { url: redis, ...(redisTtl !== undefined && { ttl: redisTtl }) } }),
    limits: {
      maxBufferedBytes: maxBuffer,
      ...(rate !== undefined && { messagesPerSecond: rate, messageBurst: 2 * rate }),
      ...(rateBytes !== undefined && { bytesPerSecond: rateBytes, byteBurst: 4 * rateBytes }),
      ...(rateStrikes !== undefined && { rateLimitStrikes: rateStrikes }),
    },
    inspect: values.inspect === true,
    cloudlink: { keepaliveInterval, ...frames },
    filedrop: {
      ...frames,
      ...(unknownCodes !== undefined && {
        unknownCodes: unknownCodes === 0 ? false : { perMinute: unknownCodes, burst: unknownCodes },
      }),
    },
    workrooms: {
      ...frames,
      ...(registerTimeout !== undefined && { registerTimeout }),
      ...(Object.keys(searchBudget).length > 0 && { searchBudget }),
    },
    registry: { ...frames, ...(maxFiles !== undefined && { maxFiles }) },
    swarm: frames,
  };
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
