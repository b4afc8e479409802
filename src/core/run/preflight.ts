/**
 * The check every run passes before anything is written or launched: it builds the config's
 * backbone, counts the GPUs, finds the toolbox's tools/, and (for `test`) refuses a checkpoint whose
 * weights do not fit the config's model.
 *
 * A one-process launch checks in the very process that then runs the tool (primed.ts: one import of
 * torch and MMDetection instead of two); a multi-process launch (torchrun, srun) checks in a bridge
 * session first. Both give the same reply and the same refusals. Node 0 of a torchrun launch also
 * tries its master port here (`checkMasterPort`).
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asBadInput, withBridge } from '../../python/bridge.js';
import { ExitCode, MkeyError } from '../../utils/errors.js';
import { worldSizeOf, type LaunchTopology } from './launch.js';
import { call, type EntryReply } from '../../python/entries.js';
import { primeTool, type PrimedTool } from './primed.js';
import { CONFIG_FILE } from './run-dir.js';

/** What the launch needs of a config: `runs.preflight`'s reply (src/python/entries.ts). */
export type Preflight = EntryReply<'runs.preflight'>;

/** What to check: a config file, or the text of one not written yet (checked from a scratch copy). */
export interface PreflightRequest {
  python: string;
  config: { path: string } | { text: string };
  gpus: number;
  /** Weights the tool will load: checked key for key against the config's model. */
  checkpoint?: string;
  /** The launch runs one process: check in it and keep it for the tool (`primed` in the result). */
  oneProcess: boolean;
}

/**
 * The preflight's reply, and for a one-process launch the checked process waiting to run the tool
 * (start it with `primed.start`, or end it with `primed.cancel`).
 */
export async function checkRun(req: PreflightRequest): Promise<{ pre: Preflight; primed?: PrimedTool }> {
  const scratch = 'text' in req.config ? mkdtempSync(join(tmpdir(), 'mkey-preflight-')) : undefined;
  const configPath = scratch ? join(scratch, CONFIG_FILE) : (req.config as { path: string }).path;
  try {
    if (scratch) writeFileSync(configPath, (req.config as { text: string }).text);
    if (!req.oneProcess) return { pre: await preflight(configPath, req.gpus, req.checkpoint) };
    const primed = primeTool(req.python, configPath, req.gpus, req.checkpoint);
    try {
      return { pre: await primed.preflight, primed };
    } catch (err) {
      primed.cancel();
      throw err;
    }
  } finally {
    if (scratch) rmSync(scratch, { recursive: true, force: true });
  }
}

/**
 * torchrun on node 0 listens on the master port for the other processes: a port another program
 * holds would fail only after the run directory is written (EADDRINUSE in the log, exit 1). Tried
 * here first, by listening on it for a moment.
 */
export async function checkMasterPort(topo: LaunchTopology): Promise<void> {
  if (topo.launcher === 'slurm' || topo.nodeRank !== 0 || worldSizeOf(topo) <= 1) return;
  const problem = await new Promise<string | undefined>((resolve) => {
    const server = createServer();
    server.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    server.listen(topo.masterPort, () => server.close(() => resolve(undefined)));
  });
  if (problem === undefined) return;
  throw new MkeyError(`--master-port ${topo.masterPort} ${problem === 'EADDRINUSE' ? 'is in use on this machine' : `cannot be listened on here (${problem})`}: torchrun's rendezvous needs it free`, {
    exitCode: ExitCode.environment,
    hint: 'choose a free port with --master-port (another job on this machine may hold this one)',
  });
}

/** A refusal of the Python side as the user's mistake (exit 2), with a hint where one helps. */
export function preflightRefusal(err: unknown): unknown {
  return asBadInput(err, ['ValueError', 'RuntimeError'], (message) =>
    message.includes('does not fit the config') ? 'evaluate it with the config it was trained with (--config), or pass --non-strict to load what fits' : undefined,
  );
}

/**
 * Checks a config through one bridge session: builds its backbone, counts the GPUs, and with
 * `checkpoint` also refuses weights that do not fit the config's model (tools/test.py would load
 * them non-strictly).
 */
async function preflight(configPath: string, gpus: number, checkpoint?: string): Promise<Preflight> {
  try {
    return await withBridge(async (b) => {
      const pre = await call(b, 'runs.preflight', { config_path: configPath, gpus });
      if (checkpoint) await call(b, 'runs.check_checkpoint', { config_path: configPath, checkpoint_path: checkpoint });
      return pre;
    });
  } catch (err) {
    throw preflightRefusal(err);
  }
}
