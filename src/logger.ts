/** Where servers report what happened. Fields are flat and JSON-serialisable. */
export interface Logger {
  info(message: string, fields?: Record<string, unknown>): void;
  warn(message: string, fields?: Record<string, unknown>): void;
  error(message: string, fields?: Record<string, unknown>): void;
}

/** A logger that drops everything: the default for library use and tests. */
export const silentLogger: Logger = { info() {}, warn() {}, error() {} };

/**
 * A structured logger writing one JSON object per line.
 *
 * @example
 * ```ts
 * const log = jsonLogger((line) => process.stdout.write(line + '\n'));
 * log.info('listening', { port: 8080 }); // {"time":"…","level":"info","msg":"listening","port":8080}
 * ```
 */
export function jsonLogger(write: (line: string) => void, now: () => Date = () => new Date()): Logger {
  const line = (level: string) => (msg: string, fields?: Record<string, unknown>) =>
    write(JSON.stringify({ time: now().toISOString(), level, msg, ...fields }));
  return { info: line('info'), warn: line('warn'), error: line('error') };
}

const encoder = /* @__PURE__ */ new TextEncoder();

/** Cuts `text` so that its UTF-8 form fits in `maxBytes` (WebSocket close reasons: 123). */
export function truncateUtf8(text: string, maxBytes = 123): string {
  if (encoder.encode(text).length <= maxBytes) return text;
  let out = text;
  while (encoder.encode(out + '…').length > maxBytes) out = out.slice(0, -1);
  return out + '…';
}
