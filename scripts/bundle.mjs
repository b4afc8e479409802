// The CLI as one ES module, dist/mkey-det.mjs, built from tsc's output (dist/cli.js and what it
// imports, commander, execa and zod included): bin/mkey-det.js starts it. Node 20 resolves, reads
// and links every ES module at start-up one by one: the 376 files (100 of dist/, 276 of
// node_modules/) took 0.74-0.78 s of CPU before a command did anything (`mkey-det --version`, user
// + sys, 2-core machine), the one module 0.21-0.27 s. Every command pays it, and a test suite
// starts the CLI some 400 times.
//
// Left out of the bundle: the packages with native code or files beside them (sharp's and
// onnxruntime-node's binaries, pythonia's interface.py), loaded from node_modules/ when needed,
// and the ONNX worker thread (dist/core/export/onnx-worker.js, a file of its own).
//
//   node scripts/bundle.mjs          (part of `npm run build`, after tsc)
import { build } from 'esbuild';
import { statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const BUNDLE = join(root, 'dist', 'mkey-det.mjs');

await build({
  entryPoints: [join(root, 'dist', 'cli.js')],
  outfile: BUNDLE,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  external: ['sharp', 'onnxruntime-node', 'pythonia'],
  // the CommonJS packages inside (execa's cross-spawn, commander) call require() for Node's own modules
  banner: { js: "import { createRequire as mkeyCreateRequire } from 'node:module';\nconst require = mkeyCreateRequire(import.meta.url);" },
  logLevel: 'warning',
});
console.error(`[bundle] ${BUNDLE} (${(statSync(BUNDLE).size / 1e6).toFixed(1)} MB)`);
