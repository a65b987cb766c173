import { parseArgs } from 'node:util';
import { jsonLogger } from '../src/logger.js';
import { startServer } from './server.js';

const USAGE = `Usage: signalbox <command> [options]

Commands:
  serve     Run the signalling server (CloudLink Omega at /ws/{ugi}, filedrop at /filedrop, GET /health)

Options for serve:
  --port N            TCP port (default 8080; 0 picks a free one)
  --host H            interface to bind (default 0.0.0.0)
  --keepalive MS      KEEPALIVE interval in ms (default 10000)
  --max-frame N       largest client frame in characters (default 65536)
  -h, --help          show this help
`;

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
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    process.stderr.write(`signalbox: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  const command = positionals[0];
  if (values.help || command === undefined) {
    (values.help ? out : process.stderr).write(USAGE);
    return values.help ? 0 : 2;
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
  let port, keepaliveInterval, maxFrameSize;
  try {
    port = number('port', values.port, 0, 65535);
    keepaliveInterval = number('keepalive', values.keepalive, 100, 3_600_000);
    maxFrameSize = number('max-frame', values['max-frame'], 256, 16 * 1024 * 1024);
  } catch (error) {
    process.stderr.write(`signalbox: ${(error as Error).message}\n`);
    return 2;
  }

  const logger = jsonLogger((line) => out.write(line + '\n'));
  let server;
  try {
    server = await startServer({ port, host: values.host, logger, cloudlink: { keepaliveInterval, maxFrameSize } });
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
