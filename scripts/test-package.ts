/**
 * The package as a user gets it (`npm run test:package`, after `npm run build`):
 *
 * 1. `npm pack` (scripts skipped: dist/ is already built) and unpack;
 * 2. publint and `@arethetypeswrong/cli` (profile node16: node10 resolution
 *    predates `exports` and cannot see subpaths) on the tarball;
 * 3. a fresh app installs the tarball (`npm install --prefer-offline`, so the
 *    npm cache serves what it can) and typechecks, with this project's
 *    TypeScript and `skipLibCheck: false`, a file importing every entry point,
 *    once as ESM (.mts, `import`) and once as CommonJS (.cts, `require`), and a
 *    browser file (lib DOM, bundler resolution) using `memorySink().bytes()`
 *    with `Blob` and `crypto.subtle`;
 * 4. runs the compiled ESM and CommonJS files under Node, and the `signalbox`
 *    bin of the installed package.
 *
 * Exits non-zero on the first failure. `--keep` leaves the temp app in place.
 */
import { execFileSync, type ExecFileSyncOptions } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const root = resolve(import.meta.dirname, '..');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string;
  version: string;
  exports: Record<string, unknown>;
  devDependencies: Record<string, string>;
};
const keep = process.argv.includes('--keep');
const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
const bin = (name: string) => join(root, 'node_modules', '.bin', name);

function run(file: string, args: string[], options: ExecFileSyncOptions = {}): string {
  console.log(`$ ${[file, ...args].join(' ')}`);
  try {
    return String(execFileSync(file, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...options }));
  } catch (error) {
    const { stdout, stderr } = error as { stdout?: string; stderr?: string };
    console.error(`${stdout ?? ''}${stderr ?? ''}`);
    throw new Error(`failed: ${[file, ...args].join(' ')}`);
  }
}

/** Every public subpath as an import specifier: `signalbox`, `signalbox/cloudlink`, … */
const specifiers = Object.keys(pkg.exports)
  .filter((key) => key !== './package.json')
  .map((key) => (key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`));

const work = mkdtempSync(join(tmpdir(), 'signalbox-package-'));
try {
  const packed = JSON.parse(
    run(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', work], { cwd: root }),
  ) as Array<{ filename: string; files: Array<{ path: string }> }>;
  const tarball = join(work, packed[0]!.filename);
  const files = packed[0]!.files.map((f) => f.path);
  for (const required of ['dist/index.js', 'dist/index.cjs', 'dist/index.d.ts', 'dist/index.d.cts', 'dist/cli.js'])
    if (!files.includes(required)) throw new Error(`the tarball lacks ${required}: run \`npm run build\` first`);
  console.log(`${tarball}: ${files.length} files`);

  const unpacked = join(work, 'unpacked');
  mkdirSync(unpacked);
  run('tar', ['-xzf', tarball, '-C', unpacked]);
  console.log(run(bin('publint'), [join(unpacked, 'package'), '--pack', 'false', '--strict']));
  console.log(run(bin('attw'), [tarball, '--profile', 'node16', '--format', 'table-flipped']));

  const app = join(work, 'app');
  mkdirSync(app);
  writeFileSync(join(app, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  run(
    npm,
    [
      'install',
      '--prefer-offline',
      '--no-audit',
      '--no-fund',
      '--no-save',
      tarball,
      `@types/node@${pkg.devDependencies['@types/node']}`,
    ],
    { cwd: app },
  );

  const names = specifiers.map((_, i) => `m${i}`);
  const table = `{ ${specifiers.map((s, i) => `'${s}': ${names[i]}`).join(', ')} }`;
  const check = `
for (const [name, module] of Object.entries(modules))
  if (Object.keys(module).length === 0) throw new Error(name + ' exports nothing');
const sink = memorySink();
sink.write(new Uint8Array([1, 2, 3]));
sink.close();
if (sink.bytes().byteLength !== 3) throw new Error('memorySink lost bytes');
console.log(JSON.stringify({ format: FORMAT, entries: Object.keys(modules).length }));
`;
  writeFileSync(
    join(app, 'esm.mts'),
    specifiers.map((s, i) => `import * as ${names[i]} from '${s}';\n`).join('') +
      `import { memorySink } from '${pkg.name}/filedrop';\nconst FORMAT = 'esm';\nconst modules = ${table};\n${check}`,
  );
  writeFileSync(
    join(app, 'cjs.cts'),
    specifiers.map((s, i) => `import ${names[i]} = require('${s}');\n`).join('') +
      `const { memorySink } = ${names[specifiers.indexOf(`${pkg.name}/filedrop`)]};\nconst FORMAT = 'cjs';\nconst modules = ${table};\n${check}`,
  );
  const strict = { strict: true, skipLibCheck: false, noEmitOnError: true, target: 'es2022' };
  writeFileSync(
    join(app, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: { ...strict, module: 'nodenext', lib: ['es2023'], types: ['node'], outDir: 'out' },
      files: ['esm.mts', 'cjs.cts'],
    }),
  );
  // A browser app: DOM types, a bundler's resolution, no Node types.
  writeFileSync(
    join(app, 'browser.ts'),
    `import { memorySink } from '${pkg.name}/filedrop';
import { cloudlinkPeer } from '${pkg.name}/cloudlink';
import { fromRtc, fromTransport } from '${pkg.name}';
import { webSocketTransport } from '${pkg.name}/websocket';
import { broadcastChannelTransport } from '${pkg.name}/broadcast-channel';
export const sink = memorySink();
export const blob = new Blob([sink.bytes()]);
export const digest: Promise<ArrayBuffer> = crypto.subtle.digest('SHA-256', sink.bytes());
export const used = [cloudlinkPeer, fromRtc, fromTransport, webSocketTransport, broadcastChannelTransport];
`,
  );
  writeFileSync(
    join(app, 'tsconfig.browser.json'),
    JSON.stringify({
      compilerOptions: {
        ...strict,
        module: 'esnext',
        moduleResolution: 'bundler',
        lib: ['es2023', 'dom'],
        types: [],
        noEmit: true,
      },
      files: ['browser.ts'],
    }),
  );
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: app });
  run(process.execPath, [tsc, '-p', 'tsconfig.browser.json'], { cwd: app });
  console.log(run(process.execPath, ['out/esm.mjs'], { cwd: app }).trim());
  console.log(run(process.execPath, ['out/cjs.cjs'], { cwd: app }).trim());
  const version = run(join(app, 'node_modules', '.bin', 'signalbox'), ['--version'], { cwd: app }).trim();
  if (version !== pkg.version) throw new Error(`signalbox --version printed "${version}", expected ${pkg.version}`);
  console.log(`signalbox --version: ${version}`);
  console.log(`package OK: ${specifiers.length} entry points, ESM and CommonJS, skipLibCheck: false`);
} catch (error) {
  console.error(`test:package: ${(error as Error).message}`);
  process.exitCode = 1;
} finally {
  if (keep) console.log(`kept ${work}`);
  else rmSync(work, { recursive: true, force: true });
}
