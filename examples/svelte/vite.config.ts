import { svelte } from '@sveltejs/vite-plugin-svelte';
import { defineConfig } from 'vite';

export default defineConfig({
  plugins: [svelte()],
  // signalbox is linked from ../..: one xstate for it and for @xstate/svelte.
  resolve: { dedupe: ['xstate'] },
  // `npm run dev` talks to a signalbox server on :8080 (`npm start` at the top).
  server: { proxy: { '/filedrop': { target: 'ws://127.0.0.1:8080', ws: true } } },
});
