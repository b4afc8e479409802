/**
 * A sweep's matrix: the axes as a person types them (`--backbone swin-t,swin-t-spatialk --charts
 * 4,8 --seeds 0,1,2 --vary key=a,b`), expanded into cells. Each cell is one ordinary run of the
 * task's command (`train` or `pretrain`) with the flags of its row, in the run directory that
 * command names it (the command's own naming function, handed in by the task), so a sweep's cell
 * and a hand-typed run of the same flags are the same folder.
 */
import { createHash } from 'node:crypto';
import { isAbsolute, join, resolve } from 'node:path';
import { BadInputError, quoteValue } from '../../utils/errors.js';

/** The two tasks a sweep runs: detection through `mkey-det train`, classification through `mkey-det pretrain`. */
export const SWEEP_TASKS = ['detection', 'classification'] as const;
export type SweepTaskName = (typeof SWEEP_TASKS)[number];

/** What a sweep is: its axes and the options every cell shares, as typed. */
export interface SweepSpec {
  task: SweepTaskName;
  backbones: string[];
  charts: number[];
  seeds: number[];
  /** `--vary KEY=V1,V2`: a config value (`--cfg-options KEY=V`) as one more axis. */
  vary: { key: string; values: string[] }[];
  /**
   * A train / pretrain option given a comma list (`--cb-mode eq4,none`): one more axis each, in
   * the order typed. Absent when there is none, so a sweep recorded before keeps its id.
   */
  axes?: OptionAxis[];
  /** The task command's other options, given to every cell as typed. */
  options: string[];
}

/** A command option as an axis of the matrix: `--cb-mode eq4,none`. */
export interface OptionAxis {
  flag: string;
  values: string[];
}

/**
 * The command options a sweep takes as an axis when given a comma list, and how a cell's run
 * directory names the value. `null`: the command's own name holds it already (`train`'s schedule,
 * `pretrain`'s recipe: `swin-t-3x-coco-s0`, `swin-t-paper-3x-coco-s0`); otherwise a tag appended,
 * as a `--vary` value is (`-cb-none`, `-img512x512`). Only options whose values hold no comma.
 */
export const AXIS_OPTIONS: Record<string, ((value: string) => string) | null> = {
  '--schedule': null,
  '--recipe': null,
  '--cb-mode': (v) => `cb-${v}`,
  '--img-scale': (v) => `img${v}`,
  '--img-size': (v) => `img${v}`,
  '--batch-size': (v) => `b${v}`,
  '--max-epochs': (v) => `e${v}`,
  '--max-iters': (v) => `${v}it`,
  '--attn-impl': (v) => `attn-${v}`,
  '--key-order': (v) => `order-${v}`,
};

/** The launch part of the cells' options (read from them; the sweep itself needs it for the cost and Slurm). */
export interface CellLaunch {
  gpus: number;
  nprocPerNode: number;
  nnodes: number;
  launcher: string;
}

/** The figures of one cell's run that its cost needs (see cost.ts). */
export interface CellCostInput {
  task: SweepTaskName;
  /** `linear`, `spatialk`, ... */
  keyType: string;
  /** `swin-t`, `vit-s`, `vit-b`. */
  family: string;
  /** Charts of a manifold key; null for the linear key. */
  charts: number | null;
  batchSize: number;
  amp: 'fp16' | 'bf16' | false;
  /** Epochs of the schedule or recipe (with `--max-epochs` applied); ignored with `maxIters`. */
  epochs: number;
  maxIters?: number;
  /** `coco`, `demo` or a folder (absolute). */
  data: { kind: 'coco' } | { kind: 'demo' } | { kind: 'dir'; path: string };
  /** `paper`, `stock`, `demo` (classification only). */
  recipe?: string;
}

/** One cell's run as its command sees it. */
export interface CellExperiment {
  /** The run directory the command names it (relative to the working directory, `work_dirs/...`). */
  workDir: string;
  cost: CellCostInput;
  launch: CellLaunch;
}

/**
 * What a sweep needs of a task's command: its name, its backbones, and its own reading of a cell's
 * option values (commander's raw values, as the command's action gets them: the command's schema
 * checks them, its naming function names the run). Built by `src/commands/sweep.ts`.
 */
