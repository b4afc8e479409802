/**
 * The `mkey-det config` command line that writes a given experiment's config again, byte for
 * byte: the "Regenerate with" line in the header of a generated config. Every field of the
 * experiment the rendered config depends on is spelled out; options the config does not depend
 * on (`--charts` and `--key-order` for the linear key, `--img-scale` on the demo data, whose images
 * have their own size) are left out, and `--batch-size` / `--seed` only when they differ from the
 * defaults. Values are shell-quoted, so the line can be pasted into a POSIX shell (bash for `$'...'`).
 */
import { defaultBatchSize, experimentCharts, type Experiment } from '../experiment.js';

/** Characters a shell word may hold unquoted (no globbing, expansion or splitting). */
const SAFE_WORD = /^[A-Za-z0-9_@%+=:,./-]+$/;

/**
 * One shell word for `value`: as is when safe, else single-quoted; with control characters, or
 * with `{{` / `}}` (mmengine substitutes those in a config's raw text, comments included), as
 * bash's `$'...'` with the characters escaped, so the header line stays one plain line.
 */
export function shellQuote(value: string): string {
  if (SAFE_WORD.test(value)) return value;
  if (/[\x00-\x1f\x7f]/.test(value) || /\{\{|\}\}/.test(value)) {
    const escaped = [...value]
      .map((c) => {
        const code = c.codePointAt(0)!;
        if (c === '\\' || c === "'") return `\\${c}`;
        if (c === '\n') return '\\n';
        if (c === '\t') return '\\t';
        if (c === '\r') return '\\r';
        if (code < 0x20 || code === 0x7f || c === '{' || c === '}') return `\\x${code.toString(16).padStart(2, '0')}`;
        return c;
      })
      .join('');
    return `$'${escaped}'`;
  }
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** The options of `mkey-det config` that give `exp`'s config, in the order of its --help. */
export function configArgs(exp: Experiment): string[] {
  const charts = experimentCharts(exp);
  const manifold = charts !== null;
  const args = ['--backbone', exp.backbone.name];
  if (manifold) args.push('--charts', String(charts));
  args.push('--data', exp.data.kind === 'dir' ? exp.data.path : exp.data.kind);
  args.push('--schedule', exp.schedule);
  if (exp.batchSize !== defaultBatchSize(exp.data)) args.push('--batch-size', String(exp.batchSize));
  if (exp.seed !== 0) args.push('--seed', String(exp.seed));
  if (exp.pretrained !== undefined) args.push('--pretrained', exp.pretrained);
  if (exp.maxEpochs !== undefined) args.push('--max-epochs', String(exp.maxEpochs));
  if (exp.maxIters !== undefined) args.push('--max-iters', String(exp.maxIters));
  if (exp.imageScale !== undefined && exp.data.kind !== 'demo') args.push('--img-scale', `${exp.imageScale[0]}x${exp.imageScale[1]}`);
  if (exp.amp) args.push('--amp', exp.amp);
  if (exp.attnImpl !== undefined) args.push('--attn-impl', exp.attnImpl);
  if (exp.keyOrder !== undefined && manifold) args.push('--key-order', exp.keyOrder);
  if (exp.tf32) args.push('--tf32');
  for (const b of exp.visBackends ?? []) args.push(...(b === 'tensorboard' ? ['--tensorboard'] : ['--vis-backend', b]));
  for (const [key, value] of exp.cfgOptions) args.push('--cfg-options', `${key}=${value}`);
  return args;
}

/** `mkey-det config ...` for `exp`, shell-quoted (without `--out`: the config goes to stdout). */
export function configCommandLine(exp: Experiment): string {
  return ['mkey-det', 'config', ...configArgs(exp).map(shellQuote)].join(' ');
}
