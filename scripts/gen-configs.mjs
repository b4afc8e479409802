#!/usr/bin/env node
// Rewrites configs/ (Table 3's two rows) from the generator in src/core/config/table3.ts.
// Run `npm run build` first (npm run configs does).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { TABLE3_CONFIGS, renderTable3Config } from '../dist/core/config/table3.js';
import { TOOL_VERSION } from '../dist/version.js';

const dir = new URL('../configs/', import.meta.url).pathname;
for (const entry of TABLE3_CONFIGS) {
  writeFileSync(join(dir, entry.file), renderTable3Config(entry, TOOL_VERSION));
  console.log(`wrote configs/${entry.file}`);
}
