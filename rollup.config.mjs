import { builtinModules } from 'node:module';
import { readFileSync } from 'node:fs';
import esbuild from 'rollup-plugin-esbuild';
import dts from 'rollup-plugin-dts';

const pkg = JSON.parse(readFileSync(new URL('./package.json', import.meta.url), 'utf8'));

/** One entry per public subpath; the key is the file name under dist/. */
const entries = {
  index: 'src/index.ts',
  cloudlink: 'machines/cloudlink/index.ts',
  filedrop: 'machines/filedrop/index.ts',
  workrooms: 'machines/workrooms/index.ts',
  registry: 'machines/registry/index.ts',
  swarm: 'machines/swarm/index.ts',
  memory: 'adapters/memory/index.ts',
  'broadcast-channel': 'adapters/broadcast-channel/index.ts',
  websocket: 'adapters/websocket/index.ts',
  'websocket-node': 'adapters/websocket/node.ts',
  'socket-io': 'adapters/socket-io/index.ts',
  'socket-io-node': 'adapters/socket-io/node.ts',
  fs: 'adapters/fs/index.ts',
  server: 'cli/server.ts',
  testing: 'testing/index.ts',
  cli: 'cli/bin.ts',
};

// Runtime dependencies stay imports: the user's bundler or Node resolves them once.
const deps = [...Object.keys(pkg.dependencies ?? {}), ...Object.keys(pkg.peerDependencies ?? {})];
const external = (id) =>
  id.startsWith('node:') || builtinModules.includes(id) || deps.some((d) => id === d || id.startsWith(`${d}/`));

export default [
  {
    input: entries,
    external,
    plugins: [esbuild({ target: 'es2022' })],
    output: [
      { dir: 'dist', format: 'esm', entryFileNames: '[name].js', chunkFileNames: 'chunks/[name]-[hash].js' },
      { dir: 'dist', format: 'cjs', entryFileNames: '[name].cjs', chunkFileNames: 'chunks/[name]-[hash].cjs' },
    ],
  },
  {
    input: Object.fromEntries(Object.entries(entries).filter(([name]) => name !== 'cli')),
    external,
    plugins: [dts()],
    // The same declarations twice: .d.ts for `import`, .d.cts for `require` (a .d.ts in a
    // "type": "module" package would tell TypeScript that the CommonJS build is ESM).
    output: [
      { dir: 'dist', format: 'esm', entryFileNames: '[name].d.ts', chunkFileNames: 'chunks/[name]-[hash].d.ts' },
      { dir: 'dist', format: 'esm', entryFileNames: '[name].d.cts', chunkFileNames: 'chunks/[name]-[hash].d.cts' },
    ],
  },
];
