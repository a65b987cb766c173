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
 * Makes the top-level machine and actor-logic definitions droppable, so an
 * app's bundler leaves out the ones it does not import. A
 * `/*#__PURE__*\/` mark on `setup(...).createMachine(...)` is not enough:
 * a bundler still keeps every argument that might have a side effect (a
 * spread `...shared`, a helper call building part of the config), and with
 * it the rest of the machine. So each such definition becomes a pure,
 * argument-free call of an arrow function, which a bundler drops whole when
 * its result is unused. Done here, on esbuild's JavaScript output, so no
 * machine file has to remember it; `npm run size` fails when it stops working.
 */
function pureDefinitions() {
  const roots = /^(?:setup|createMachine|from(?:Callback|Promise|Observable|Transition))$/;
  /** True for `setup(…)`, `setup(…).createMachine(…)`, `x.createMachine(…)`, `fromCallback(…)`, … */
  const isDefinition = (node) => {
    if (node?.type !== 'CallExpression') return false;
    const callee = node.callee;
    if (callee.type === 'Identifier') return roots.test(callee.name);
    return callee.type === 'MemberExpression' && !callee.computed && callee.property.name === 'createMachine';
  };
  return {
    name: 'pure-definitions',
    transform(code, id) {
      if (!/\.tsx?$/.test(id) || id.includes('node_modules') || !/createMachine|from[A-Z]/.test(code)) return null;
      const inits = [];
      for (const node of this.parse(code).body) {
        const declaration = node.type === 'ExportNamedDeclaration' ? node.declaration : node;
        if (declaration?.type !== 'VariableDeclaration') continue;
        for (const { init } of declaration.declarations) if (isDefinition(init)) inits.push(init);
      }
      if (inits.length === 0) return null;
      let marked = code;
      for (const { start, end } of inits.reverse())
        marked = `${marked.slice(0, start)}/*#__PURE__*/ (() => ${marked.slice(start, end)})()${marked.slice(end)}`;
      return { code: marked, map: null };
    },
  };
}

export default [
  {
    input: entries,
    external,
    plugins: [esbuild({ target: 'es2022' }), pureDefinitions()],
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
