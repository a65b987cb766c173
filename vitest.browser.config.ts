import { defineConfig } from 'vitest/config';

/**
 * `npm run test:browser`: the tests that drive a real Chromium (Debian's
 * `chromium`, through playwright-core). Kept apart so `npm test` needs no
 * browser. One file at a time: each starts a browser, and CI has two cores.
 */
export default defineConfig({
  test: {
    include: ['test/browser/**/*.test.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    fileParallelism: false,
  },
});