export interface SweepTask {
  name: SweepTaskName;
  command: 'train' | 'pretrain';
  backbones: readonly string[];
  defaultBackbone: string;
  usesCharts(backbone: string): boolean;
  /** The shared options, parsed once by the command's own parser: raw values (defaults filled in). */
  parseShared(options: string[]): Record<string, unknown>;
  /** One cell's options (raw values) -> its run; a bad value throws a one-line BadInputError. */
  describe(raw: Record<string, unknown>): CellExperiment;
  /** The command's options that can be an axis (of `AXIS_OPTIONS`, those the command takes). */
  axisFlags: readonly string[];
  /** One value of an axis option, checked by the command's own schema (throws its one-line BadInputError). */
  checkAxisValue(options: string[], flag: string, value: string): void;
  /** Why an axis option does not apply to a backbone (`--cb-mode` to a key without CB): it gets one cell, without the option. */
  axisSkip(flag: string, backbone: string): string | undefined;
}

export interface SweepCell {
  /** The run directory's name (`swin-t-spatialk-c8-3x-coco-s1`): the cell's name in the sweep. */
  name: string;
  /** Absolute run directory. */
  workDir: string;
  backbone: string;
  /** null: the backbone has no charts (the linear key). */
  charts: number | null;
  seed: number;
  /** `--vary` values of this cell, by key. */
  vary: Record<string, string>;
  /** Values of the option axes of this cell, by flag (`{'--cb-mode': 'none'}`); an axis that does not apply to the backbone is absent. */
  axes?: Record<string, string>;
  /** The command line after `mkey-det`: `train ... --work-dir DIR` (without `--resume` / `--force`, which the queue adds). */
  args: string[];
}

export interface ExpandedCell extends SweepCell {
  cost: CellCostInput;
  launch: CellLaunch;
}

export interface Expansion {
  cells: ExpandedCell[];
  /** One line per axis value that gave no cell of its own (e.g. `--charts` for the linear key). */
  collapsed: string[];
}

/** Options of the task command that the sweep sets per cell or itself: refused among the shared ones. */
export const OPTIONS_SET_BY_SWEEP: Record<string, string> = {
  '--seed': 'give the seeds as --seeds 0,1,2 (an axis of the matrix)',
  '--work-dir': 'the sweep names each cell\'s run directory as the command does (see the plan); choose the sweep\'s own folder with --sweep-dir',
  '--resume': 'the sweep resumes an interrupted cell itself: run the same sweep command again',
  '--force': 'the sweep starts a cell over only when it started that cell before and no checkpoint is left',
  '--config': 'a sweep generates each cell\'s config from the experiment options; give those',
};

/**
 * A comma-separated list (`4,8`) as items: empty items, and an item given twice, are refused with
 * one line naming the flag, the value and what is accepted.
 */
export function parseList<T>(flag: string, raw: string, parseItem: (item: string) => T | undefined, accepted: string): T[] {
  const items = raw.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) throw new BadInputError(`invalid ${flag} ${quoteValue(raw)}: an empty item (expected a comma-separated list, e.g. ${accepted})`);
  const seen = new Set<string>();
  return items.map((item) => {
    if (seen.has(item)) throw new BadInputError(`invalid ${flag} ${quoteValue(raw)}: ${quoteValue(item)} is given twice`);
    seen.add(item);
    const value = parseItem(item);
    if (value === undefined) throw new BadInputError(`invalid ${flag} ${quoteValue(raw)}: ${quoteValue(item)} is not accepted (accepted: ${accepted})`);
    return value;
  });
}

/** An integer in [min, max] from a list item, else undefined. */
export function intItem(min: number, max: number): (item: string) => number | undefined {
  return (item) => {
    if (!/^\d+$/.test(item)) return undefined;
    const n = Number(item);
    return n >= min && n <= max ? n : undefined;
  };
}

/**
 * `--vary KEY=V1,V2` -> one axis. Commas inside brackets or quotes belong to a value
 * (`--vary model.backbone.out_indices=[0,1],[1,2]`).
 */
export function parseVary(raw: string): { key: string; values: string[] } {
  const eq = raw.indexOf('=');
  const key = eq > 0 ? raw.slice(0, eq) : '';
  if (!/^[A-Za-z_][A-Za-z0-9_]*(\.([A-Za-z_][A-Za-z0-9_]*|\d+))*$/.test(key)) {
    throw new BadInputError(`invalid --vary ${quoteValue(raw)}: expected KEY=V1,V2 with a dotted config key, e.g. model.backbone.drop_path_rate=0.1,0.2`);
  }
  const values: string[] = [];
  let depth = 0;
  let quote: string | undefined;
  let current = '';
  for (const c of raw.slice(eq + 1)) {
    if (quote) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if ('[({'.includes(c)) depth++;
    else if (')]}'.includes(c)) depth--;
    else if (c === ',' && depth === 0) {
      values.push(current);
      current = '';
      continue;
    }
    current += c;
  }
  values.push(current);
  if (values.some((v) => v.trim() === '')) throw new BadInputError(`invalid --vary ${quoteValue(raw)}: an empty value (expected KEY=V1,V2, e.g. model.backbone.drop_path_rate=0.1,0.2)`);
  if (values.length < 2) throw new BadInputError(`invalid --vary ${quoteValue(raw)}: one value is no axis (give it with --cfg-options, or two values or more: KEY=V1,V2)`);
  if (new Set(values).size !== values.length) throw new BadInputError(`invalid --vary ${quoteValue(raw)}: a value is given twice`);
  return { key, values };
}

