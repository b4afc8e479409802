/**
 * The multi-GPU launch path, executed on this machine's CPUs: torchrun with gloo (`--nproc-per-node`),
 * two nodes on one host, and Slurm through an `srun` stand-in (test/helpers/slurm). Real MMDetection,
 * real DDP, real torchrun; each fault is made the way it happens (signals, kill -9) and the test
 * checks what the CLI printed, its exit code, the seconds it took and that no process survived.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { cliPath, makeTinyDataset, repoRoot, runCli, testPython } from './helpers/cli.js';
import { descendants, waitAllGone, waitFor, waitGroupGone, workersByRank } from './helpers/processes.js';
import { SMALL_FINISHED_RUN, SMALL_RUN } from './helpers/shared-run.js';

let tmp: string;
let data: string;

beforeAll(async () => {
  tmp = mkdtempSync(join(tmpdir(), 'mkey-dist-'));
  data = await makeTinyDataset(join(tmp, 'tiny'));
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A TCP port nobody listens on now (for torchrun's master). */
async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

interface Started {
  child: ChildProcess;
  out: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; seconds: number }>;
}

/** Starts the CLI as a user's terminal would, collecting stdout + stderr. */
function start(args: string[], env: NodeJS.ProcessEnv = {}): Started {
  const t0 = Date.now();
  const child = spawn('node', [cliPath, ...args], { cwd: repoRoot, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  child.stdout!.on('data', (d: Buffer) => (text += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (text += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; seconds: number }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal, seconds: (Date.now() - t0) / 1000 })),
  );
  return { child, out: () => text, exited };
}

