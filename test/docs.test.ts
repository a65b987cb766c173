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
