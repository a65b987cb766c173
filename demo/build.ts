/**
 * Builds the demo and the inspector page (`npm run build`, or `tsx
 * demo/build.ts [outDir]`): the pages and the stylesheet copied, the scripts
 * bundled by esbuild with the library from source, into dist/demo/, which
 * `signalbox serve` serves.
 */
import { copyFile, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

/** Where `signalbox serve` looks for the demo. */
export const DEMO_OUT = here('../dist/demo/');

/** Builds the demo into `out`. */
export async function buildDemo(out = DEMO_OUT): Promise<void> {
  await mkdir(out, { recursive: true });
  await build({
    entryPoints: { app: here('./app.ts'), inspect: here('./inspect.ts') },
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    minify: true,
    sourcemap: true,
    outdir: out,
    logLevel: 'warning',
  });
  for (const file of ['index.html', 'inspect.html', 'style.css']) await copyFile(here(`./${file}`), join(out, file));
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) await buildDemo(process.argv[2]);
