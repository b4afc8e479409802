/**
 * `mkey-det train` and `mkey-det test`: write the config, check it through the bridge, launch
 * MMDetection's own tools/train.py or tools/test.py as a child process, watch the events file,
 * and leave the run directory in a state that says honestly how the run ended.
 */
import { accessSync, constants, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, delimiter, dirname, join, resolve } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { withBridge, PythonError, QUIET_PYTHON_WARNINGS } from '../python/bridge.js';
import { checkInterpreter } from '../python/interpreter.js';
import { BadInputError, ExitCode, MkeyError } from '../utils/errors.js';
import { logger } from '../utils/logger.js';
import { renderMmdetConfig } from './config/render.js';
import { datasetLayout } from './config/dataset-layout.js';
import type { Experiment } from './experiment.js';
import { DEFAULT_TOPOLOGY, planLaunch, type LaunchPlan, type LaunchTopology } from './launch.js';
import { ProgressView, type ProgressMode } from './progress.js';
import {
  CONFIG_FILE,
  EVENTS_FILE,
  EventTail,
  acquireRunLock,
  checkWorkDir,
  prepareWorkDir,
  readRunRecord,
  writeRunRecord,
  type RunEvent,
  type RunRecord,
} from './run-dir.js';

export const TOOL_VERSION: string = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }
).version;

export const AP_KEYS = [
  'coco/bbox_mAP',
  'coco/bbox_mAP_50',
  'coco/bbox_mAP_75',
  'coco/segm_mAP',
  'coco/segm_mAP_50',
  'coco/segm_mAP_75',
] as const;

export interface TrainRequest {
  experiment: Experiment;
  workDir: string;
  topology: LaunchTopology;
  resume: boolean;
  force: boolean;
  progress: ProgressMode;
  /** Stream the child's own output to stderr instead of only to `<work-dir>/mkey-train.log`. */
  verbose: boolean;
}

export interface RunResult {
  status: RunRecord['status'];
  workDir: string;
  configPath: string;
  metrics?: Record<string, number | null>;
  checkpoint?: string;
  seconds: number;
  message?: string;
}

interface Preflight {
  backbone_params: number;
  cuda_devices: number;
  /** Mixed-precision dtypes the visible GPUs support (empty without CUDA). */
  amp_dtypes: string[];
  tools_dir: string;
}

/**
 * Checks a config through one bridge session: builds its backbone, counts the GPUs, and with
 * `checkpoint` also refuses weights that do not fit the config's model (tools/test.py would load
 * them non-strictly).
 */
async function preflight(configPath: string, gpus: number, checkpoint?: string): Promise<Preflight> {
  try {
    return await withBridge(async (b) => {
      const pre = await b.call<Preflight>('runs.preflight', { config_path: configPath, gpus }, { timeoutMs: 300_000 });
      if (checkpoint) await b.call('runs.check_checkpoint', { config_path: configPath, checkpoint_path: checkpoint }, { timeoutMs: 600_000 });
      return pre;
    });
  } catch (err) {
    if (err instanceof PythonError && (err.pythonType === 'ValueError' || err.pythonType === 'RuntimeError')) {
      const message = err.message.replace(/^\w+Error: /, '');
      const mismatch = message.includes('does not fit the config');
      throw new BadInputError(message, mismatch ? 'evaluate it with the config it was trained with (--config), or pass --non-strict to load what fits' : undefined);
    }
    throw err;
  }
}

/**
 * Starts a launch plan as a child process whose combined output goes to `logPath` (and to stderr
 * with `verbose`); mmengine writes its own log too, this one also catches crashes before it starts.
 */
