/** The tool's version (package.json), written into every config, export sidecar and bench report. */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './utils/paths.js';

export const TOOL_VERSION: string = (JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version: string }).version;
