import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['out/**', 'dist/**', 'node_modules/**', 'scripts/**', '**/*.generated.ts'] },
  ...tseslint.configs.recommended,
  // Formatting is prettier's (npm run format); lint keeps to what it cannot see.
  prettier,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_' }],
      '@typescript-eslint/no-require-imports': 'off',
      // A body that spans lines gets braces; a one-line `if (x) return;` may stay as it is.
      curly: ['error', 'multi-line'],
    },
  },
  {
    // The engine is pure: it runs in Node, the extension host, workers and the webview alike.
    files: ['src/engine/**/*.ts'],
    languageOptions: { globals: {} },
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            'vscode',
            'fs',
            'node:fs',
            'fs/promises',
            'node:fs/promises',
            'path',
            'node:path',
            'child_process',
            'os',
          ].map((name) => ({ name, message: 'src/engine must stay pure: read bytes through a ByteSource.' })),
        },
      ],
      'no-restricted-globals': ['error', 'window', 'document', 'navigator', 'require', 'process', 'Buffer'],
    },
  },
);