/**
 * The option axes among the shared options: an axis option (`task.axisFlags`) given a comma list,
 * `--cb-mode eq4,none` or `--cb-mode=eq4,none`, is taken out of them as an axis; each value is
 * checked once by the command's own schema (one line naming it and what is accepted, exit 2).
 * A single value stays a shared option; an axis option given twice is refused.
 */
export function splitOptionAxes(options: string[], task: Pick<SweepTask, 'axisFlags' | 'checkAxisValue'>): { options: string[]; axes: OptionAxis[] } {
  const rest: string[] = [];
  const found: { flag: string; raw: string }[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < options.length; i++) {
    const word = options[i]!;
    const eq = word.indexOf('=');
    const flag = word.startsWith('--') && eq > 0 ? word.slice(0, eq) : word;
    if (!task.axisFlags.includes(flag)) {
      rest.push(word);
      continue;
    }
    if (seen.has(flag)) throw new BadInputError(`${flag} is given twice: give its values once, comma-separated (e.g. ${flag} a,b is one axis of the matrix)`);
    seen.add(flag);
    const inline = eq > 0 && flag !== word;
    const value = inline ? word.slice(eq + 1) : options[i + 1];
    if (value === undefined || !value.includes(',')) {
      rest.push(word);
      continue;
    }
    if (!inline) i++;
    found.push({ flag, raw: value });
  }
  const axes = found.map(({ flag, raw }) => {
    // the example of the one-line error on an empty item: the values given, or (none given) what they are
    const given = raw.split(',').filter((v) => v.trim() !== '').join(',');
    const values = parseList(flag, raw, (v) => v, given || `${flag} a,b with values the command takes`);
    for (const v of values) {
      try {
        task.checkAxisValue(rest, flag, v);
      } catch (err) {
        if (!(err instanceof BadInputError)) throw err;
        const prefix = `invalid ${flag} ${quoteValue(v)}: `;
        if (!err.message.startsWith(prefix)) throw err;
        const why = err.message.slice(prefix.length);
        throw new BadInputError(`invalid ${flag} ${quoteValue(raw)}: ${quoteValue(v)} is not accepted${why.startsWith('accepted: ') ? ` (${why})` : `: ${why}`}`);
      }
    }
    return { flag, values };
  });
  return { options: rest, axes };
}

/** `--cb-mode` -> `cbMode`: commander's attribute name of a long flag. */
const attributeOf = (flag: string): string => flag.replace(/^--/, '').replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The `--cb-mode eq4,none` axes' combinations for one backbone (an axis that does not apply to it: one combination without it). */
function axisCombinations(axes: OptionAxis[], applies: (flag: string) => boolean): Record<string, string>[] {
  let out: Record<string, string>[] = [{}];
  for (const axis of axes) {
    if (!applies(axis.flag)) continue;
    out = out.flatMap((combo) => axis.values.map((v) => ({ ...combo, [axis.flag]: v })));
  }
  return out;
}

/** A `--vary` value in a folder name: the last part of its key and the value, reduced to safe characters. */
function varySuffix(key: string, value: string): string {
  const last = key.split('.').at(-1)!;
  return `-${last}-${safeName(value)}`;
}

/** A value reduced to the characters a folder name keeps. */
function safeName(value: string): string {
  return value.replace(/[^A-Za-z0-9._-]+/g, '_').replace(/^_+|_+$/g, '') || 'x';
}

/** Every combination of the `--vary` axes (one empty combination without any). */
function varyCombinations(vary: SweepSpec['vary']): Record<string, string>[] {
  let out: Record<string, string>[] = [{}];
  for (const axis of vary) out = out.flatMap((combo) => axis.values.map((v) => ({ ...combo, [axis.key]: v })));
  return out;
}

/**
 * The cells of `spec`, in the order they run: backbone, then charts, then the option axes
 * (`--cb-mode eq4,none`, in the order typed), then `--vary`, then seed (the seeds of one
 * configuration one after another, so a partial sweep has whole groups first). A combination
 * whose run the command names like an earlier one (the linear key's `--charts`) is the same run:
 * it collapses into that cell, said in `collapsed`; so does an option axis that does not apply to
 * a backbone (`--cb-mode` to a key without CB: one cell, without the option).
 */
