/**
 * `mkey-det sweep` through the real CLI: the plans of the paper's Table 3 (2 backbones x 3 seeds,
 * COCO, 8 GPUs) and Table 1's Swin-T row (5 keys) with their GPU-hours; a queue of 2 backbones x
 * 2 seeds on a tiny dataset, interrupted by SIGINT in its second cell and started again (skipped,
 * resumed, ran), ending with the report of the whole matrix; the Slurm path through `sbatch` /
 * `squeue` / `srun` stand-ins (test/helpers/slurm/): scripts, job ids, `--status`; bad input.
 * Every cell is a real `mkey-det train` (Mask R-CNN on 4 images of 128 px, 3 iterations).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { H100_DETECTION_IMAGES_PER_S } from '../src/core/sweep/cost.js';
import { cliPath, makeTinyDataset, repoRoot, runCli, testPython } from './helpers/cli.js';
import { waitFor } from './helpers/processes.js';
import { SMALL_FINISHED_RUN } from './helpers/shared-run.js';

let tmp: string;
let data: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-sweep-'));
  data = await makeTinyDataset(join(tmp, 'tiny'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** `mkey-det sweep ...` run in the test's folder (its cells' work_dirs/ go there). */
const sweep = (args: string[], env: NodeJS.ProcessEnv = {}) => runCli(['sweep', ...args], { cwd: tmp, env: { ...process.env, ...env } });

/**
 * The shared run's options but its backbone and charts (the matrix's axes: `--charts 2` is given to
 * the sweep). Without DataLoader workers, the Ctrl-C'd cell too: the subject here is the sweep's
 * record; a run stopped with its loader workers is train.test.ts's and distributed.test.ts's.
 */
const SMALL_CELL = SMALL_FINISHED_RUN.filter((w, i, all) => !['--backbone', '--charts'].includes(w) && !['--backbone', '--charts'].includes(all[i - 1]!));
/**
 * 3 iterations with a checkpoint after each: a Ctrl-C after the first checkpoint stops the cell at
 * iteration 2, and its resume has an iteration and the evaluation left to run.
 */
const cellOptions = () => [...SMALL_CELL, '--data', data, '--max-iters', '3', '--cfg-options', 'default_hooks.checkpoint.interval=1'];

interface PlanJson {
  name: string;
  cells: { name: string; backbone: string; charts: number | null; seed: number; cost: { iterations: number; gpuHours: number | null; throughput: { imagesPerSecondPerGpu: number; measured: boolean } | null; estimate: boolean } }[];
  collapsed: string[];
  total: { cells: number; iterations: number; gpuHours: number | null; estimate: boolean };
  notes: string[];
}