function spawnLogged(python: string, plan: LaunchPlan, logPath: string, flags: 'a' | 'w', verbose: boolean) {
  const log = createWriteStream(logPath, { flags });
  // The guard ends the child when this CLI dies, even by SIGKILL (python_shim/mkey_det/launch_guard.py).
  const guarded = ['-m', 'mkey_det.launch_guard', '--supervisor', String(process.pid), '--', plan.command, ...plan.args];
  const child = execa(python, guarded, {
    reject: false,
    all: true,
    buffer: false,
    env: {
      PYTHONUNBUFFERED: '1',
      PYTHONWARNINGS: process.env.PYTHONWARNINGS ?? QUIET_PYTHON_WARNINGS,
      // OpenMP threads that spin while waiting make every small op crawl as soon as another
      // process shares the cores (measured: a grouped Conv1d step 10 ms alone, 256 ms shared).
      OMP_WAIT_POLICY: process.env.OMP_WAIT_POLICY ?? 'PASSIVE',
    },
    // Its own process group: a terminal's Ctrl-C reaches only this CLI, which forwards exactly one
    // signal (the training stops at the next iteration; a second Ctrl-C stops it at once).
    detached: true,
    stdin: 'ignore',
  });
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);
  void child.finally(() => process.off('exit', killOnExit));
  child.all?.on('data', (d: Buffer) => {
    log.write(d);
    if (verbose) process.stderr.write(d);
  });
  return { child, closeLog: () => new Promise<void>((r) => log.end(r)) };
}

/** Runs a child (training or testing), feeding its events to the view; handles Ctrl-C / SIGTERM. */
async function superviseChild(
  child: ResultPromise,
  events: EventTail,
  view: ProgressView,
  onEvent: (e: RunEvent) => void,
): Promise<{ exitCode: number; interrupted: boolean }> {
  let interrupted = false;
  const forward = (sig: NodeJS.Signals) => () => {
    view.stop();
    logger.warn(
      interrupted
        ? `${sig} again: stopping now`
        : `${sig} received: stopping at the next iteration (checkpoints stay intact; press Ctrl-C again to stop now)`,
    );
    // torchrun forwards the signal to its workers; a plain Python process raises KeyboardInterrupt.
    const second = interrupted;
    interrupted = true;
    child.kill(sig === 'SIGINT' ? 'SIGINT' : 'SIGTERM');
    if (!second) setTimeout(() => child.kill('SIGKILL'), 600_000).unref();
  };
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  const timer = setInterval(() => events.poll().forEach((e) => (onEvent(e), view.onEvent(e))), 500);
  try {
    const res = await child;
    return { exitCode: res.exitCode ?? (interrupted ? ExitCode.interrupted : 1), interrupted };
  } finally {
    clearInterval(timer);
    events.poll().forEach((e) => (onEvent(e), view.onEvent(e)));
    view.stop();
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
  }
}

/** The last line of a Python traceback in the child's log: what went wrong, in one line. */
function lastErrorLine(logPath: string): string | undefined {
  if (!existsSync(logPath)) return undefined;
  const lines = readFileSync(logPath, 'utf8').split('\n').map((l) => l.trim()).filter(Boolean);
  const idx = lines.map((l) => /^[A-Za-z_.]*(Error|Exception|Interrupt)\b.*:?/.test(l)).lastIndexOf(true);
  return idx >= 0 ? lines[idx] : lines.at(-1);
}

function lastCheckpoint(workDir: string): string | undefined {
  const p = join(workDir, 'last_checkpoint');
  if (!existsSync(p)) return undefined;
  return readFileSync(p, 'utf8').trim() || undefined;
}

