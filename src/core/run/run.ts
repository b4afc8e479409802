/**
 * A supervised training run, whatever the task: check everything, write the config, take the work
 * dir's lock, launch the toolbox's own tools/train.py (MMDetection's or mmpretrain's) on one
 * process, torchrun or srun, watch it, and leave the run directory in a state that says honestly
 * how the run ended. `train` (detection) and `pretrain` (classification) are requests of it.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { processStart } from '../../utils/folder-lock.js';
import { processEnding } from '../../python/bridge.js';
import { checkInterpreter } from '../../python/interpreter.js';
import { BadInputError, ExitCode, MkeyError } from '../../utils/errors.js';
import { logger } from '../../utils/logger.js';
import { shellPath } from '../../utils/paths.js';
import type { AmpDtype, AttnImpl, KeyOrder } from '../experiment.js';
import type { EvalMetrics } from '../metrics.js';
import { EVENTS_FILE, EventTail, type RunObserver } from './events.js';
import { RENDEZVOUS_TIMEOUT_S, cpuWorkerFor, planLaunch, worldSizeOf, type LaunchTopology } from './launch.js';
import { checkMasterPort, checkRun, type Preflight } from './preflight.js';
import type { PrimedTool } from './primed.js';
import { CONFIG_FILE, RUN_FILE, acquireRunLock, fileSha256, lastCheckpoint, checkWorkDir, prepareWorkDir, readRunRecord, unwritableProblem, writeRunRecord, type RunRecord } from './run-dir.js';
import { failedWorkerLine, lastErrorLine, onPath, spawnLogged, superviseChild } from './supervise.js';

/** What every supervised training run needs, whatever toolbox runs its config. */
export interface LaunchOptions {
  workDir: string;
  topology: LaunchTopology;
  resume: boolean;
  force: boolean;
  /** Told every event of the run (the command's progress view). */
  observer: RunObserver;
  /** Stream the child's own output to stderr instead of only to `<work-dir>/mkey-train.log`. */
  verbose: boolean;
}

/**
 * One supervised run of a config: MMDetection's tools/train.py for a detection config,
 * mmpretrain's for a classification one (the config's `default_scope` decides, see the preflight).
 */
export interface RunLaunch extends LaunchOptions {
  /** The command that starts such runs (`train`, `pretrain`): the resume hint names it. */
  command: string;
  /** Renders the config to write (after the work dir passed its checks); unused with `resume`. */
  renderConfig: () => Promise<string>;
  /** Mixed precision the run asks for (checked against the GPUs before anything is written). */
  amp: AmpDtype | false;
  /** `--tf32`: without a CUDA device it changes nothing, which the launcher says. */
  tf32?: boolean;
  /** The run record's `experiment` (the backbone's parameter count is added from the preflight). */
  experiment: Record<string, unknown>;
  /** Files the user handed in (`--pretrained`, `--config`): `--force` never deletes them. */
  inputs?: string[];
}

export interface RunResult {
  status: RunRecord['status'];
  workDir: string;
  configPath: string;
  metrics?: EvalMetrics;
  checkpoint?: string;
  seconds: number;
  message?: string;
}

/** The options of a run record's `experiment` beyond the experiment's identity, only those given. */
export function optionsRecord(o: { attnImpl?: AttnImpl; keyOrder?: KeyOrder; tf32?: boolean; cbMode?: string }): Record<string, unknown> {
  return {
    ...(o.cbMode !== undefined ? { cbMode: o.cbMode } : {}),
    ...(o.attnImpl !== undefined ? { attnImpl: o.attnImpl } : {}),
    ...(o.keyOrder !== undefined ? { keyOrder: o.keyOrder } : {}),
    ...(o.tf32 ? { tf32: true } : {}),
  };
}

/** What an experiment of `train` or `pretrain` hands the launcher besides its config. */
export interface ExperimentRun {
  amp: AmpDtype | false;
  tf32?: boolean;
  attnImpl?: AttnImpl;
  keyOrder?: KeyOrder;
  cbMode?: string;
}

/**
 * A run of an experiment (`train`'s or `pretrain`'s): the launch options of the request, the
 * precision and record options of the experiment, its config and its identity for the record.
 */
