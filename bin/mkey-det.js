#!/usr/bin/env node
// Entry point of the `mkey-det` command: runs the built CLI (`npm run build`): dist/mkey-det.mjs,
// the whole CLI in one module (scripts/bundle.mjs: a third of the start-up), or tsc's dist/cli.js
// where that is newer (a `tsc` run alone since the last build: its output is the current code).
import { existsSync, statSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const modules = new URL('../dist/cli.js', import.meta.url);
const bundle = new URL('../dist/mkey-det.mjs', import.meta.url);
if (!existsSync(fileURLToPath(modules))) {
  console.error('mkey-det: dist/cli.js is missing; run `npm run build` (or `npm run setup`) in the checkout first');
  process.exit(1);
}
const mtime = (url) => statSync(fileURLToPath(url)).mtimeMs;
const current = existsSync(fileURLToPath(bundle)) && mtime(bundle) >= mtime(modules) ? bundle : modules;
await import(current.href);
