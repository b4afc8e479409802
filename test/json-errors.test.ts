/**
 * One error path for every command: under --json, a bad option value and an unknown option both
 * give one JSON error object on stdout (nothing else there), the bad-input exit code, and no
 * commander text. Each case is refused before any Python starts.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

interface JsonErrorBody {
  ok: boolean;
  error: { code: string; exitCode: number; message: string; hint?: string };
}

/** A bad value for each command, and the words its message must contain. */
const BAD_VALUES: [command: string, args: string[], mentions: RegExp][] = [
  ['doctor', ['doctor', '--json', 'extra-argument'], /too many arguments|extra-argument/],
  ['config', ['config', '--charts', '0', '--json'], /--charts "0".*between 1 and 64/],
  ['train', ['train', '--gpus', '-1', '--json'], /--gpus "-1"/],
  ['pretrain', ['pretrain', '--recipe', 'long', '--json'], /--recipe "long".*accepted: paper, stock, demo/],
  ['test', ['test', '--json'], /--checkpoint/],
  ['report', ['report', 'work_dirs', '--best', '--last', '--json'], /--best and --last exclude each other/],
  ['export', ['export', '--tolerance', '2', '--json'], /--tolerance "2".*between 0 and 1/],
  ['run-onnx', ['run-onnx', 'model.onnx', 'image.png', '--runs', '0', '--json'], /--runs "0"/],
  ['bench', ['bench', '--suite', 'nope', '--json'], /--suite "nope".*accepted: /],
  ['analyze qk', ['analyze', 'qk', 'run', '--labels', 'a,,b', '--json'], /--labels .*non-empty labels/],
  ['infer', ['infer', 'run', 'image.png', '--score-thr', '2', '--json'], /--score-thr "2".*between 0 and 1/],
];

function parseOnlyLine(stdout: string): JsonErrorBody {
  const lines = stdout.split('\n').filter((l) => l.trim());
  expect(lines).toHaveLength(1);
  return JSON.parse(lines[0]!) as JsonErrorBody;
}

describe('--json errors: one shape for every command', () => {
  it.each(BAD_VALUES)('%s: a bad value is a JSON error on stdout, exit 2', async (_name, args, mentions) => {
    const res = await runCli(args);
    expect(res.exitCode).toBe(2);
    const body = parseOnlyLine(res.stdout);
    expect(body.ok).toBe(false);
    expect(body.error.code).toBe('bad_input');
    expect(body.error.exitCode).toBe(2);
    expect(body.error.message).toMatch(mentions);
    expect(body.error.message).not.toContain('\n');
    expect(res.stderr).not.toMatch(/^error:/m); // the text error is not printed besides the JSON one
  });

  it.each(BAD_VALUES.map(([name]) => [name]))('%s: an unknown option is a JSON error on stdout, exit 2', async (name) => {
    // the command's required arguments, so that the unknown option is the only mistake
    const required: Record<string, string[]> = { 'run-onnx': ['model.onnx', 'image.png'], report: ['work_dirs'], test: ['--checkpoint', 'x.pth'], 'analyze qk': ['run'], infer: ['run', 'image.png'] };
    const args = [...name.split(' '), ...(required[name] ?? [])];
    const res = await runCli([...args, '--no-such-option', '--json']);
    expect(res.exitCode).toBe(2);
    const body = parseOnlyLine(res.stdout);
    expect(body).toMatchObject({ ok: false, error: { code: 'bad_input', exitCode: 2 } });
    expect(body.error.message).toContain("unknown option '--no-such-option'");
  });

  it('an empty value is no value: infer --score-thr "" (once read as a threshold of 0)', async () => {
    const res = await runCli(['infer', 'run', 'image.png', '--score-thr', '', '--json']);
    expect(res.exitCode).toBe(2);
    expect(parseOnlyLine(res.stdout).error.message).toMatch(/--score-thr "".*between 0 and 1/);
  });

  it('without --json the same mistakes are one error line on stderr and nothing on stdout', async () => {
    const res = await runCli(['config', '--charts', '0']);
    expect(res.exitCode).toBe(2);
    expect(res.stdout).toBe('');
    expect(res.stderr.split('\n')[0]).toMatch(/^error: invalid --charts "0"/);
    const unknown = await runCli(['bench', '--no-such-option']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stdout).toBe('');
    expect(unknown.stderr.split('\n')[0]).toBe("error: unknown option '--no-such-option'");
  });
});

describe('--help: every command shows examples', () => {
  it.each(['doctor', 'config', 'train', 'pretrain', 'test', 'infer', 'report', 'export', 'run-onnx', 'bench', 'analyze', 'analyze qk'])('%s', async (name) => {
    const res = await runCli([...name.split(' '), '--help']);
    expect(res.exitCode).toBe(0);
    expect(res.stdout).toMatch(/\nExamples:\n {2}mkey-det /);
  });
});
