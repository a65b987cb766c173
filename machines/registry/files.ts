import { blobSource, sha256OfSource, type BlobLike, type FileSource } from '../transfer/files.js';
import { RegistryError } from './errors.js';
import { checkPath, type FileEntry } from './protocol.js';

/**
 * Where a registry client's files come from: what it lists, and how a
 * listed path is opened when a peer requests it. The machine asks `open`
 * only for paths in its current list; a provider still refuses anything
 * outside what it shares (throw a {@link RegistryError} with reason
 * `outside-root`, `invalid-path` or `source-failed`).
 *
 * Implementations: {@link blobProvider} (browser `File`s),
 * `directoryProvider(dir)` from `signalbox/fs` (Node).
 */
export interface FileProvider {
  /** The files to announce (`Connect`, and `UpdateFiles` without a list). */
  list(): FileEntry[] | Promise<FileEntry[]>;
  /** A source for a listed path. Its `close()` is called when the transfer ends. */
  open(path: string): FileSource | Promise<FileSource>;
}

/**
 * A {@link FileProvider} over browser `File` objects (or any `Blob`s): each
 * is listed under its `webkitRelativePath`, else its name, or under the key
 * of a record. Digests are computed once, when first listed.
 *
 * @example
 * ```ts
 * input.onchange = () => client.setProvider(blobProvider([...input.files]));
 * const provider = blobProvider({ 'notes/today.txt': new Blob(['hi']) });
 * ```
 */
export function blobProvider(
  files: Iterable<BlobLike & { webkitRelativePath?: string }> | Record<string, BlobLike>,
): FileProvider {
  const entries: Array<[string, BlobLike]> =
    Symbol.iterator in files
      ? [...(files as Iterable<BlobLike & { webkitRelativePath?: string }>)].map((file) => [
          file.webkitRelativePath || file.name || 'file',
          file,
        ])
      : Object.entries(files as Record<string, BlobLike>);
  const byPath = new Map<string, BlobLike>();
  for (const [path, blob] of entries) {
    const problem = checkPath(path);
    if (problem) throw new RegistryError('invalid-path', `${JSON.stringify(path)}: ${problem}`);
    if (byPath.has(path)) throw new RegistryError('invalid-files', `${JSON.stringify(path)} is listed twice`);
    byPath.set(path, blob);
  }
  const digests = new Map<string, Promise<string>>();
  const digest = (path: string, blob: BlobLike) => {
    let known = digests.get(path);
    if (!known) digests.set(path, (known = sha256OfSource(blobSource(blob))));
    return known;
  };
  return {
    async list() {
      return Promise.all(
        [...byPath].map(async ([path, blob]) => ({ path, size: blob.size, sha256: await digest(path, blob) })),
      );
    },
    async open(path) {
      const blob = byPath.get(path);
      if (!blob) throw new RegistryError('not-listed', `${JSON.stringify(path)} is not shared`);
      return blobSource(blob, { name: path, sha256: await digest(path, blob) });
    },
  };
}

/**
 * A {@link FileProvider} over bytes in memory, for tests and small files.
 *
 * @example
 * ```ts
 * const provider = memoryProvider({ 'hello.txt': new TextEncoder().encode('hello') });
 * ```
 */
export function memoryProvider(files: Record<string, Uint8Array>): FileProvider {
  return blobProvider(
    Object.fromEntries(
      Object.entries(files).map(([path, bytes]) => [
        path,
        {
          size: bytes.byteLength,
          type: '',
          slice: (start: number, end: number) => ({
            arrayBuffer: async () => bytes.slice(start, end).buffer as ArrayBuffer,
          }),
        } satisfies BlobLike,
      ]),
    ),
  );
}
