#!/usr/bin/env node
import { existsSync } from 'node:fs';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(cli)) {
  // A checkout where the build has not run (npm ci and npm install run it through "prepare").
  process.stderr.write('signalbox: dist/cli.js is missing: run `npm run build` in the signalbox checkout first\n');
  process.exit(1);
}
await import(cli.href);