const events = (workDir: string): Record<string, unknown>[] => {
  const p = join(workDir, 'mkey-events.jsonl');
  if (!existsSync(p)) return [];
  return readFileSync(p, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
};
const firstEvent = (workDir: string, name: string) => () => events(workDir).find((e) => e.event === name);
const runRecord = (workDir: string) => JSON.parse(readFileSync(join(workDir, 'mkey-run.json'), 'utf8')) as Record<string, unknown>;
/** A run this file stops or kills (with the stock DataLoader workers, which must end with it). */
const trainArgs = (workDir: string, ...more: string[]) => ['train', ...SMALL_RUN, '--data', data, '--work-dir', workDir, ...more];
/** A run that ends by itself (no DataLoader workers: see NO_LOADER_WORKERS). */
const finishedTrainArgs = (workDir: string, ...more: string[]) => ['train', ...SMALL_FINISHED_RUN, '--data', data, '--work-dir', workDir, ...more];

describe('--nproc-per-node: the torchrun path on CPU processes (gloo)', () => {
  let ckpt: string;

  /** Starts `args`, waits for the checkpoint of `epoch`, sends Ctrl-C; returns the output, the exit and the tree it had. */
  async function interruptAfterCheckpoint(wd: string, args: string[], epoch: number) {
    const seen = events(wd).length;
    const run = start(args);
    await waitFor(() => events(wd).slice(seen).find((e) => e.event === 'checkpoint' && e.epoch === epoch), 300_000, `the checkpoint of epoch ${epoch}`);
    const tree = descendants(run.child.pid!);
    run.child.kill('SIGINT');
    const end = await run.exited;
    await waitAllGone(tree, 15_000);
    return { out: run.out(), end, added: events(wd).slice(seen) };
  }
  const lastIter = (evs: Record<string, unknown>[]) => evs.filter((e) => e.event === 'iter').at(-1)!;
  const firstOf = (evs: Record<string, unknown>[], name: string) => evs.find((e) => e.event === name)!;

  it('Ctrl-C stops every process at an iteration boundary; --resume goes on across world sizes (1 -> 2 -> 1) at the right iteration and lr', async () => {
    const wd = join(tmp, 'two');
    const port = () => freePort().then(String);
    // 1 process, epoch 1, Ctrl-C
    const one = await interruptAfterCheckpoint(wd, trainArgs(wd, '--max-epochs', '3'), 1);
    expect(one.end.code).toBe(130);
    // where each launch stopped: the iteration its checkpoint saved (iter events come every few iterations)
    const savedAt = (evs: Record<string, unknown>[], epoch: number) => Number(evs.find((e) => e.event === 'checkpoint' && e.epoch === epoch)!.iter);
    const iter1 = lastIter(one.added);
    const saved1 = savedAt(one.added, 1);

    // 1 -> 2: resumed with 2 processes, epoch 2, Ctrl-C
    const two = await interruptAfterCheckpoint(wd, ['train', '--work-dir', wd, '--resume', '--nproc-per-node', '2', '--master-port', await port()], 2);
    console.log(`resumed with 2 processes, Ctrl-C after epoch 2:\n${two.out}\n(exit ${two.end.code} after ${two.end.seconds.toFixed(0)} s)`);
    expect(two.end.code).toBe(130);
    expect(two.out).toContain('launching 2 CPU processes (gloo) with torchrun');
    expect(two.out).toContain('on 2 cpu process(es)');
    expect(firstOf(two.added, 'start').world_size).toBe(2);
    expect(firstOf(two.added, 'start').start_iter).toBe(saved1);
    const first2 = firstOf(two.added, 'iter');
    expect([first2.epoch, first2.iter]).toEqual([2, saved1 + 1]);
    expect(two.added.some((e) => e.event === 'stopped')).toBe(true);
    expect(runRecord(wd).status).toBe('interrupted');
    expect(two.out).toContain(`Resume with: mkey-det train --work-dir ${wd} --resume`);
    const iter2 = lastIter(two.added);
    const saved2 = savedAt(two.added, 2);

    // 2 -> 1: resumed with one process, epoch 3, to the end
    const seen = events(wd).length;
    const three = await runCli(['train', '--work-dir', wd, '--resume']);
    expect(three.exitCode).toBe(0);
    const added = events(wd).slice(seen);
    expect(firstOf(added, 'start').world_size).toBe(1);
    const first3 = firstOf(added, 'iter');
    expect(firstOf(added, 'start').start_iter).toBe(saved2);
    expect([first3.epoch, first3.iter]).toEqual([3, saved2 + 1]);
    const lr = (e: Record<string, unknown>) => Number(e.lr).toExponential(2);
    console.log(
      `resume across world sizes: 1 process saved at iter ${saved1} (last logged lr ${lr(iter1)}); 2 processes went on at iter ${String(first2.iter)} (lr ${lr(first2)}) ` +
        `and saved at ${saved2} (lr ${lr(iter2)}); 1 process went on at iter ${String(first3.iter)} (lr ${lr(first3)})`,
    );
    // the schedule of an uninterrupted run at those iterations: the warm-up (LinearLR by iteration)
    // times the step decay (MultiStepLR by epoch), read from the run's own config
    const sched = JSON.parse(
      execFileSync(testPython, ['-c', 'import json,sys; from mmengine import Config; c = Config.fromfile(sys.argv[1]); print(json.dumps([c.optim_wrapper.optimizer.lr, c.param_scheduler]))', join(wd, 'config.py')], { encoding: 'utf8' }),
    ) as [number, { type: string; start_factor?: number; end?: number; milestones?: number[]; gamma?: number }[]];
    const [base, schedulers] = sched;
    const warm = schedulers.find((x) => x.type === 'LinearLR')!;
    const steps = schedulers.find((x) => x.type === 'MultiStepLR')!;
    const expected = (iter: number, epoch: number) =>
      base *
      // mmengine's LinearLR reaches the full lr at its last step, end - begin - 1 (begin is 0 here)
      (warm.start_factor! + (1 - warm.start_factor!) * (Math.min(iter, warm.end! - 1) / (warm.end! - 1))) *
      steps.gamma! ** steps.milestones!.filter((m) => m <= epoch - 1).length;
    for (const e of [iter1, first2, iter2, first3]) expect(Number(e.lr)).toBeCloseTo(expected(Number(e.iter), Number(e.epoch)), 12);
    expect(Number(first2.lr)).toBeGreaterThan(Number(iter1.lr)); // the warm-up went on, not restarted
    expect(runRecord(wd).status).toBe('completed');
    ckpt = join(wd, 'epoch_3.pth');
    expect(existsSync(ckpt)).toBe(true);
  });

  it('test: 2 processes give the box and mask AP of 1 (the val images split over the ranks)', async () => {
    // the resumed run's last validation is the 1-process evaluation of this checkpoint
    const m1 = runRecord(join(tmp, 'two')).metrics as Record<string, number>;
    const two = await runCli(['test', '--checkpoint', ckpt, '--work-dir', join(tmp, 'test-2'), '--nproc-per-node', '2', '--json']);
    expect(two.exitCode).toBe(0);
    const m2 = (JSON.parse(two.stdout) as { metrics: Record<string, number> }).metrics;
    console.log(`test, 1 process: ${JSON.stringify(m1)}\ntest, 2 processes: ${JSON.stringify(m2)}`);
    for (const k of ['coco/bbox_mAP', 'coco/segm_mAP']) {
      expect(Math.abs(100 * m1[k]! - 100 * m2[k]!)).toBeLessThanOrEqual(0.1);
    }
  });

  it('kill -9 of rank 1 ends the job within 60 s as failed, naming the rank, its signal and the log; nothing survives', async () => {
    const wd = join(tmp, 'kill-rank');
    const run = start(trainArgs(wd, '--nproc-per-node', '2', '--max-epochs', '50', '--master-port', String(await freePort())));
    await waitFor(firstEvent(wd, 'iter'), 300_000, 'the first iteration');
    const workers = workersByRank(run.child.pid!);
    expect([...workers.keys()].sort()).toEqual([0, 1]);
    const tree = descendants(run.child.pid!);
    const killedAt = Date.now();
    process.kill(workers.get(1)!, 'SIGKILL');
    const end = await run.exited;
    const seconds = (Date.now() - killedAt) / 1000;
    const line = run.out().split('\n').find((l) => l.startsWith('error: '));
    console.log(`kill -9 rank 1 (pid ${workers.get(1)}): ${line} | exit ${end.code} ${seconds.toFixed(1)} s after the kill`);
    expect(seconds).toBeLessThan(60);
    expect(end.code).toBe(1);
    expect(line).toContain(`rank 1 (pid ${workers.get(1)}) was killed by SIGKILL`);
    expect(run.out()).toContain(`full log: ${wd}/mkey-train.log`);
    const gone = await waitAllGone(tree, 60_000);
    console.log(`every process of the job gone ${gone.toFixed(1)} s after the CLI exited`);
    expect(runRecord(wd).status).toBe('failed');
  });
});

describe('pretrain --nproc-per-node 2: the classification half on the same path', () => {
  it('trains a ViT-S + SpatialK classifier with 2 processes and evaluates it over both', async () => {
    const wd = join(tmp, 'pretrain');
    const res = await runCli(['pretrain', '--backbone', 'vit-s-spatialk', '--charts', '2', '--data', 'demo', '--img-size', '32', '--batch-size', '4', '--max-iters', '2', '--work-dir', wd, '--nproc-per-node', '2', '--master-port', String(await freePort())]);
    console.log(`pretrain, 2 processes:\n${res.stderr}`);
    expect(res.exitCode).toBe(0);
    expect(events(wd).find((e) => e.event === 'start')!.world_size).toBe(2);
    expect(Object.keys((runRecord(wd).metrics as Record<string, number>) ?? {})).toContain('accuracy/top1');
  });
});

describe('the CLI killed hard (kill -9, a closed terminal)', () => {
  it('leaves neither the torchrun agent nor a worker behind', async () => {
    const wd = join(tmp, 'kill-cli');
    const run = start(trainArgs(wd, '--nproc-per-node', '2', '--max-epochs', '50', '--master-port', String(await freePort())));
    await waitFor(firstEvent(wd, 'iter'), 300_000, 'the first iteration');
    const tree = descendants(run.child.pid!);
    expect(workersByRank(run.child.pid!).size).toBe(2);
    const killedAt = Date.now();
    run.child.kill('SIGKILL');
    await run.exited;
    await waitAllGone(tree, 60_000);
    const seconds = (Date.now() - killedAt) / 1000;
    console.log(`kill -9 of the CLI: its ${tree.length} processes (torchrun agent, 2 workers, their loaders) gone ${seconds.toFixed(1)} s later`);
    expect(seconds).toBeLessThan(45); // the workers stop at the next iteration boundary; torchrun's agent kills what is left after 30 s
  });
});

describe('one training process killed from outside (the OOM killer, kill -9)', () => {
  it('ends the run as failed with one line naming the process and the signal', async () => {
    const wd = join(tmp, 'kill-trainer');
    const run = start(trainArgs(wd, '--max-epochs', '50'));
    await waitFor(firstEvent(wd, 'iter'), 300_000, 'the first iteration');
    const trainer = runRecord(wd).pid as number;
    const tree = descendants(run.child.pid!); // the trainer and what it forked (DataLoader workers)
    process.kill(trainer, 'SIGKILL');
    const end = await run.exited;
    const line = run.out().split('\n').find((l) => l.startsWith('error: '));
    console.log(`kill -9 of the trainer: ${line} | exit ${end.code} after ${end.seconds.toFixed(0)} s`);
    expect(end.code).toBe(1);
    expect(line).toBe(`error: training failed: the training process (pid ${trainer}) was killed by SIGKILL (out of memory, or by hand)`);
    expect(runRecord(wd).status).toBe('failed');
    // a forked DataLoader worker left behind once held the output pipe: the CLI waited for ever
    await waitAllGone(tree, 15_000);
    await waitGroupGone(trainer, 15_000); // the trainer led its own process group (the CLI starts it detached)
  });
});

describe('several nodes on one host (--nnodes 2 --node-rank 0|1)', () => {
  it('two CLIs form one job and finish; node 0 owns the run, node 1 writes only node-1/', async () => {
    const wd = join(tmp, 'nodes');
    const port = String(await freePort());
    const node = (rank: number) =>
      start(finishedTrainArgs(wd, '--nproc-per-node', '1', '--nnodes', '2', '--node-rank', String(rank), '--master-port', port, '--max-epochs', '1'));
    const n0 = node(0);
    const n1 = node(1);
    const [e0, e1] = await Promise.all([n0.exited, n1.exited]);
    console.log(`node 0:\n${n0.out()}\nnode 1:\n${n1.out()}`);
    expect(e0.code).toBe(0);
    expect(e1.code).toBe(0);
    expect(n0.out()).toContain('node 0 of 2: 2 CPU processes (gloo) in all; waiting for the other nodes');
    expect(events(wd).find((e) => e.event === 'start')!.world_size).toBe(2);
    expect(runRecord(wd).status).toBe('completed');
    expect(existsSync(join(wd, 'node-1', 'mkey-train.log'))).toBe(true);
  });

  it('a node killed (its CLI and every process under it, kill -9) ends the other within 60 s with a clear line', async () => {
    const wd = join(tmp, 'nodes-kill');
    const port = String(await freePort());
    const node = (rank: number) =>
      start(trainArgs(wd, '--nproc-per-node', '1', '--nnodes', '2', '--node-rank', String(rank), '--master-port', port, '--max-epochs', '50'));
    const n0 = node(0);
    const n1 = node(1);
    await waitFor(firstEvent(wd, 'iter'), 300_000, 'the first iteration');
    const tree0 = descendants(n0.child.pid!);
    const tree1 = [n1.child.pid!, ...descendants(n1.child.pid!)];
    const killedAt = Date.now();
    for (const pid of tree1) process.kill(pid, 'SIGKILL');
    const end = await n0.exited;
    const seconds = (Date.now() - killedAt) / 1000;
    const line = n0.out().split('\n').find((l) => l.startsWith('error: '));
    console.log(`node 1 killed: node 0 printed ${line} | exit ${end.code} ${seconds.toFixed(1)} s after the kill`);
    expect(seconds).toBeLessThan(60);
    expect(end.code).toBe(1);
    expect(line).toMatch(/^error: training failed: rank 0 \(pid \d+\) exited with code 1: .*(Connection closed by peer|Connection reset by peer|timed out)/i);
    await waitAllGone([...tree0, ...tree1], 60_000);
    expect(runRecord(wd).status).toBe('failed');
  });

  it('a node that never arrives: node 0 says whom it waits for and gives up after MKEY_RENDEZVOUS_TIMEOUT_S', async () => {
    const wd = join(tmp, 'alone');
    const run = start(trainArgs(wd, '--nproc-per-node', '1', '--nnodes', '2', '--node-rank', '0', '--master-port', String(await freePort())), {
      MKEY_RENDEZVOUS_TIMEOUT_S: '10',
    });
    const end = await run.exited;
    const line = run.out().split('\n').find((l) => l.startsWith('error: '));
    console.log(`${run.out()}\n(exit ${end.code} after ${end.seconds.toFixed(0)} s)`);
    expect(run.out()).toContain('waiting for the other nodes at 127.0.0.1:');
    expect(run.out()).toContain('gives up after 10 s');
    expect(end.code).toBe(1);
    expect(line).toMatch(/timed out|Timed out|waiting for clients/);
    expect(end.seconds).toBeLessThan(120);
  });
});

describe('--launcher slurm through an srun stand-in (one task per rank with the SLURM_* variables)', () => {
  it('trains and evaluates with 2 tasks', async () => {
    const wd = join(tmp, 'slurm');
    const PATH = `${join(repoRoot, 'test', 'helpers', 'slurm')}:${process.env.PATH}`;
    const res = await runCli(finishedTrainArgs(wd, '--launcher', 'slurm', '--nproc-per-node', '2', '--max-epochs', '1'), { env: { ...process.env, PATH, MASTER_PORT: String(await freePort()) } });
    console.log(`slurm stand-in:\n${res.stderr}`);
    expect(res.exitCode).toBe(0);
    expect(res.stderr).toContain('launching 2 CPU processes (gloo) with srun');
    const record = runRecord(wd);
    expect((record.command as string[])[0]).toBe('srun');
    expect(record.status).toBe('completed');
    expect(events(wd).find((e) => e.event === 'start')!.world_size).toBe(2);
    expect(events(wd).some((e) => e.event === 'val')).toBe(true);
  });
});
