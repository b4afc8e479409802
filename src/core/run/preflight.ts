/**
 * The check every run passes before anything is written or launched: one bridge session builds
 * the config's backbone, counts the GPUs, finds MMDetection's tools/, and (for `test`) refuses a
 * checkpoint whose weights do not fit the config's model.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { asBadInput, withBridge } from '../../python/bridge.js';
import { call, type EntryReply } from '../../python/entries.js';
import { CONFIG_FILE } from './run-dir.js';

/** What the launch needs of a config: `runs.preflight`'s reply (src/python/entries.ts). */
export type Preflight = EntryReply<'runs.preflight'>;

/**
 * Checks a config through one bridge session: builds its backbone, counts the GPUs, and with
 * `checkpoint` also refuses weights that do not fit the config's model (tools/test.py would load
 * them non-strictly).
 */
export async function preflight(configPath: string, gpus: number, checkpoint?: string): Promise<Preflight> {
  try {
    return await withBridge(async (b) => {
      const pre = await call(b, 'runs.preflight', { config_path: configPath, gpus });
      if (checkpoint) await call(b, 'runs.check_checkpoint', { config_path: configPath, checkpoint_path: checkpoint });
      return pre;
    });
  } catch (err) {
    throw asBadInput(err, ['ValueError', 'RuntimeError'], (message) =>
      message.includes('does not fit the config') ? 'evaluate it with the config it was trained with (--config), or pass --non-strict to load what fits' : undefined,
    );
  }
}

/** Preflight of a config not written yet, from a scratch copy outside the work dir. */
export async function preflightScratch(configText: string, gpus: number): Promise<Preflight> {
  const scratch = mkdtempSync(join(tmpdir(), 'mkey-preflight-'));
  try {
    writeFileSync(join(scratch, CONFIG_FILE), configText);
    return await preflight(join(scratch, CONFIG_FILE), gpus);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
