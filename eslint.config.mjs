import js from '@eslint/js';
import globals from 'globals';
import tseslint from 'typescript-eslint';

/** The protocol folders under machines/: none may import another. */
const protocols = ['cloudlink', 'filedrop', 'workrooms', 'registry', 'swarm'];

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'coverage/', 'examples/*/dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  { files: ['**/*.mjs'], languageOptions: { globals: globals.node } },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  // Machines are sans-IO: no transports, sockets, WebRTC stacks or Node built-ins.
  // And no protocol folder imports another: each may import only itself,
  // machines/transfer/ (the shared file data plane) and src/.
  ...[...protocols, 'transfer'].map((folder) => ({
    files: [`machines/${folder}/**/*.ts`],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/adapters/**', 'ws', 'werift', 'node-datachannel', 'socket.io*', 'node:*'],
              message: 'machines/ must stay free of I/O: take it as an actor via .provide().',
            },
            {
              group: protocols.filter((other) => other !== folder).map((other) => `**/${other}/**`),
              message: `machines/${folder}/ may import only itself, machines/transfer/ and src/: move what protocols share to one of those.`,
            },
          ],
        },
      ],
    },
  })),
  {
    // An `event as …` cast lets an action wired to the wrong transition compile and fail at run time.
    files: ['machines/**/*.ts'],
    rules: {
      'no-restricted-syntax': [
        'error',
        {
          selector: "TSAsExpression[expression.type='Identifier'][expression.name='event']",
          message:
            "Do not cast `event` in a machine: narrow it with assertEvent(event, 'type'), or pass its fields as typed action/guard `params` computed at the transition.",
        },
        {
          selector: "TSTypeAssertion[expression.type='Identifier'][expression.name='event']",
          message:
            "Do not cast `event` in a machine: narrow it with assertEvent(event, 'type'), or pass its fields as typed action/guard `params` computed at the transition.",
        },
      ],
    },
  },
  {
    files: ['src/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            {
              group: ['**/adapters/**', '**/machines/**'],
              message: 'src/ is the core: arrows point machines -> src and adapters -> src.',
            },
          ],
        },
      ],
    },
  },
);
