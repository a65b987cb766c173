import { defineConfig } from 'vitest/config';

/** `npm run test:cluster`: real redis-server and `signalbox serve` processes; needs redis-server installed. */
export default defineConfig({
  test: {
    include: ['test/cluster/**/*.cluster.ts'],
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
