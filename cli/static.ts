import { createReadStream, existsSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.png': 'image/png',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.map': 'application/json',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * What every page may load: only this server (scripts, styles, WebSocket),
 * nothing from outside, so the demo and the inspector work on a LAN with no
 * internet and cannot leak a request elsewhere. Blob URLs let a received file
 * be saved.
 */
export const CONTENT_SECURITY_POLICY =
  "default-src 'self'; connect-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; " +
  "style-src 'self' 'unsafe-inline'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'";

/**
 * Where the built demo and inspector pages are: `dist/demo/` of this package,
 * found from this module in the source tree (`cli/`) and in the build
 * (`dist/`, `dist/chunks/`). Undefined when the demo was not built.
 */
export function defaultStaticRoot(): string | undefined {
  for (const up of ['../dist/demo/', '../demo/', './demo/']) {
    const dir = fileURLToPath(new URL(up, import.meta.url));
    if (existsSync(resolve(dir, 'index.html'))) return dir;
  }
  return undefined;
}

/**
 * A request handler for the files under `root`: `GET` and `HEAD` only, `/`
 * is `index.html`, a path without an extension is that name plus `.html`
 * (`/inspect` → `inspect.html`). Nothing outside `root` is reachable (`..`,
 * encoded or not, and NUL are refused), directories are not listed. Calls
 * `next()` for anything it does not serve.
 *
 * @example
 * ```ts
 * const files = staticFiles('./dist/demo');
 * createServer((req, res) => files(req, res, () => res.writeHead(404).end()));
 * ```
 */
export function staticFiles(root: string): (req: IncomingMessage, res: ServerResponse, next: () => void) => void {
  const base = resolve(root);
  return (req, res, next) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return next();
    let path: string;
    try {
      path = decodeURIComponent(new URL(req.url ?? '/', 'http://localhost').pathname);
    } catch {
      return next();
    }
    if (path.includes('\0')) return next();
    if (path.endsWith('/')) path += 'index.html';
    else if (extname(path) === '') path += '.html';
    const file = resolve(base, `.${path}`);
    if (!file.startsWith(base + sep)) return next();
    stat(file).then(
      (info) => {
        if (!info.isFile()) return next();
        res.writeHead(200, {
          'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
          'content-length': info.size,
          'cache-control': 'no-cache',
          'x-content-type-options': 'nosniff',
          'content-security-policy': CONTENT_SECURITY_POLICY,
        });
        if (req.method === 'HEAD') return void res.end();
        createReadStream(file)
          .on('error', () => res.destroy())
          .pipe(res);
      },
      () => next(),
    );
  };
}