export async function train(req: TrainRequest): Promise<RunResult> {
  const started = Date.now();
  const workDir = resolve(req.workDir);
  const exp = req.experiment;
  const python = await checkInterpreter();
  const configPath = join(workDir, CONFIG_FILE);

  // Every check runs before anything is written into the work dir: a refused command leaves it as
  // it was. The new config is checked from a scratch copy.
  checkWorkDir(workDir, { resume: req.resume, force: req.force });
  let configText: string | undefined;
  if (req.resume) {
    if (!existsSync(configPath)) throw new BadInputError(`--resume: ${configPath} is missing; cannot resume this run`);
    logger.info(`resuming ${workDir} with its own ${CONFIG_FILE} (backbone and schedule flags are ignored)`);
  } else {
    const layout = await datasetLayout(exp, { check: true });
    configText = renderMmdetConfig(exp, { dataset: layout, toolVersion: TOOL_VERSION });
  }
  const pre = configText === undefined ? await preflight(configPath, req.topology.gpus) : await preflightScratch(configText, req.topology.gpus);
  if (exp.amp && pre.cuda_devices === 0) throw new BadInputError(`--amp ${exp.amp} needs a CUDA device; this machine has none`, 'train without --amp on CPU');
  if (exp.amp && !pre.amp_dtypes.includes(exp.amp)) {
    throw new BadInputError(`--amp ${exp.amp}: this GPU does not support it (supported: ${pre.amp_dtypes.join(', ')})`, 'use --amp fp16');
  }

  if (req.topology.launcher === 'slurm' && !onPath('srun')) {
    throw new MkeyError('--launcher slurm: srun is not on PATH (Slurm is not installed here, or its module is not loaded)', {
      exitCode: ExitCode.environment,
      hint: 'run inside a Slurm allocation (salloc/sbatch), or use --launcher pytorch',
    });
  }

  // All checks passed: take the work dir (one live run at most), then write.
  const lock = acquireRunLock(workDir);
  process.once('exit', lock.release);
  try {
    return await runTraining(req, { workDir, configPath, configText, python, pre, started, lock });
  } finally {
    lock.release();
    process.off('exit', lock.release);
  }
}

