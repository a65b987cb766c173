import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { diagrams, render } from '../scripts/docs.js';

describe('protocol READMEs', () => {
  for (const [protocol, { file, machines }] of Object.entries(diagrams)) {
    it(`${protocol}: diagrams match the machine definitions (run \`npm run docs\` to update)`, () => {
      const text = readFileSync(file, 'utf8');
      for (const name of Object.keys(machines)) expect(text).toContain(`<!-- diagram:${name} -->`);
      expect(render(text, machines)).toBe(text);
    });
  }
});

describe('README', () => {
  it('lists every error code, and only those', async () => {
    const { ErrorCode } = await import('../src/errors.js');
    const listed = [...readFileSync('README.md', 'utf8').matchAll(/^\| `(ERR_[A-Z_]+)`/gm)].map((m) => m[1]);
    expect(listed.sort()).toEqual(Object.values(ErrorCode).sort());
  });
});

/** The README's ```ts blocks that are whole modules (their first code line is an import). */
function readmeModules(): Array<{ line: number; code: string }> {
  const text = readFileSync('README.md', 'utf8');
  const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => ({
    line: text.slice(0, m.index).split('\n').length + 1,
    code: m[1]!,
  }));
  return blocks.filter(({ code }) => /^import /.test(code.replace(/^(\s*\/\/.*\n)*/, '')));
}

/** `signalbox/...` → the source file the build makes that entry from (rollup.config.mjs, package.json exports). */
function entryPaths(): Record<string, string[]> {
  const config = readFileSync('rollup.config.mjs', 'utf8');
  const sources = Object.fromEntries(
    [...config.matchAll(/^ {2}'?([\w-]+)'?: '([\w/.-]+\.ts)',$/gm)].map((m) => [m[1]!, m[2]!]),
  );
  const { exports } = JSON.parse(readFileSync('package.json', 'utf8')) as {
    exports: Record<string, string | { import: { default: string } }>;
  };
  const paths: Record<string, string[]> = {};
  for (const [key, target] of Object.entries(exports)) {
    if (typeof target === 'string') continue;
    const name = /^\.\/dist\/(.+)\.js$/.exec(target.import.default)![1]!;
    paths[key === '.' ? 'signalbox' : `signalbox/${key.slice(2)}`] = [sources[name]!];
  }
  return paths;
}

describe("README's TypeScript", () => {
  it('finds the snippets and every entry point', () => {
    expect(readmeModules().length).toBeGreaterThanOrEqual(8);
    const paths = entryPaths();
    expect(Object.keys(paths)).toContain('signalbox/websocket/node');
    for (const [specifier, [source]] of Object.entries(paths)) expect(source, specifier).toMatch(/\.ts$/);
  });

  it('typechecks every snippet that is a whole module, as written (strict, DOM and Node types)', async () => {
    const ts = (await import('typescript')).default;
    const root = process.cwd();
    const snippets = readmeModules();
    const files = new Map(snippets.map(({ line, code }) => [`${root}/README.md.line-${line}.ts`, code]));
    const options: import('typescript').CompilerOptions = {
      strict: true,
      noEmit: true,
      target: ts.ScriptTarget.ES2022,
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      lib: ['lib.es2023.d.ts', 'lib.dom.d.ts'],
      types: ['node'],
      skipLibCheck: true,
      baseUrl: root,
      paths: entryPaths(),
    };
    const host = ts.createCompilerHost(options);
    const { getSourceFile, fileExists, readFile } = host;
    host.fileExists = (name) => files.has(name) || fileExists.call(host, name);
    host.readFile = (name) => files.get(name) ?? readFile.call(host, name);
    host.getSourceFile = (name, version, ...rest) =>
      files.has(name)
        ? ts.createSourceFile(name, files.get(name)!, version)
        : getSourceFile.call(host, name, version, ...rest);
    const program = ts.createProgram([...files.keys()], options, host);
    const problems = ts
      .getPreEmitDiagnostics(program)
      .filter((d) => d.file && files.has(d.file.fileName))
      .map((d) => {
        const { line } = d.file!.getLineAndCharacterOfPosition(d.start ?? 0);
        const at = Number(/line-(\d+)/.exec(d.file!.fileName)![1]) + line;
        return `README.md:${at}: ${ts.flattenDiagnosticMessageText(d.messageText, '\n')}`;
      });
    expect(problems).toEqual([]);
  }, 180_000);
});
