/** `mkey-det test`: COCO evaluation of a checkpoint with MMDetection's tools/test.py, supervised like training. */
import { existsSync, mkdirSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { checkInterpreter } from '../../python/interpreter.js';
import { BadInputError, MkeyError } from '../../utils/errors.js';
import { logger } from '../../utils/logger.js';
import type { EvalMetrics } from '../metrics.js';
import { EVENTS_FILE, EventTail, type RunObserver } from './events.js';
import { DEFAULT_TOPOLOGY, cpuWorkerFor, planLaunch, worldSizeOf } from './launch.js';
import { checkMasterPort, checkRun } from './preflight.js';
import { CONFIG_FILE, LOCK_FILE, RUN_FILE, configChangedWarning } from './run-dir.js';
import { lastErrorLine, spawnLogged, superviseChild } from './supervise.js';
import type { RunResult } from './run.js';

export interface TestRequest {
  checkpoint: string;
  config?: string;
  workDir?: string;
  /** GPU processes on this node; 0 or 1 = one process. */
  gpus: number;
  /** CPU processes on this node (gloo), `--nproc-per-node`; 0 or absent = not asked for. */
  cpuProcs?: number;
  /** Skip the key-for-key check of the checkpoint against the config's model. */
  nonStrict: boolean;
  /** Checked `--cfg-options` pairs, handed to tools/test.py (mmengine's DictAction parses the values). */
  cfgOptions: [string, string][];
  /** Told every event of the evaluation (the command's progress view). */
  observer: RunObserver;
  verbose: boolean;
}

/** COCO evaluation (box and mask AP) of a checkpoint with MMDetection's tools/test.py. */
export async function testCheckpoint(req: TestRequest): Promise<RunResult> {
  const started = Date.now();
  const checkpoint = resolve(req.checkpoint);
  if (!existsSync(checkpoint)) {
    throw new BadInputError(`--checkpoint ${JSON.stringify(req.checkpoint)} does not exist`, 'give a .pth file written by mkey-det train (e.g. <work-dir>/epoch_12.pth)');
  }
  // A FIFO or a device would make the reader wait forever: only regular files are opened.
  if (!statSync(checkpoint).isFile()) throw new BadInputError(`--checkpoint ${JSON.stringify(req.checkpoint)} is not a regular file`);
  const configPath = resolve(req.config ?? join(dirname(checkpoint), CONFIG_FILE));
  if (!existsSync(configPath)) {
    throw new BadInputError(`no config for ${basename(checkpoint)}: ${configPath} does not exist`, 'pass --config <config.py>');
  }
  if (!statSync(configPath).isFile()) throw new BadInputError(`--config ${JSON.stringify(configPath)} is not a regular file`);
  const changed = configChangedWarning(req.config ?? checkpoint);
  if (changed) logger.warn(changed);
  const python = await checkInterpreter();
  const workDir = resolve(req.workDir ?? join(dirname(checkpoint), `test-${basename(checkpoint, '.pth')}`));
  // tools/test.py's Runner dumps the config it evaluates into <work-dir>/<its file name>: in a run
  // directory (the checkpoint's own, or another) that replaced the run's config.py.
  if (workDir === dirname(configPath) || existsSync(join(workDir, RUN_FILE)) || existsSync(join(workDir, LOCK_FILE))) {
    throw new BadInputError(
      `--work-dir ${JSON.stringify(req.workDir ?? workDir)} is a run directory: the evaluation would replace its ${CONFIG_FILE}`,
      'leave --work-dir out (the evaluation goes to <checkpoint dir>/test-<name>/) or give a folder of its own',
    );
  }
  const topology = { ...DEFAULT_TOPOLOGY, gpus: req.gpus, cpuProcs: req.cpuProcs ?? 0 };
  await checkMasterPort(topology);
  const { pre, primed } = await checkRun({
    python,
    config: { path: configPath },
    gpus: req.gpus,
    checkpoint: req.nonStrict ? undefined : checkpoint,
    oneProcess: worldSizeOf(topology) === 1,
  });
  let launched: ReturnType<typeof spawnLogged>;
  const logPath = join(workDir, 'mkey-test.log');
  const eventsPath = join(workDir, EVENTS_FILE);
  try {
    mkdirSync(workDir, { recursive: true }); // only once the checkpoint passed
    const overrides = req.cfgOptions.length ? ['--cfg-options', ...req.cfgOptions.map(([k, v]) => `${k}=${v}`)] : [];
    const plan = planLaunch(python, join(pre.tools_dir, 'test.py'), [configPath, checkpoint, '--work-dir', workDir, ...overrides], topology, cpuWorkerFor(topology, pre));
    launched = primed ? primed.start(plan, logPath, 'w', req.verbose) : spawnLogged(python, plan, logPath, 'w', req.verbose);
  } finally {
    primed?.cancel(); // not started (the folder could not be made): it ends without running anything
  }
  const { child, closeLog } = launched;
  const events = new EventTail(eventsPath, logger.warn);
  events.poll();
  let metrics: EvalMetrics | undefined;
  const { exitCode, interrupted } = await superviseChild(child, events, req.observer, (e) => {
    if (e.event === 'test') metrics = e.metrics;
  });
  await closeLog();
  if (interrupted) return { status: 'interrupted', workDir, configPath, seconds: (Date.now() - started) / 1000 };
  if (exitCode !== 0 || !metrics) {
    throw new MkeyError(`evaluation failed: ${lastErrorLine(logPath) ?? `exit code ${exitCode}`}`, { hint: `full log: ${logPath}` });
  }
  return { status: 'completed', workDir, configPath, metrics, checkpoint, seconds: (Date.now() - started) / 1000 };
}
