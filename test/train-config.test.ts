/**
 * `mkey-det train --config FILE`: a config the user edited, trained with everything `train` gives
 * (events, run record, resume), the real MMDetection tools on the tiny dataset.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTinyDataset, runCli } from './helpers/cli.js';
import { NO_LOADER_WORKERS, TINY_DETECTOR } from './helpers/shared-run.js';

let tmp: string;
let data: string;
let userConfig: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-train-config-'));
  data = await makeTinyDataset(join(tmp, 'tiny'));
  userConfig = join(tmp, 'my-config.py');
  const made = await runCli(['config', '--backbone', 'swin-t', '--data', data, '--max-iters', '2', '--img-scale', '128x128', ...TINY_DETECTOR, ...NO_LOADER_WORKERS, '--out', userConfig]);
  expect(made.exitCode, made.stderr).toBe(0);
  // the user's edit: another learning rate and weight decay, written as a person would
  appendFileSync(userConfig, '\n# my edit\noptim_wrapper = dict(optimizer=dict(lr=0.0003, weight_decay=0.01))\n');
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

describe('mkey-det train --config', () => {
  it('refuses experiment options the config already sets, in one line (exit 2)', async () => {
    const res = await runCli(['train', '--config', userConfig, '--data', 'demo', '--seed', '3', '--work-dir', join(tmp, 'bad')]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr.split('\n')[0]).toBe('error: --data, --seed cannot be combined with --config: the config sets them');
    expect(existsSync(join(tmp, 'bad', 'mkey-run.json'))).toBe(false);
  });

  it('refuses a missing file and a config that does not load', async () => {
    const missing = await runCli(['train', '--config', join(tmp, 'nope.py'), '--work-dir', join(tmp, 'bad2')]);
    expect(missing.exitCode).toBe(2);
    expect(missing.stderr.split('\n')[0]).toContain('nope.py" does not exist');
    const broken = join(tmp, 'broken.py');
    appendFileSync(broken, 'model = dict(\n');
    const res = await runCli(['train', '--config', broken, '--work-dir', join(tmp, 'bad3')]);
    expect(res.exitCode).toBe(2);
    expect(res.stderr.split('\n')[0]).toMatch(/^error: --config .*broken\.py does not load with mmengine: SyntaxError/);
    expect(res.stderr).not.toContain('Traceback');
  });

  it('trains the edited config with a manifold key on top, then resumes it', async () => {
    const wd = join(tmp, 'run');
    const res = await runCli(['train', '--config', userConfig, '--backbone', 'swin-t-spatialk', '--charts', '2', '--cfg-options', 'randomness.seed=5', '--work-dir', wd]);
    expect(res.exitCode, res.stderr).toBe(0);
    const written = readFileSync(join(wd, 'config.py'), 'utf8');
    expect(written).toContain(userConfig); // mkey_experiment.config: where it came from
    expect(written).toMatch(/lr=0\.0003/); // the user's edit
    expect(written).toMatch(/key_type='spatialk'/); // the key put on top
    expect(written).toMatch(/seed=5/); // --cfg-options, merged as tools/train.py does
    expect(written).toContain("type='MkeyProgressHook'");
    const run = JSON.parse(readFileSync(join(wd, 'mkey-run.json'), 'utf8')) as { status: string; experiment: Record<string, unknown> };
    expect(run.status).toBe('completed');
    expect(run.experiment).toMatchObject({ source: 'config', config: userConfig, keyType: 'spatialk', charts: 2 });
    const events = readFileSync(join(wd, 'mkey-events.jsonl'), 'utf8');
    expect(events).toContain('"event": "val"');

    const again = await runCli(['train', '--work-dir', wd, '--resume']);
    expect(again.exitCode, again.stderr).toBe(0);
    expect(again.stderr).toContain('resuming');
  }, 600_000);
});