describe('sweep --plan: cells, iterations, GPU-hours', () => {
  it("Table 3: Swin-T and + SpatialK x 3 seeds on COCO, 8 GPUs: 6 runs from the H100's measured images/s", async () => {
    const args = ['--backbone', 'swin-t,swin-t-spatialk', '--seeds', '0,1,2', '--data', 'coco', '--gpus', '8', '--plan'];
    const text = await sweep(args);
    console.log(`mkey-det sweep ${args.join(' ')}\n${text.stdout}`);
    expect(text.exitCode).toBe(0);
    const plan = JSON.parse((await sweep([...args, '--json'])).stdout) as PlanJson;
    expect(plan.cells.map((c) => c.name)).toEqual([
      'swin-t-3x-coco-s0',
      'swin-t-3x-coco-s1',
      'swin-t-3x-coco-s2',
      'swin-t-spatialk-c8-3x-coco-s0',
      'swin-t-spatialk-c8-3x-coco-s1',
      'swin-t-spatialk-c8-3x-coco-s2',
    ]);
    // 117,266 images / (8 GPUs x 2 images) = 7,330 iterations per epoch, x 36 epochs
    for (const c of plan.cells) expect(c.cost.iterations).toBe(263_880);
    const [swin, spatialk] = [plan.cells[0]!.cost, plan.cells[3]!.cost];
    expect(swin.throughput).toEqual(expect.objectContaining({ imagesPerSecondPerGpu: 15.9, measured: true }));
    expect(spatialk.throughput).toEqual(expect.objectContaining({ imagesPerSecondPerGpu: 12.1, measured: true }));
    expect(swin.gpuHours).toBeCloseTo((263_880 * 16) / 15.9 / 3600, 6);
    expect(plan.total.gpuHours).toBeCloseTo(3 * ((263_880 * 16) / 15.9 / 3600 + (263_880 * 16) / 12.1 / 3600), 6);
    expect(plan.total.estimate).toBe(false);
    expect(text.stdout).toContain(`total: 6 runs, 1,583,280 iterations, ${plan.total.gpuHours!.toFixed(0)} GPU-hours`);
  });

  it("Table 1's Swin-T row: 5 keys pretrained on ImageNet (not here: its size, said to be an estimate); no GPU measurement of a classifier", async () => {
    const backbones = 'swin-t,swin-t-spatialk,swin-t-kua,swin-t-simplek,swin-t-vanillak';
    const args = ['--task', 'classification', '--backbone', backbones, '--data', '/data/imagenet', '--gpus', '4', '--plan'];
    const text = await sweep(args);
    console.log(`mkey-det sweep ${args.join(' ')}\n${text.stdout}`);
    expect(text.exitCode).toBe(0);
    const plan = JSON.parse((await sweep([...args, '--json'])).stdout) as PlanJson;
    expect(plan.cells.map((c) => c.name)).toEqual(backbones.split(',').map((b) => `pretrain-${b}${b === 'swin-t' ? '' : '-c8'}-paper-custom-s0`));
    // ImageNet-1K 1,281,167 images / (4 GPUs x 32) = 10,010 iterations per epoch, x 300 epochs
    for (const c of plan.cells) expect(c.cost.iterations).toBe(3_003_000);
    expect(plan.total.gpuHours).toBeNull();
    expect(text.stdout).toContain('GPU-hours: no measurement');
    expect(text.stdout).toContain("* images per epoch: /data/imagenet is not here to count: ImageNet-1K's 1,281,167 train images");
  });

  it('the linear key collapses --charts to one cell, said in the plan; an unmeasured key or chart count is an estimate', async () => {
    const res = await sweep(['--backbone', 'swin-t,swin-t-spatialk,swin-t-kua', '--charts', '4,8', '--data', 'coco', '--gpus', '8', '--plan', '--json']);
    const plan = JSON.parse(res.stdout) as PlanJson;
    expect(plan.cells.map((c) => c.name)).toEqual([
      'swin-t-3x-coco-s0',
      'swin-t-spatialk-c4-3x-coco-s0',
      'swin-t-spatialk-c8-3x-coco-s0',
      'swin-t-kua-c4-3x-coco-s0',
      'swin-t-kua-c8-3x-coco-s0',
    ]);
    expect(plan.collapsed).toEqual(['swin-t: the linear key has no charts, so --charts 4,8 gives it one cell per seed, not 2']);
    const measured = plan.cells.map((c) => c.cost.throughput!.measured);
    expect(measured).toEqual([true, false, true, false, false]);
    // fewer charts, less key: between Swin-T's 15.9 and SpatialK-8's 12.1 images/s
    const c4 = plan.cells[1]!.cost.throughput!.imagesPerSecondPerGpu;
    expect(c4).toBeGreaterThan(12.1);
    expect(c4).toBeLessThan(15.9);
    expect(plan.total.estimate).toBe(true);
  });

  it("the images/s it uses are the H100 measurement's own (benchmarks/results/h100-2026-11-26)", () => {
    const lines = readFileSync(join(repoRoot, 'benchmarks/results/h100-2026-11-26/bench-train-cuda.jsonl'), 'utf8').split('\n').filter(Boolean);
    const measured = lines.map((l) => JSON.parse(l) as { event: string; data?: { key_type: string; batch: number; precision: string; step_s?: { median: number } } });
    let n = 0;
    for (const m of measured) {
      const d = m.data;
      if (m.event !== 'measure' || !d?.step_s || d.precision === 'bf16') continue;
      const row = H100_DETECTION_IMAGES_PER_S[d.key_type as 'linear' | 'spatialk'][d.batch as 2 | 8][d.precision as 'fp32' | 'fp16'];
      expect(row).toBeCloseTo(d.batch / d.step_s.median, 1);
      n++;
    }
    expect(n).toBe(8);
  });
});

