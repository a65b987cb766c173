import type { Stats } from 'node:fs';
import { lstat, readdir, realpath, stat, type FileHandle } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import type { FileSource } from '../../machines/transfer/files.js';
import { RegistryError } from '../../machines/registry/errors.js';
import type { FileProvider } from '../../machines/registry/files.js';
import { checkPath, type FileEntry } from '../../machines/registry/protocol.js';
import { fileSource, openFileSource } from './file-source.js';

/** Options of {@link directoryProvider}. */
export interface DirectoryProviderInit {
  /**
   * List each file's SHA-256 (read once per size and modification time, 1 MiB
   * at a time), so requesters check it against what arrives.
   * @default true
   */
  sha256?: boolean;
  /** Most files listed; the walk stops there. @default 1000 (the server's default cap) */
  maxFiles?: number;
}

/**
 * A registry {@link FileProvider} that shares the regular files under `dir`
 * (recursively), listed by their `/`-separated path relative to it. Nothing
 * outside `dir` is ever listed or served: a requested path must be a clean
 * relative path (no `..`, not absolute, no NUL, no backslash), and it must
 * still resolve inside `dir` once symlinks are followed (`outside-root`
 * otherwise). Symlinks that point inside `dir` are followed; those that
 * point out are left out of the list.
 *
 * @example
 * ```ts
 * const client = createRegistryClient({
 *   transport: () => webSocketTransport('ws://127.0.0.1:8080/registry'),
 *   rtc: { RTCPeerConnection }, // from 'werift'
 *   provider: directoryProvider('./shared'),
 * });
 * ```
 */
export function directoryProvider(dir: string, init: DirectoryProviderInit = {}): FileProvider {
  const withDigest = init.sha256 ?? true;
  const maxFiles = init.maxFiles ?? 1000;
  const digests = new Map<string, { key: string; sha256: string }>();
  let root: Promise<string> | undefined;
  const rootOf = () => (root ??= realpath(dir));

  /** The real path of `path` under the root, or a {@link RegistryError}. */
  const resolve = async (path: string): Promise<string> => {
    const problem = checkPath(path);
    if (problem) throw new RegistryError('invalid-path', `${JSON.stringify(path.slice(0, 256))}: ${problem}`);
    const base = await rootOf();
    let real: string;
    try {
      real = await realpath(join(base, ...path.split('/')));
    } catch (error) {
      throw new RegistryError('source-failed', `${path}: ${describe(error)}`, { cause: error });
    }
    if (!isInside(base, real)) {
      throw new RegistryError('outside-root', `${path} resolves outside the shared directory`);
    }
    return real;
  };

  const digestOf = async (real: string, size: number, mtimeMs: number): Promise<string> => {
    const key = `${size}:${mtimeMs}`;
    const known = digests.get(real);
    if (known?.key === key) return known.sha256;
    const source = await fileSource(real, { sha256: true });
    await source.close?.();
    digests.set(real, { key, sha256: source.sha256! });
    return source.sha256!;
  };

  return {
    async list() {
      const base = await rootOf();
      const files: FileEntry[] = [];
      const walk = async (at: string): Promise<void> => {
        const names = (await readdir(at)).sort();
        for (const name of names) {
          if (files.length >= maxFiles) return;
          const full = join(at, name);
          const path = relative(base, full).split(sep).join('/');
          if (checkPath(path) !== undefined) continue; // a name no peer could ask for (a control character, a backslash)
          let real: string;
          try {
            real = await realpath(full);
          } catch {
            continue; // a dangling symlink
          }
          if (!isInside(base, real)) continue;
          const info = await stat(real);
          if (info.isDirectory()) {
            // A symlink to a directory inside is not walked twice.
            if ((await lstat(full)).isSymbolicLink()) continue;
            await walk(full);
          } else if (info.isFile()) {
            const entry: FileEntry = { path, size: info.size };
            if (withDigest) entry.sha256 = await digestOf(real, info.size, info.mtimeMs);
            files.push(entry);
          }
        }
      };
      await walk(base);
      return files;
    },
    async open(path): Promise<FileSource> {
      const real = await resolve(path);
      const base = await rootOf();
      const cached = (info: Stats) => {
        const entry = digests.get(real);
        return entry?.key === `${info.size}:${info.mtimeMs}` ? entry.sha256 : undefined;
      };
      try {
        return await openFileSource(real, { name: path }, insideCheck(base, path), cached);
      } catch (error) {
        if (error instanceof RegistryError) throw error;
        throw new RegistryError('source-failed', `${path}: ${describe(error)}`, { cause: error });
      }
    },
  };
}

/**
 * @internal What {@link directoryProvider} checks on a file once it is open.
 * `path` resolved inside `root` a moment before, but a directory on the way
 * may have been swapped for a symlink since: judge the file actually opened
 * (on Linux by its descriptor's path; elsewhere the path must still name that
 * very file, by device and inode, and still resolve inside).
 */
export function insideCheck(root: string, path: string) {
  return async (handle: FileHandle, info: Stats): Promise<void> => {
    const opened = await openedPath(handle, info, join(root, ...path.split('/')));
    if (opened === undefined || !isInside(root, opened)) {
      throw new RegistryError('outside-root', `${path} resolves outside the shared directory`);
    }
    if (!info.isFile()) throw new RegistryError('not-listed', `${path} is not a regular file`);
  };
}

async function openedPath(handle: FileHandle, info: Stats, path: string): Promise<string | undefined> {
  try {
    return await realpath(`/proc/self/fd/${handle.fd}`);
  } catch {
    // No /proc (macOS, Windows): fall back to the path, if it still names the opened file.
  }
  try {
    const now = await realpath(path);
    const same = await stat(now);
    return same.dev === info.dev && same.ino === info.ino ? now : undefined;
  } catch {
    return undefined;
  }
}

function isInside(root: string, path: string): boolean {
  return path.startsWith(root.endsWith(sep) ? root : root + sep);
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