export function expandMatrix(spec: SweepSpec, task: SweepTask, cwd: string): Expansion {
  const shared = task.parseShared(spec.options);
  const baseCfg = Array.isArray(shared.cfgOptions) ? (shared.cfgOptions as string[]) : [];
  const cells: ExpandedCell[] = [];
  const byDir = new Map<string, ExpandedCell>();
  const collapsed: string[] = [];
  const axes = spec.axes ?? [];
  for (const backbone of spec.backbones) {
    const charted = task.usesCharts(backbone);
    if (!charted && spec.charts.length > 1) {
      collapsed.push(`${backbone}: the linear key has no charts, so --charts ${spec.charts.join(',')} gives it one cell per seed, not ${spec.charts.length}`);
    }
    for (const axis of axes) {
      const why = task.axisSkip(axis.flag, backbone);
      if (why) collapsed.push(`${backbone}: ${why}, so ${axis.flag} ${axis.values.join(',')} gives it one cell per seed, not ${axis.values.length}`);
    }
    for (const charts of charted ? spec.charts : spec.charts.slice(0, 1)) {
      for (const picked of axisCombinations(axes, (flag) => task.axisSkip(flag, backbone) === undefined)) {
      for (const vary of varyCombinations(spec.vary)) {
        for (const seed of spec.seeds) {
          const varyPairs = Object.entries(vary).map(([k, v]) => `${k}=${v}`);
          const axisArgs = Object.entries(picked).flatMap(([flag, v]) => [flag, v]);
          const axisRaw = Object.fromEntries(Object.entries(picked).map(([flag, v]) => [attributeOf(flag), v]));
          const raw = { ...shared, ...axisRaw, backbone, charts: String(charts), seed: String(seed), cfgOptions: [...baseCfg, ...varyPairs] };
          const exp = task.describe(raw);
          const tags = Object.entries(picked).flatMap(([flag, v]) => {
            const tag = AXIS_OPTIONS[flag];
            return tag ? [`-${safeName(tag(v))}`] : [];
          });
          const named = exp.workDir + tags.join('') + Object.entries(vary).map(([k, v]) => varySuffix(k, v)).join('');
          const workDir = isAbsolute(named) ? named : resolve(cwd, named);
          const earlier = byDir.get(workDir);
          if (earlier) {
            collapsed.push(`${backbone}${charted ? ` --charts ${charts}` : ''}${axisArgs.length ? ` ${axisArgs.join(' ')}` : ''} --seed ${seed}${varyPairs.length ? ` ${varyPairs.join(' ')}` : ''}: the same run as cell ${earlier.name}`);
            continue;
          }
          const args = [
            task.command,
            ...spec.options,
            '--backbone',
            backbone,
            ...(charted ? ['--charts', String(charts)] : []),
            ...axisArgs,
            '--seed',
            String(seed),
            ...varyPairs.flatMap((p) => ['--cfg-options', p]),
            '--work-dir',
            workDir,
          ];
          const cell: ExpandedCell = {
            name: workDir.split('/').at(-1)!,
            workDir,
            backbone,
            charts: charted ? charts : null,
            seed,
            vary,
            axes: picked,
            args,
            cost: exp.cost,
            launch: exp.launch,
          };
          byDir.set(workDir, cell);
          cells.push(cell);
        }
      }
      }
    }
  }
  return { cells, collapsed };
}

/** A short stable id of a sweep's matrix: the same flags give the same default folder, so running the command again continues it. */
export function specId(spec: SweepSpec): string {
  return createHash('sha256').update(JSON.stringify(spec)).digest('hex').slice(0, 8);
}

/** The default sweep folder: `work_dirs/sweep-<name>`, the name `--name` or `<command>-<data>-<matrix id>`. */
export function defaultSweepDir(spec: SweepSpec, task: SweepTask, cells: ExpandedCell[], name: string | undefined, cwd: string): string {
  const data = cells[0]?.cost.data;
  const dataName = data === undefined ? 'none' : data.kind === 'dir' ? 'custom' : data.kind;
  return join(resolve(cwd, 'work_dirs'), `sweep-${name ?? `${task.command}-${dataName}-${specId(spec)}`}`);
}

/** The matrix as one line: `--backbone a,b x --charts 4,8 x --seeds 0,1,2`. */
export function matrixLine(spec: SweepSpec): string {
  const axes = [`--backbone ${spec.backbones.join(',')}`, `--charts ${spec.charts.join(',')}`];
  for (const a of spec.axes ?? []) axes.push(`${a.flag} ${a.values.join(',')}`);
  for (const v of spec.vary) axes.push(`--vary ${v.key}=${v.values.join(',')}`);
  axes.push(`--seeds ${spec.seeds.join(',')}`);
  return axes.join(' x ');
}
