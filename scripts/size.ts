/**
 * Browser bundle budgets (`npm run size`, after `npm run build`): each
 * browser role's typical import from dist/, bundled by esbuild as an app
 * would (minified, for the browser, xstate and every other dependency
 * included), then gzipped. Prints each figure; exits 1 when one is over its
 * budget. A budget is a ceiling a little above today's figure, so growth is a
 * decision; the CloudLink peer's is PeerJS's bundle (24,200 B).
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const root = resolve(import.meta.dirname, '..');
const dist = (entry: string) => JSON.stringify(join(root, 'dist', `${entry}.js`));

/** What a page imports for each role: entry file under dist/ → names. */
interface Role {
  imports: Record<string, string[]>;
  /** Ceiling in bytes, minified and gzipped. */
  budget: number;
  /** Machines (by `id`) that must not be in it: the other roles, the server's session. */
  without: string[];
}

const signalling = { index: ['fromRtc', 'fromTransport'], websocket: ['webSocketTransport'] };

export const roles: Record<string, Role> = {
  'cloudlink peer': {
    imports: { cloudlink: ['cloudlinkPeer'], ...signalling },
    budget: 24_200,
    without: ['cloudlinkHost', 'cloudlinkSession'],
  },
  'cloudlink host': {
    imports: { cloudlink: ['cloudlinkHost'], ...signalling },
    budget: 24_200,
    without: ['cloudlinkPeer', 'cloudlinkSession'],
  },
  'filedrop sender': {
    imports: { filedrop: ['filedropSender', 'blobSource'], ...signalling },
    budget: 31_000,
    without: ['filedropSession'],
  },
  'filedrop receiver': {
    imports: { filedrop: ['filedropReceiver', 'memorySink'], ...signalling },
    budget: 31_500,
    without: ['filedropSession'],
  },
  'workrooms client': {
    imports: { workrooms: ['createWorkroomsClient'], ...signalling },
    budget: 28_000,
    without: ['workroomsSession'],
  },
  'registry client': { imports: { registry: ['registryClient'], ...signalling }, budget: 34_500, without: [] },
  'swarm peer': { imports: { swarm: ['swarmPeer'], ...signalling }, budget: 33_500, without: ['swarmSession'] },
};

/** The role's bundle, minified and gzipped: its size in bytes, and the names it kept. */
export async function measure(role: Role): Promise<{ raw: number; gzip: number; text: string }> {
  const lines = Object.entries(role.imports).map(
    ([entry, names]) => `export { ${names.join(', ')} } from ${dist(entry)};`,
  );
  const result = await build({
    stdin: { contents: lines.join('\n'), resolveDir: root, loader: 'js' },
    bundle: true,
    minify: true,
    format: 'esm',
    platform: 'browser',
    target: 'es2022',
    write: false,
    logLevel: 'silent',
  });
  const bytes = result.outputFiles[0]!.contents;
  return {
    raw: bytes.byteLength,
    gzip: gzipSync(bytes, { level: 9 }).byteLength,
    text: new TextDecoder().decode(bytes),
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  readFileSync(join(root, 'dist', 'index.js')); // fails with ENOENT when dist/ is not built
  let over = 0;
  for (const [name, role] of Object.entries(roles)) {
    const { raw, gzip, text } = await measure(role);
    const stowaways = role.without.filter((id) => text.includes(`id:"${id}"`));
    const ok = gzip <= role.budget && stowaways.length === 0;
    if (!ok) over++;
    console.log(
      `${ok ? 'ok  ' : 'OVER'} ${name.padEnd(18)} ${gzip.toLocaleString('en').padStart(7)} B min+gz` +
        ` (budget ${role.budget.toLocaleString('en')}; ${raw.toLocaleString('en')} B min)` +
        (stowaways.length > 0 ? `; must not contain ${stowaways.join(', ')}` : ''),
    );
  }
  if (over > 0) {
    console.error(`${over} bundle(s) over budget or carrying what they should not`);
    process.exitCode = 1;
  }
}