describe('sweep --submit where sbatch is missing', () => {
  it('is one line, exit 3, before the plan is printed or anything written', async () => {
    const dir = join(tmp, 'no-sbatch');
    const res = await sweep(['--data', 'coco', '--launcher', 'slurm', '--submit', '--sweep-dir', dir]);
    expect(res.exitCode).toBe(3);
    expect(res.stderr.split('\n')[0]).toBe('error: --submit: sbatch is not on PATH (Slurm is not installed here, or its module is not loaded)');
    expect(existsSync(dir)).toBe(false);
  });
});

describe('sweep: bad input is one line naming the value and what is accepted, exit 2', () => {
  const cases: [string, string[], string][] = [
    ['an unknown backbone', ['--backbone', 'swin-t,swin-t-nope'], 'invalid --backbone "swin-t,swin-t-nope": "swin-t-nope" is not accepted (accepted: swin-t, swin-t-spatialk'],
    ['charts out of range', ['--charts', '4,0'], 'invalid --charts "4,0": "0" is not accepted (accepted: whole numbers 1-64, e.g. 4,8)'],
    ['a seed given twice', ['--seeds', '0,1,0'], 'invalid --seeds "0,1,0": "0" is given twice'],
    ['--seed instead of --seeds', ['--seed', '3'], '--seed cannot be given to a sweep: give the seeds as --seeds 0,1,2'],
    ['--work-dir', ['--work-dir', 'x'], '--work-dir cannot be given to a sweep'],
    ['an option neither sweep nor train takes', ['--epochs', '3'], 'unknown option "--epochs": neither sweep nor mkey-det train takes it'],
    ["a bad value of train's own option", ['--schedule', '9x'], 'invalid --schedule "9x": accepted: 3x, paper-3x, short'],
    ['--submit without Slurm', ['--submit'], '--submit needs --launcher slurm'],
    ['a --vary of one value', ['--vary', 'model.backbone.drop_path_rate=0.1'], 'invalid --vary "model.backbone.drop_path_rate=0.1": one value is no axis'],
    ['an unknown task', ['--task', 'segmentation'], 'invalid --task "segmentation": accepted: detection, classification'],
    // values are data: a --vary of type names is checked as train checks --cfg-options (it was planned, then each cell refused)
    ['a --vary of importable names', ['--vary', 'default_hooks.timer.type=os.system,os.popen'], '--cfg-options default_hooks.timer.type="os.system" is refused: not a type name registered'],
  ];
  it.each(cases)('%s', async (_what, args, message) => {
    const res = await sweep([...args, '--data', 'coco', ...(args.includes('--submit') ? [] : ['--plan'])]);
    const errors = res.stderr.split('\n').filter((l) => l.startsWith('error: '));
    expect(res.exitCode, res.stderr).toBe(2);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(message);
  });
});

interface SweepJson {
  cells: { name: string; outcome: string; status: string }[];
  state: string;
  report: { md: string; html: string; runs: string[] } | null;
}
interface SweepRecordJson {
  state: string;
  cells: { name: string; workDir: string; args: string[]; jobId?: string; script?: string; attempts: { action: string; status?: string; exitCode?: number }[] }[];
}
const record = (sweepDir: string) => JSON.parse(readFileSync(join(sweepDir, 'sweep.json'), 'utf8')) as SweepRecordJson;
const events = (workDir: string) =>
  existsSync(join(workDir, 'mkey-events.jsonl'))
    ? readFileSync(join(workDir, 'mkey-events.jsonl'), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as Record<string, unknown>)
    : [];