/** Preflight of a config not written yet, from a scratch copy outside the work dir. */
async function preflightScratch(configText: string, gpus: number): Promise<Preflight> {
  const scratch = mkdtempSync(join(tmpdir(), 'mkey-preflight-'));
  try {
    writeFileSync(join(scratch, CONFIG_FILE), configText);
    return await preflight(join(scratch, CONFIG_FILE), gpus);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}

function onPath(command: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

/** A config.py the tool did not write is kept: moved aside, and said so. */
function keepForeignConfig(configPath: string): void {
  if (!existsSync(configPath)) return;
  const text = readFileSync(configPath, 'utf8');
  if (text.includes('mkey_experiment')) return; // written by mkey-det: replaced by the new one
  const backup = `${configPath}.user-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  renameSync(configPath, backup);
  logger.warn(`${configPath} was not written by mkey-det: kept as ${backup}`);
}

async function runTraining(
  req: TrainRequest,
  ctx: {
    workDir: string;
    configPath: string;
    configText: string | undefined;
    python: string;
    pre: Preflight;
    started: number;
    lock: ReturnType<typeof acquireRunLock>;
  },
): Promise<RunResult> {
  const { workDir, configPath, configText, python, pre, started, lock } = ctx;
  const exp = req.experiment;
  prepareWorkDir(workDir, { resume: req.resume, force: req.force });
  if (configText !== undefined) {
    keepForeignConfig(configPath);
    writeFileSync(configPath, configText);
  }

  const scriptArgs = [configPath, '--work-dir', workDir, ...(req.resume ? ['--resume'] : [])];
  if (pre.cuda_devices === 0 && (req.topology.launcher !== 'none' || req.topology.nnodes > 1)) {
    // The stock config asks for NCCL, which needs GPUs; CPU processes talk through gloo.
    scriptArgs.push('--cfg-options', 'env_cfg.dist_cfg.backend=gloo');
  }
  const plan = planLaunch(python, join(pre.tools_dir, 'train.py'), scriptArgs, req.topology);
  const previous = req.resume ? readRunRecord(workDir) : undefined;
  const record: RunRecord = {
    status: 'running',
    experiment: previous?.experiment ?? {
      backbone: exp.backbone.name,
      keyType: exp.backbone.keyType,
      charts: exp.charts,
      schedule: exp.schedule,
      data: exp.data,
      batchSize: exp.batchSize,
      seed: exp.seed,
      backboneParams: pre.backbone_params,
    },
    command: [plan.command, ...plan.args],
    started: new Date(started).toISOString(),
  };
  writeRunRecord(workDir, record);

  const events = new EventTail(join(workDir, EVENTS_FILE));
  events.poll(); // on --resume, skip the previous launch's events
  const logPath = join(workDir, 'mkey-train.log');
  const { child, closeLog } = spawnLogged(python, plan, logPath, 'a', req.verbose);
  record.pid = child.pid;
  lock.setTrainer(child.pid);
  writeRunRecord(workDir, record);

  let metrics: Record<string, number | null> | undefined;
  let errorMessage: string | undefined;
  const view = new ProgressView(req.progress, logger.info);
  const { exitCode, interrupted } = await superviseChild(child, events, view, (e) => {
    if (e.event === 'val') metrics = e.metrics as Record<string, number | null>;
    if (e.event === 'error') errorMessage = String(e.message);
  });
  await closeLog();

  const checkpoint = lastCheckpoint(workDir);
  const result: RunResult = { status: 'completed', workDir, configPath, metrics, checkpoint, seconds: (Date.now() - started) / 1000 };
  if (interrupted) {
    result.status = 'interrupted';
    result.message = checkpoint
      ? `interrupted; last checkpoint ${checkpoint}. Resume with: mkey-det train --work-dir ${workDir} --resume`
      : 'interrupted before the first checkpoint was saved; start again with --force';
  } else if (exitCode !== 0) {
    result.status = 'failed';
    result.message = errorMessage ?? lastErrorLine(logPath) ?? `training exited with code ${exitCode}`;
  }
  writeRunRecord(workDir, {
    ...record,
    status: result.status,
    finished: new Date().toISOString(),
    ...(result.message ? { message: result.message } : {}),
    ...(metrics ? { metrics } : {}),
  });
  return result;
}

export interface TestRequest {
  checkpoint: string;
  config?: string;
  workDir?: string;
  /** Processes (GPUs) on this node; 0 or 1 = one process. */
  gpus: number;
  /** Skip the key-for-key check of the checkpoint against the config's model. */
  nonStrict: boolean;
  progress: ProgressMode;
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
  const python = await checkInterpreter();
  const workDir = resolve(req.workDir ?? join(dirname(checkpoint), `test-${basename(checkpoint, '.pth')}`));
  const pre = await preflight(configPath, req.gpus, req.nonStrict ? undefined : checkpoint);
  mkdirSync(workDir, { recursive: true }); // only once the checkpoint passed
  const plan = planLaunch(python, join(pre.tools_dir, 'test.py'), [configPath, checkpoint, '--work-dir', workDir], {
    ...DEFAULT_TOPOLOGY,
    gpus: req.gpus,
  });
  const logPath = join(workDir, 'mkey-test.log');
  const eventsPath = join(workDir, EVENTS_FILE);
  const events = new EventTail(eventsPath);
  events.poll();
  const { child, closeLog } = spawnLogged(python, plan, logPath, 'w', req.verbose);
  let metrics: Record<string, number | null> | undefined;
  const view = new ProgressView(req.progress === 'bar' ? 'lines' : req.progress, logger.info);
  const { exitCode, interrupted } = await superviseChild(child, events, view, (e) => {
    if (e.event === 'test') metrics = e.metrics as Record<string, number | null>;
  });
  await closeLog();
  if (interrupted) return { status: 'interrupted', workDir, configPath, seconds: (Date.now() - started) / 1000 };
  if (exitCode !== 0 || !metrics) {
    throw new MkeyError(`evaluation failed: ${lastErrorLine(logPath) ?? `exit code ${exitCode}`}`, { hint: `full log: ${logPath}` });
  }
  return { status: 'completed', workDir, configPath, metrics, checkpoint, seconds: (Date.now() - started) / 1000 };
}
