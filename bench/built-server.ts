/**
 * The benches' server under test as the package ships it: `cli/server.ts`
 * bundled the way `npm run build` compiles it (esbuild, no `keepNames`),
 * dependencies left as imports.
 *
 * Why not import it under tsx: tsx compiles with `keepNames`, so every named
 * closure the project creates gets its `name` redefined, which gives the
 * function its own property array: about 256 B per closure, about 3 KB per
 * CloudLink session, and a `defineProperty` call per closure created, that
 * the published package does not have.
 */
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import type { startServer } from '../cli/server.js';

const ENV = 'SIGNALBOX_BENCH_SERVER';

/**
 * Bundles the server once per run into node_modules/.cache (inside the
 * project, so that its imports resolve) and names the file in the environment,
 * which child processes inherit. The file is removed when this process exits.
 */
export async function bundleServer(): Promise<void> {
  const outfile = fileURLToPath(
    new URL(`../node_modules/.cache/signalbox-bench/server-${process.pid}.mjs`, import.meta.url),
  );
  await build({
    entryPoints: [fileURLToPath(new URL('../cli/server.ts', import.meta.url))],
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'es2022',
    packages: 'external',
    outfile,
    logLevel: 'warning',
  });
  process.env[ENV] = outfile;
  process.once('exit', () => rmSync(outfile, { force: true }));
}

/** `startServer` from the bundle {@link bundleServer} wrote (in this process or its parent). */
export async function builtStartServer(): Promise<typeof startServer> {
  const file = process.env[ENV];
  if (!file) throw new Error(`${ENV} is not set: call bundleServer() first`);
  return ((await import(file)) as { startServer: typeof startServer }).startServer;
}