export function launchExperiment(
  req: LaunchOptions,
  command: string,
  exp: ExperimentRun,
  run: { renderConfig: () => Promise<string>; identity: Record<string, unknown>; inputs?: string[] },
): Promise<RunResult> {
  return launchRun({ ...req, command, amp: exp.amp, tf32: exp.tf32, renderConfig: run.renderConfig, inputs: run.inputs, experiment: { ...run.identity, ...optionsRecord(exp) } });
}

/** Checks everything, then writes the config and runs it under supervision (train and pretrain). */
export async function launchRun(req: RunLaunch): Promise<RunResult> {
  const started = Date.now();
  const workDir = resolve(req.workDir);
  refuseUnwritable(workDir, req.topology.nodeRank > 0);
  await checkMasterPort(req.topology);
  const python = await checkInterpreter();
  const configPath = join(workDir, CONFIG_FILE);

  // Every check runs before anything is written into the work dir: a refused command leaves it as
  // it was. The new config is checked from a scratch copy. A node of rank > 0 joins the run that
  // node 0 owns (the same work dir on a shared file system): it only checks that it can read it.
  const joining = req.topology.nodeRank > 0;
  if (joining) checkJoinedWorkDir(workDir, req.resume);
  else checkWorkDir(workDir, { resume: req.resume, force: req.force });
  let configText: string | undefined;
  if (req.resume) {
    if (!existsSync(configPath)) throw new BadInputError(`--resume: ${configPath} is missing; cannot resume this run`);
    logger.info(`resuming ${workDir} with its own ${CONFIG_FILE} (backbone and schedule flags are ignored)`);
  } else {
    configText = await req.renderConfig();
  }
  // One process (not a node joining another's run): the check runs in the process that then trains.
  const { pre, primed } = await checkRun({
    python,
    config: configText === undefined ? { path: configPath } : { text: configText },
    gpus: req.topology.gpus,
    oneProcess: !joining && worldSizeOf(req.topology) === 1 && req.topology.launcher === 'none',
  });
  try {
    return await launchChecked(req, { workDir, configPath, configText, python, pre, primed, started, joining });
  } finally {
    primed?.cancel(); // refused after the check: it ends without running anything
  }
}

/** The rest of `launchRun`, once the config passed the preflight. */
async function launchChecked(
  req: RunLaunch,
  ctx: { workDir: string; configPath: string; configText: string | undefined; python: string; pre: Preflight; primed: PrimedTool | undefined; started: number; joining: boolean },
): Promise<RunResult> {
  const { workDir, configPath, configText, python, pre, primed, started, joining } = ctx;
  if (req.amp && pre.cuda_devices === 0) throw new BadInputError(`--amp ${req.amp} needs a CUDA device; this machine has none`, 'train without --amp on CPU');
  if (req.amp && !pre.amp_dtypes.includes(req.amp)) {
    throw new BadInputError(`--amp ${req.amp}: this GPU does not support it (supported: ${pre.amp_dtypes.join(', ')})`, 'use --amp fp16');
  }
  if (req.tf32 && pre.cuda_devices === 0) logger.warn('--tf32: no CUDA device here, so it changes nothing (TF32 is a GPU tensor-core mode)');

  if (req.topology.launcher === 'slurm' && !onPath('srun')) {
    throw new MkeyError('--launcher slurm: srun is not on PATH (Slurm is not installed here, or its module is not loaded)', {
      exitCode: ExitCode.environment,
      hint: 'run inside a Slurm allocation (salloc/sbatch), or use --launcher pytorch',
    });
  }

  if (joining) return joinRun(req, { workDir, configPath, configText, python, pre, started });

  // All checks passed: take the work dir (one live run at most), then write.
  const lock = acquireRunLock(workDir);
  process.once('exit', lock.release);
  try {
    return await runTraining(req, { workDir, configPath, configText, python, pre, primed, started, lock });
  } finally {
    lock.release();
    process.off('exit', lock.release);
  }
}

