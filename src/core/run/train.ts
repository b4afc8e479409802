/**
 * `mkey-det train` and `pretrain`: write the config (after every check passed), take the work dir's
 * lock, launch the toolbox's own tools/train.py (MMDetection's or mmpretrain's) under supervision,
 * and leave the run directory in a state that says honestly how the run ended.
 */
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { asBadInput, withBridge } from '../../python/bridge.js';
import { checkInterpreter } from '../../python/interpreter.js';
import { BadInputError, ExitCode, MkeyError } from '../../utils/errors.js';
import { logger } from '../../utils/logger.js';
import { TOOL_VERSION } from '../../version.js';
import { renderMmdetConfig } from '../config/render.js';
import { withInheritedLists } from '../config/inherited-lists.js';
import { datasetLayout } from '../config/dataset-layout.js';
import { experimentCharts, type AmpDtype, type AttnImpl, type Experiment, type KeyOrder } from '../experiment.js';
import type { CocoMetrics } from '../metrics.js';
import { EVENTS_FILE, EventTail } from './events.js';
import { planLaunch, type LaunchTopology } from './launch.js';
import { preflight, preflightScratch, type Preflight } from './preflight.js';
import { ProgressView, type ProgressMode } from './progress.js';
import { CONFIG_FILE, acquireRunLock, lastCheckpoint, checkWorkDir, prepareWorkDir, readRunRecord, writeRunRecord, type RunRecord } from './run-dir.js';
import { lastErrorLine, onPath, spawnLogged, superviseChild } from './supervise.js';

/** What every supervised training run needs, whatever toolbox runs its config. */
export interface LaunchOptions {
  workDir: string;
  topology: LaunchTopology;
  resume: boolean;
  force: boolean;
  progress: ProgressMode;
  /** Stream the child's own output to stderr instead of only to `<work-dir>/mkey-train.log`. */
  verbose: boolean;
}

export interface TrainRequest extends LaunchOptions {
  experiment: Experiment;
}

/**
 * One supervised run of a config: MMDetection's tools/train.py for a detection config,
 * mmpretrain's for a classification one (the config's `default_scope` decides, see the preflight).
 */
export interface RunLaunch extends LaunchOptions {
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
  metrics?: CocoMetrics;
  checkpoint?: string;
  seconds: number;
  message?: string;
}

/** `mkey-det train`: a detection run of an experiment (Mask R-CNN + FPN, MMDetection). */
export async function train(req: TrainRequest): Promise<RunResult> {
  const exp = req.experiment;
  return launchRun({
    ...req,
    amp: exp.amp,
    tf32: exp.tf32,
    inputs: exp.pretrained ? [exp.pretrained] : [],
    renderConfig: async () => {
      const dataset = await datasetLayout(exp, { check: true });
      return withInheritedLists((inherited) => renderMmdetConfig(exp, { dataset, toolVersion: TOOL_VERSION, inherited }));
    },
    experiment: {
      backbone: exp.backbone.name,
      keyType: exp.backbone.keyType,
      charts: experimentCharts(exp), // as `config --json`
      schedule: exp.schedule,
      data: exp.data,
      batchSize: exp.batchSize,
      seed: exp.seed,
      ...fastPathRecord(exp),
    },
  });
}

/** The GPU fast-path options of a run record's `experiment`, only those given. */
export function fastPathRecord(o: { attnImpl?: AttnImpl; keyOrder?: KeyOrder; tf32?: boolean }): Record<string, unknown> {
  return {
    ...(o.attnImpl !== undefined ? { attnImpl: o.attnImpl } : {}),
    ...(o.keyOrder !== undefined ? { keyOrder: o.keyOrder } : {}),
    ...(o.tf32 ? { tf32: true } : {}),
  };
}

/** Checks everything, then writes the config and runs it under supervision (train and pretrain). */
export async function launchRun(req: RunLaunch): Promise<RunResult> {
  const started = Date.now();
  const workDir = resolve(req.workDir);
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
    configText = await req.renderConfig();
  }
  const pre = configText === undefined ? await preflight(configPath, req.topology.gpus) : await preflightScratch(configText, req.topology.gpus);
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
    started: number;
    lock: ReturnType<typeof acquireRunLock>;
  },
): Promise<RunResult> {
  const { workDir, configPath, configText, python, pre, started, lock } = ctx;
  prepareWorkDir(workDir, { resume: req.resume, force: req.force, keep: req.inputs });
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
    experiment: previous?.experiment ?? { ...req.experiment, backboneParams: pre.backbone_params },
    command: [plan.command, ...plan.args],
    started: new Date(started).toISOString(),
  };
  writeRunRecord(workDir, record);

  const events = new EventTail(join(workDir, EVENTS_FILE), logger.warn);
  events.poll(); // on --resume, skip the previous launch's events
  const logPath = join(workDir, 'mkey-train.log');
  const { child, closeLog } = spawnLogged(python, plan, logPath, 'a', req.verbose);
  record.pid = child.pid;
  lock.setTrainer(child.pid);
  writeRunRecord(workDir, record);

  let metrics: CocoMetrics | undefined;
  let errorMessage: string | undefined;
  const view = new ProgressView(req.progress, logger.info);
  const { exitCode, interrupted } = await superviseChild(child, events, view, (e) => {
    if (e.event === 'val') metrics = e.metrics;
    if (e.event === 'error') errorMessage = e.message;
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

/** `mkey-det train --config FILE`: any MMDetection or mmpretrain config, supervised like an experiment. */
export interface ConfigTrainRequest extends LaunchOptions {
  /** The user's config file (absolute). */
  configFile: string;
  /** A manifold key put on top (a Swin backbone only); undefined keeps the config's. */
  keyType?: string;
  charts?: number;
  amp: AmpDtype | false;
  tensorboard: boolean;
  /** Put on top of the config's backbone (Swin only); undefined keeps the config's. */
  attnImpl?: AttnImpl;
  /** Put on top of the config's manifold-key backbone; undefined keeps the config's. */
  keyOrder?: KeyOrder;
  tf32?: boolean;
  /** `--cfg-options` pairs, merged as tools/train.py merges them (mmengine's DictAction). */
  cfgOptions: [string, string][];
}

export async function trainConfig(req: ConfigTrainRequest): Promise<RunResult> {
  const renderConfig = async (): Promise<string> => {
    try {
      return await withBridge(async (b) => {
        const r = await b.call<{ text: string }>(
          'config.user_config',
          {
            config_path: req.configFile,
            cfg_options: req.cfgOptions.map(([k, v]) => `${k}=${v}`),
            key_type: req.keyType ?? null,
            num_charts: req.charts ?? null,
            amp: req.amp || null,
            tensorboard: req.tensorboard,
            attn_impl: req.attnImpl ?? null,
            key_order: req.keyOrder ?? null,
            tf32: req.tf32 ?? false,
            generator: `mkey-det ${TOOL_VERSION}`,
          },
          { timeoutMs: 300_000 },
        );
        return r.text;
      });
    } catch (err) {
      throw asBadInput(err, ['ValueError', 'KeyError', 'TypeError']);
    }
  };
  return launchRun({
    ...req,
    renderConfig,
    inputs: [req.configFile],
    experiment: { source: 'config', config: req.configFile, keyType: req.keyType ?? null, charts: req.charts ?? null, ...fastPathRecord(req) },
  });
}
