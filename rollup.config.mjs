import { builtinModules } from 'node:module';
import { readFileSync, rmSync } from 'node:fs';
import esbuild from 'rollup-plugin-esbuild';
import dts from 'rollup-plugin-dts';

// A clean dist/: chunk names carry hashes, and a stale chunk would ship in the package.
rmSync(new URL('./dist', import.meta.url), { recursive: true, force: true });

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

/**
 * Marks the top-level machine and actor-logic definitions as pure
 * (`/*#__PURE__*\/`), so an app's bundler drops the ones it does not import:
 * `setup(...).createMachine(...)` is a call, and a bundler keeps an unused
 * call unless told it has no side effects. Done here, at build time, so no
 * machine file has to remember it; `npm run size` fails when it stops working.
 */
function pureDefinitions() {
  const definition =
    /^((?:export )?const \w+(?:: [^=\n]+)? = )((?:setup|createMachine|from(?:Callback|Promise|Observable|Transition)|\w+\.createMachine)\b)/gm;
  return {
    name: 'pure-definitions',
    transform(code, id) {
      if (!/\.tsx?$/.test(id) || id.includes('node_modules')) return null;
      const marked = code.replace(definition, '$1/*#__PURE__*/ $2');
      return marked === code ? null : { code: marked, map: null };
    },
  };
}

export default [
  {
    input: entries,
    external,
    plugins: [pureDefinitions(), esbuild({ target: 'es2022' })],
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