/** A read-only or missing place to write is refused before anything starts (exit 2), not met as EROFS later. */
function refuseUnwritable(workDir: string, joining: boolean): void {
  const work = unwritableProblem(joining ? join(workDir, 'node-probe') : workDir);
  if (work) throw new BadInputError(`--work-dir ${JSON.stringify(workDir)}: ${work}`, 'give a --work-dir on a writable file system');
  const scratch = existsSync(tmpdir()) ? unwritableProblem(tmpdir()) : `${tmpdir()} does not exist`;
  if (scratch) throw new BadInputError(`the temporary folder (TMPDIR): ${scratch}`, 'point TMPDIR at a writable folder, or unset it');
}

/** The run record's last word; when it cannot be written (a full disk) the run ends with one line saying so. */
function writeFinalRecord(workDir: string, record: RunRecord): void {
  try {
    writeRunRecord(workDir, record);
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new MkeyError(`the run ended ${record.status}, but its status could not be written to ${join(workDir, RUN_FILE)}: ${e.code && !e.message.startsWith(e.code) ? `${e.code} ` : ''}${e.message}`, {
      hint: `report shows it as lost; free space (or fix the folder) and continue it with: mkey-det <train|pretrain> --work-dir ${shellPath(workDir)} --resume`,
    });
  }
}

/** One line before a multi-process launch: how many processes, and for several nodes whom it waits for and how long. */
function announceTopology(topo: LaunchTopology, worldSize: number): void {
  if (worldSize <= 1) return;
  const kind = (topo.cpuProcs ?? 0) > 0 ? 'CPU processes (gloo)' : 'processes';
  if (topo.nnodes <= 1) {
    logger.info(`launching ${worldSize} ${kind} with ${topo.launcher === 'slurm' ? 'srun' : 'torchrun'}`);
    return;
  }
  const wait = topo.rendezvousTimeoutS ?? RENDEZVOUS_TIMEOUT_S;
  logger.info(
    `node ${topo.nodeRank} of ${topo.nnodes}: ${worldSize} ${kind} in all; waiting for the other nodes at ${topo.masterAddr}:${topo.masterPort} (gives up after ${wait} s, MKEY_RENDEZVOUS_TIMEOUT_S)`,
  );
}

/** What a joining node (rank > 0) needs of node 0's work dir: a folder, and for --resume its config. */
function checkJoinedWorkDir(workDir: string, resume: boolean): void {
  if (existsSync(workDir) && !statSync(workDir).isDirectory()) {
    throw new BadInputError(`--work-dir ${JSON.stringify(workDir)} exists and is not a directory`);
  }
  if (resume && !existsSync(join(workDir, CONFIG_FILE))) {
    throw new BadInputError(`--resume: ${join(workDir, CONFIG_FILE)} is missing; node 0's work dir must be reachable from this node (a shared file system)`);
  }
}

/**
 * A node of rank > 0: starts its share of the processes and watches them. Node 0 owns the run
 * directory (lock, config.py, run record, checkpoints: rank 0 writes them); this node writes only
 * its own folder `<work-dir>/node-<rank>/` (its copy of the config and its log) and shows node
 * 0's progress from the shared events file.
 */