describe('a sweep here: 2 backbones x 2 seeds, Ctrl-C in the second cell, started again', () => {
  it('skips the completed cell, resumes the interrupted one, runs the others, and writes the report of the matrix', async () => {
    const sweepDir = join(tmp, 'demo-sweep');
    const args = ['sweep', '--backbone', 'swin-t,swin-t-spatialk', '--charts', '2', '--seeds', '0,1', ...cellOptions(), '--sweep-dir', sweepDir];
    const names = ['swin-t-3x-custom-s0', 'swin-t-3x-custom-s1', 'swin-t-spatialk-c2-3x-custom-s0', 'swin-t-spatialk-c2-3x-custom-s1'];
    const second = join(tmp, 'work_dirs', names[1]!);

    const t0 = Date.now();
    const child = spawn('node', [cliPath, ...args], { cwd: tmp, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    // the second cell's first checkpoint (mmengine's last_checkpoint names it): a resumable point in the middle of the sweep
    await waitFor(() => (existsSync(join(second, 'last_checkpoint')) ? true : undefined), 900_000, "the second cell's first checkpoint");
    child.kill('SIGINT');
    const code = await exited;
    console.log(`first start, SIGINT in cell 2 after ${((Date.now() - t0) / 1000).toFixed(0)} s:\n${out}`);
    expect(code).toBe(130);
    expect(out).toContain('SIGINT received: stopping the running cell at its next iteration');
    const first = record(sweepDir);
    expect(first.state).toBe('interrupted');
    expect(first.cells.map((c) => c.attempts.map((a) => `${a.action}:${a.status}`))).toEqual([['ran:completed'], ['ran:interrupted'], [], []]);
    // the cell is the CLI's own command line, with the work dir train names
    expect(first.cells[1]!.args).toEqual(['train', ...cellOptions(), '--backbone', 'swin-t', '--seed', '1', '--work-dir', second]);

    const t1 = Date.now();
    const again = await runCli(args.concat('--json'), { cwd: tmp });
    console.log(`started again (${((Date.now() - t1) / 1000).toFixed(0)} s):\n${again.stderr}\n${again.stdout}`);
    expect(again.exitCode).toBe(0);
    const result = JSON.parse(again.stdout) as SweepJson;
    expect(result.cells.map((c) => [c.name, c.outcome, c.status])).toEqual([
      [names[0], 'skipped', 'completed'],
      [names[1], 'resumed', 'completed'],
      [names[2], 'ran', 'completed'],
      [names[3], 'ran', 'completed'],
    ]);
    expect(again.stderr).toContain(`running: mkey-det train ${cellOptions().join(' ')} --backbone swin-t --seed 1 --work-dir ${second} --resume`.replace('running', 'resuming'));
    // resumed from its checkpoint: the second start of cell 2 begins after the iteration it stopped at
    const starts = events(second).filter((e) => e.event === 'start');
    expect(starts).toHaveLength(2);
    expect(Number(starts[1]!.start_iter)).toBeGreaterThan(0);
    expect(record(sweepDir).state).toBe('completed');

    // the report of the whole matrix: both configurations, each seed pair grouped
    expect(result.report!.runs).toHaveLength(4);
    const md = readFileSync(join(sweepDir, 'report.md'), 'utf8');
    console.log(md.slice(0, 3000));
    expect(existsSync(join(sweepDir, 'report.html'))).toBe(true);
    // one row per configuration with its n = 2 seeds, the AP as mean ± std
    expect(md).toMatch(/\| swin-t, 3x 3it \(baseline\) \| linear \| +\| 2 \|/);
    expect(md).toMatch(/\| swin-t-spatialk, 2 charts, 3x 3it \| spatialk \| 2 \| 2 \|/);
    expect(md).toMatch(/\d ± \d/);

    const status = await runCli(['sweep', '--sweep-dir', sweepDir, '--status'], { cwd: tmp });
    console.log(status.stdout);
    expect(status.exitCode).toBe(0);
    expect(status.stdout).toContain('completed; 4 completed');
  }, 900_000); // five real trainings in a row: 235 s on a quiet 2-core machine, near vitest's 600 s under a load of 10
});

describe('sweep --launcher slurm --submit (sbatch, squeue and srun stand-ins)', () => {
  it('writes one script per cell running its train command line, submits each, records the job ids; --status follows them', async () => {
    const sweepDir = join(tmp, 'slurm-sweep');
    const state = join(tmp, 'slurm-state');
    const env = { PATH: `${join(repoRoot, 'test', 'helpers', 'slurm')}:${process.env.PATH}`, SLURM_STANDIN_DIR: state };
    const args = [
      '--backbone',
      'swin-t,swin-t-spatialk',
      '--charts',
      '2',
      '--seeds',
      '7',
      ...SMALL_CELL,
      '--data',
      data,
      '--max-iters',
      '1',
      '--launcher',
      'slurm',
      '--sweep-dir',
      sweepDir,
      '--submit',
      '--slurm-args',
      '--partition=cpu --time=0:30:00',
    ];
    // run at once in the background, as an idle cluster would
    const res = await sweep(args, { ...env, SLURM_STANDIN_RUN: '1' });
    console.log(`mkey-det sweep ${args.join(' ')}\n${res.stderr}\n${res.stdout}`);
    expect(res.exitCode).toBe(0);
    const rec = record(sweepDir);
    expect(rec.state).toBe('submitted');
    expect(rec.cells.map((c) => c.jobId)).toEqual(['1', '2']);
    for (const cell of rec.cells) {
      const script = readFileSync(cell.script!, 'utf8');
      console.log(`${cell.script}:\n${script}`);
      expect(script).toContain('#SBATCH --nodes=1\n#SBATCH --ntasks-per-node=1\n');
      expect(script).toContain('#SBATCH --partition=cpu\n#SBATCH --time=0:30:00\n');
      // the cell's own command line, the one the local queue runs
      expect(script).toContain(`exec ${process.execPath} ${cliPath} ${cell.args.join(' ')}\n`);
      expect(cell.args).toContain('--launcher');
      // what sbatch received is that script
      expect(readFileSync(join(state, 'jobs', cell.jobId!, 'script'), 'utf8')).toBe(script);
    }

    const running = await sweep(['--sweep-dir', sweepDir, '--status', '--json'], env);
    const queued = JSON.parse(running.stdout) as { cells: { jobId: string; queue: string; run: string }[] };
    console.log(`--status right after submission: ${JSON.stringify(queued.cells)}`);
    expect(queued.cells.map((c) => c.jobId)).toEqual(['1', '2']);
    for (const c of queued.cells) expect(['RUNNING', 'not queued']).toContain(c.queue);

    // both jobs end (each a 1-iteration run through srun); then every cell reads completed
    await waitFor(() => (['1', '2'].every((id) => existsSync(join(state, 'jobs', id, 'exit'))) ? true : undefined), 900_000, 'both Slurm jobs to end');
    const done = await sweep(['--sweep-dir', sweepDir, '--status'], env);
    console.log(done.stdout);
    expect(done.exitCode).toBe(0);
    expect(done.stdout).toMatch(/swin-t-3x-custom-s7\s+completed\s+1\s+not queued\s+box AP/);
    expect(done.stdout).toMatch(/swin-t-spatialk-c2-3x-custom-s7\s+completed\s+2\s+not queued\s+box AP/);
    for (const id of ['1', '2']) expect(readFileSync(join(state, 'jobs', id, 'exit'), 'utf8').trim()).toBe('0');

    // submitted again: every cell is completed, nothing goes to the queue
    const again = await sweep(args, env);
    expect(again.exitCode).toBe(0);
    expect(again.stdout).toMatch(/swin-t-3x-custom-s7\s+-\s+completed/);
    expect(existsSync(join(state, 'jobs', '3'))).toBe(false);
  });
});

/** Whether the optional trackers (`bash scripts/setup-python.sh --extras trackers`) are in the test's Python. */
const trackersInstalled = spawnSync(testPython, ['-c', 'import wandb, mlflow'], { stdio: 'ignore' }).status === 0;
const TRACKERS_SKIPPED = 'wandb/mlflow not installed (bash scripts/setup-python.sh --extras trackers)';

/**
 * Reads back what the trackers wrote, each with its own library: MLflow's client on the local file
 * store; W&B's own record type (wandb.proto's Record, the protobuf its offline run file holds) over
 * the file's LevelDB-log framing (wandb 0.31 has no Python reader of offline runs).
 */
const READ_TRACKERS = `
import glob, json, os, struct, sys
from wandb.proto import wandb_internal_pb2 as pb
from mlflow.tracking import MlflowClient
vis = sys.argv[1]
run_file = glob.glob(os.path.join(vis, 'wandb', 'offline-run-*', 'run-*.wandb'))[0]
data = open(run_file, 'rb').read()
ident, magic, version = struct.unpack('<4sHB', data[:7])
records, pos, part = [], 7, b''
while pos + 7 <= len(data):
    if 32768 - pos % 32768 < 7:
        pos += 32768 - pos % 32768
        continue
    crc, length, kind = struct.unpack('<IHB', data[pos:pos + 7])
    chunk, pos = data[pos + 7:pos + 7 + length], pos + 7 + length
    if kind == 0:
        break
    if kind == 1:
        records.append(chunk)
    elif kind in (2, 3):
        part += chunk
    else:
        records.append(part + chunk)
        part = b''
wandb_run, losses = None, []
for raw in records:
    rec = pb.Record()
    rec.ParseFromString(raw)
    if rec.WhichOneof('record_type') == 'run':
        wandb_run = {'id': rec.run.run_id, 'project': rec.run.project}
    if rec.WhichOneof('record_type') == 'history':
        items = {i.key or '/'.join(i.nested_key): json.loads(i.value_json) for i in rec.history.item}
        if 'loss' in items:
            losses.append(items['loss'])
client = MlflowClient(tracking_uri='file://' + vis)
exp = client.get_experiment_by_name('mkey-det')
run = client.search_runs([exp.experiment_id])[0]
print(json.dumps({
    'wandb': {'header': [ident.decode(), hex(magic)], 'run': wandb_run, 'losses': losses, 'records': len(records)},
    'mlflow': {'experiment': exp.name, 'status': run.info.status,
               'loss': [[m.step, m.value] for m in client.get_metric_history(run.info.run_id, 'loss')],
               'bbox_mAP': run.data.metrics.get('coco/bbox_mAP'), 'params': len(run.data.params)},
}))
`;

describe('--vis-backend (mmengine visualisation backends; --tensorboard is --vis-backend tensorboard)', () => {
  it('a tracker that is not installed is one line naming its install command (exit 3)', async () => {
    const system = '/usr/bin/python3';
    const systemLacksWandb = existsSync(system) && spawnSync(system, ['-c', 'import wandb'], { stdio: 'ignore' }).status !== 0;
    const res = await runCli(['train', '--data', data, '--vis-backend', 'wandb', '--work-dir', join(tmp, 'no-wandb')], {
      cwd: tmp,
      env: { ...process.env, ...(trackersInstalled && systemLacksWandb ? { MKEY_PYTHON: system } : {}) },
    });
    if (!trackersInstalled || systemLacksWandb) {
      console.log(res.stderr);
      expect(res.exitCode).toBe(3);
      const errors = res.stderr.split('\n').filter((l) => l.startsWith('error: '));
      expect(errors).toHaveLength(1);
      expect(errors[0]).toMatch(trackersInstalled ? /wandb is not installed for \/usr\/bin\/python3; install it with: \/usr\/bin\/python3 -m pip install wandb$/ : /install it with: \.venv\/bin\/pip install wandb$/);
    }
  });

  it.skipIf(!trackersInstalled)(`a tiny run writes a W&B offline run and an MLflow file store, read back with each library${trackersInstalled ? '' : ` (skipped: ${TRACKERS_SKIPPED})`}`, async () => {
    const wd = join(tmp, 'trackers');
    const res = await runCli(['train', ...SMALL_CELL, '--backbone', 'swin-t', '--data', data, '--max-iters', '2', '--tensorboard', '--vis-backend', 'wandb', '--vis-backend', 'mlflow', '--work-dir', wd], { cwd: tmp });
    expect(res.exitCode, res.stderr).toBe(0);
    const config = readFileSync(join(wd, 'config.py'), 'utf8').replace(/\s+/g, ' ');
    // the run's config.py as mmengine merged it: the visualizer's backends, local first
    expect(config).toContain("vis_backends=[ dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend'), dict( init_kwargs=dict(mode='offline', project='mkey-det'), type='WandbVisBackend'), dict(exp_name='mkey-det', type='MLflowVisBackend'), ]");
    const session = readdirSync(wd).find((f) => /^\d{8}_\d{6}$/.test(f))!;
    const vis = join(wd, session, 'vis_data');
    expect(readdirSync(vis).some((f) => f.startsWith('events.out.tfevents'))).toBe(true);
    const read = spawnSync(testPython, ['-c', READ_TRACKERS, vis], { encoding: 'utf8', env: { ...process.env, MLFLOW_ALLOW_FILE_STORE: 'true' } });
    expect(read.status, read.stderr).toBe(0);
    const got = JSON.parse(read.stdout) as { wandb: { header: string[]; run: { id: string; project: string }; losses: number[] }; mlflow: { experiment: string; status: string; loss: [number, number][]; bbox_mAP: number } };
    console.log(`read back: ${read.stdout}`);
    // both trackers hold the loss mmengine logged at iteration 2: the mean of its window, here the
    // two iterations' losses of the run's own events
    const iterLoss = events(wd).filter((e) => e.event === 'iter').map((e) => (e.losses as { loss: number }).loss);
    expect(iterLoss).toHaveLength(2);
    const logged = (iterLoss[0]! + iterLoss[1]!) / 2;
    expect(got.wandb.header).toEqual([':W&B', '0xbee1']);
    expect(got.wandb.run.project).toBe('mkey-det');
    expect(got.wandb.losses).toHaveLength(1);
    expect(got.wandb.losses[0]).toBeCloseTo(logged, 5);
    expect(got.mlflow.experiment).toBe('mkey-det');
    expect(got.mlflow.status).toBe('FINISHED');
    expect(got.mlflow.loss).toEqual([[2, expect.closeTo(logged, 5)]]);
    expect(got.mlflow.bbox_mAP).toBeGreaterThanOrEqual(0);
  });
});

describe('sweep: a train / pretrain option given a comma list is an axis (--cb-mode eq4,none)', () => {
  interface AxisPlanJson {
    name: string;
    matrix: string;
    spec: { options: string[]; axes?: { flag: string; values: string[] }[] };
    cells: { name: string; backbone: string; charts: number | null; axes: Record<string, string>; command: string[] }[];
    collapsed: string[];
  }
  const plan = async (args: string[]) => {
    const res = await sweep([...args, '--plan', '--json']);
    expect(res.exitCode, res.stderr).toBe(0);
    return JSON.parse(res.stdout) as AxisPlanJson;
  };
  /** A cell's command line after `node bin/mkey-det.js`, without its --work-dir. */
  const argsOf = (c: AxisPlanJson['cells'][number]) => c.command.slice(2, c.command.indexOf('--work-dir'));

  it("Table 2: VanillaK with and without CB at 4 and 8 charts; the linear baseline gets one cell; each cell's command line has its --cb-mode", async () => {
    const args = ['--task', 'classification', '--backbone', 'vit-b,vit-b-vanillak', '--charts', '4,8', '--cb-mode', 'eq4,none', '--data', '/data/imagenet', '--gpus', '8'];
    const text = await sweep([...args, '--plan']);
    console.log(`mkey-det sweep ${args.join(' ')} --plan\n${text.stdout}`);
    expect(text.exitCode, text.stderr).toBe(0);
    expect(text.stdout).toContain('matrix   --backbone vit-b,vit-b-vanillak x --charts 4,8 x --cb-mode eq4,none x --seeds 0');
    const p = await plan(args);
    // pretrain's own names, the CB mode appended where the name has none
    expect(p.cells.map((c) => c.name)).toEqual([
      'pretrain-vit-b-paper-custom-s0',
      'pretrain-vit-b-vanillak-c4-paper-custom-s0-cb-eq4',
      'pretrain-vit-b-vanillak-c4-paper-custom-s0-cb-none',
      'pretrain-vit-b-vanillak-c8-paper-custom-s0-cb-eq4',
      'pretrain-vit-b-vanillak-c8-paper-custom-s0-cb-none',
    ]);
    expect(p.cells.map((c) => c.axes)).toEqual([{}, { '--cb-mode': 'eq4' }, { '--cb-mode': 'none' }, { '--cb-mode': 'eq4' }, { '--cb-mode': 'none' }]);
    expect(argsOf(p.cells[2]!)).toEqual(['pretrain', '--data', '/data/imagenet', '--gpus', '8', '--backbone', 'vit-b-vanillak', '--charts', '4', '--cb-mode', 'none', '--seed', '0']);
    // the linear key takes no --cb-mode (pretrain refuses it): one cell, without it
    expect(argsOf(p.cells[0]!)).toEqual(['pretrain', '--data', '/data/imagenet', '--gpus', '8', '--backbone', 'vit-b', '--seed', '0']);
    expect(p.collapsed).toContain('vit-b: its key has no context broadcasting, so --cb-mode eq4,none gives it one cell per seed, not 2');
    expect(p.spec.axes).toEqual([{ flag: '--cb-mode', values: ['eq4', 'none'] }]);
    expect(p.spec.options).toEqual(['--data', '/data/imagenet', '--gpus', '8']);
    expect(new Set(p.cells.map((c) => c.name)).size).toBe(p.cells.length);
  });

  it("detection: --schedule is in train's own name, --img-scale (also as --img-scale=a,b) is appended; axes run in the order typed", async () => {
    const p = await plan(['--backbone', 'swin-t-kua', '--schedule', '3x,paper-3x', '--img-scale=512x512,800x800', '--cb-mode', 'eq4,none', '--data', 'coco', '--gpus', '8']);
    expect(p.matrix).toBe('--backbone swin-t-kua x --charts 8 x --schedule 3x,paper-3x x --img-scale 512x512,800x800 x --cb-mode eq4,none x --seeds 0');
    const names = p.cells.map((c) => c.name);
    expect(names).toHaveLength(8);
    expect(new Set(names).size).toBe(8);
    expect(names.slice(0, 3)).toEqual(['swin-t-kua-c8-3x-coco-s0-img512x512-cb-eq4', 'swin-t-kua-c8-3x-coco-s0-img512x512-cb-none', 'swin-t-kua-c8-3x-coco-s0-img800x800-cb-eq4']);
    expect(names[4]).toBe('swin-t-kua-c8-paper-3x-coco-s0-img512x512-cb-eq4');
    expect(argsOf(p.cells[1]!)).toEqual(['train', '--data', 'coco', '--gpus', '8', '--backbone', 'swin-t-kua', '--charts', '8', '--schedule', '3x', '--img-scale', '512x512', '--cb-mode', 'none', '--seed', '0']);
    // one value stays a shared option, and the sweep's id (its folder) of a matrix without option axes is what it was
    const single = await plan(['--backbone', 'swin-t-kua', '--data', 'coco', '--gpus', '8', '--cb-mode', 'none']);
    expect(single.spec.axes).toBeUndefined();
    expect(single.spec.options).toEqual(['--data', 'coco', '--gpus', '8', '--cb-mode', 'none']);
    expect(single.cells.map((c) => c.name)).toEqual(['swin-t-kua-c8-3x-coco-s0']);
    expect((await plan(['--backbone', 'swin-t,swin-t-spatialk', '--seeds', '0,1,2', '--data', 'coco', '--gpus', '8'])).name).toBe('sweep-train-coco-aec5dc52');
  }, 60_000);

  const bad: [string, string[], string][] = [
    ['a --cb-mode value train does not take', ['--backbone', 'swin-t-kua', '--cb-mode', 'eq4,bogus'], 'error: invalid --cb-mode "eq4,bogus": "bogus" is not accepted (accepted: eq4, per_location, none)'],
    ['an --img-scale out of range', ['--img-scale', '512x512,5x5'], 'error: invalid --img-scale "512x512,5x5": "5x5" is not accepted: each side must be 32 to 8192 pixels'],
    ['a --schedule train does not know', ['--schedule', '3x,9x'], 'error: invalid --schedule "3x,9x": "9x" is not accepted (accepted: 3x, paper-3x, short)'],
    ['a --batch-size that is no number', ['--batch-size', '2,x'], 'error: invalid --batch-size "2,x": "x" is not accepted: --batch-size must be an integer between 1 and 1024'],
    ['an empty item', ['--cb-mode', 'eq4,,none'], 'error: invalid --cb-mode "eq4,,none": an empty item (expected a comma-separated list, e.g. eq4,none)'],
    ['nothing but a comma', ['--cb-mode', ','], 'error: invalid --cb-mode ",": an empty item (expected a comma-separated list, e.g. --cb-mode a,b with values the command takes)'],
    ['a value given twice', ['--cb-mode', 'none,none'], 'error: invalid --cb-mode "none,none": "none" is given twice'],
    ['the option given twice', ['--cb-mode', 'eq4,none', '--cb-mode', 'none'], 'error: --cb-mode is given twice: give its values once, comma-separated'],
    ["pretrain's --recipe to train", ['--recipe', 'paper,stock'], 'error: unknown option "--recipe": neither sweep nor mkey-det train takes it'],
  ];
  it.each(bad)('%s: one line naming the value and what is accepted, exit 2', async (_what, args, message) => {
    const res = await sweep([...args, '--data', 'coco', '--plan']);
    expect(res.exitCode, res.stderr).toBe(2);
    const errors = res.stderr.split('\n').filter((l) => l.startsWith('error: '));
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain(message);
  });

  it('--help names every option a sweep takes as an axis, and the Table 2 example', async () => {
    const { AXIS_OPTIONS } = await import('../src/core/sweep/matrix.js');
    const help = (await runCli(['sweep', '--help'])).stdout;
    for (const flag of Object.keys(AXIS_OPTIONS)) expect(help).toContain(flag);
    expect(help).toContain('--backbone vit-b-vanillak --charts 4,8 --cb-mode eq4,none');
  });
});
