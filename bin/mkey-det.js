#!/usr/bin/env node
// Entry point of the `mkey-det` command: runs the compiled CLI in dist/ (built by `npm run build`).
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const cli = new URL('../dist/cli.js', import.meta.url);
if (!existsSync(fileURLToPath(cli))) {
  console.error('mkey-det: dist/cli.js is missing; run `npm run build` (or `npm run setup`) in the checkout first');
  process.exit(1);
}
await import(cli.href);