async function joinRun(
  req: RunLaunch,
  ctx: { workDir: string; configPath: string; configText: string | undefined; python: string; pre: Preflight; started: number },
): Promise<RunResult> {
  const { workDir, python, pre, started } = ctx;
  const nodeDir = join(workDir, `node-${req.topology.nodeRank}`);
  mkdirSync(nodeDir, { recursive: true });
  let configPath = ctx.configPath;
  if (ctx.configText !== undefined) {
    configPath = join(nodeDir, CONFIG_FILE);
    writeFileSync(configPath, ctx.configText);
  }
  const scriptArgs = [configPath, '--work-dir', workDir, ...(req.resume ? ['--resume'] : [])];
  const plan = planLaunch(python, join(pre.tools_dir, 'train.py'), scriptArgs, req.topology, cpuWorkerFor(req.topology, pre));
  announceTopology(req.topology, plan.worldSize);
  const events = new EventTail(join(workDir, EVENTS_FILE), logger.warn);
  events.poll(); // node 0's earlier events
  const logPath = join(nodeDir, 'mkey-train.log');
  const { child, closeLog } = spawnLogged(python, plan, logPath, 'a', req.verbose);
    let errorMessage: string | undefined;
  let metrics: EvalMetrics | undefined;
  const { exitCode, interrupted } = await superviseChild(child, events, req.observer, (e) => {
    if (e.event === 'val') metrics = e.metrics;
    if (e.event === 'error') errorMessage = e.message;
  });
  await closeLog();
  const result: RunResult = { status: 'completed', workDir, configPath, metrics, seconds: (Date.now() - started) / 1000 };
  if (interrupted) {
    result.status = 'interrupted';
    result.message = `interrupted; node 0 records the run (${join(workDir, RUN_FILE)})`;
  } else if (exitCode !== 0) {
    result.status = 'failed';
    result.message = failedWorkerLine(logPath) ?? errorMessage ?? lastErrorLine(logPath) ?? `exited with code ${exitCode}`;
  }
  return result;
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
  req: RunLaunch,
  ctx: {
    workDir: string;
    configPath: string;
    configText: string | undefined;
    python: string;
    pre: Preflight;
    primed: PrimedTool | undefined;
    started: number;
    lock: ReturnType<typeof acquireRunLock>;
  },
): Promise<RunResult> {
  const { workDir, configPath, configText, python, pre, primed, started, lock } = ctx;
  prepareWorkDir(workDir, { resume: req.resume, force: req.force, keep: req.inputs });
  if (configText !== undefined) {
    keepForeignConfig(configPath);
    writeFileSync(configPath, configText);
  }

  const scriptArgs = [configPath, '--work-dir', workDir, ...(req.resume ? ['--resume'] : [])];
  const plan = planLaunch(python, join(pre.tools_dir, 'train.py'), scriptArgs, req.topology, cpuWorkerFor(req.topology, pre));
  const previous = req.resume ? readRunRecord(workDir) : undefined;
  const record: RunRecord = {
    status: 'running',
    experiment: previous?.experiment ?? { ...req.experiment, backboneParams: pre.backbone_params },
    command: [plan.command, ...plan.args],
    started: new Date(started).toISOString(),
    supervisor: { pid: process.pid, start: processStart(process.pid), host: hostname() },
  };
  writeRunRecord(workDir, record);

  const events = new EventTail(join(workDir, EVENTS_FILE), logger.warn);
  events.poll(); // on --resume, skip the previous launch's events
  const logPath = join(workDir, 'mkey-train.log');
  announceTopology(req.topology, plan.worldSize);
  const { child, closeLog } = primed ? primed.start(plan, logPath, 'a', req.verbose) : spawnLogged(python, plan, logPath, 'a', req.verbose);
  record.pid = child.pid;
  lock.setTrainer(child.pid);
  writeRunRecord(workDir, record);

  let metrics: EvalMetrics | undefined;
  let errorMessage: string | undefined;
    const { exitCode, interrupted, signal } = await superviseChild(child, events, req.observer, (e) => {
    if (e.event === 'val') metrics = e.metrics;
    if (e.event === 'error') errorMessage = e.message;
  });
  await closeLog();

  const checkpoint = lastCheckpoint(workDir);
  const result: RunResult = { status: 'completed', workDir, configPath, metrics, checkpoint, seconds: (Date.now() - started) / 1000 };
  if (interrupted) {
    result.status = 'interrupted';
    result.message = checkpoint
      ? `interrupted; last checkpoint ${checkpoint}. Resume with: mkey-det ${req.command} --work-dir ${shellPath(workDir)} --resume`
      : 'interrupted before the first checkpoint was saved; start again with --force';
  } else if (exitCode !== 0) {
    result.status = 'failed';
    result.message =
      failedWorkerLine(logPath) ??
      errorMessage ??
      // killed from outside (the OOM killer, kill -9): the log's last lines are not why
      (signal ? `the training process (pid ${child.pid}) ${processEnding(undefined, signal)}` : undefined) ??
      lastErrorLine(logPath) ??
      `training exited with code ${exitCode}`;
  }
  writeFinalRecord(workDir, {
    ...record,
    // taken at the end: mmengine's Runner writes its own dump of the config over config.py at start
    ...(existsSync(configPath) ? { configSha256: fileSha256(configPath) } : {}),
    status: result.status,
    finished: new Date().toISOString(),
    ...(result.message ? { message: result.message } : {}),
    ...(metrics ? { metrics } : {}),
  });
  return result;
}

