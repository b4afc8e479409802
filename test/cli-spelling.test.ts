/**
 * One spelling for the same thing across commands (issue 13): walks every command of the built CLI
 * through its `--help` (what commander prints from the definitions, subcommands included) and
 * checks that every `--out` has the short form `-o`, that `-o` means nothing else, and that every
 * command's help ends with examples. No Python needed.
 */
import { describe, expect, it } from 'vitest';
import { runCli } from './helpers/cli.js';

/** The lines of one section of commander's help (`Options:`, `Commands:`), up to the next blank line. */
function section(help: string, title: string): string[] {
  const lines = help.split('\n');
  const start = lines.indexOf(`${title}:`);
  if (start === -1) return [];
  const end = lines.findIndex((l, i) => i > start && l.trim() === '');
  return lines.slice(start + 1, end === -1 ? undefined : end);
}

/** Subcommand names listed under `Commands:` (commander's own `help` left out). */
function subcommands(help: string): string[] {
  return section(help, 'Commands')
    .map((l) => /^ {2}([a-z][\w-]*)\b/.exec(l)?.[1])
    .filter((n): n is string => n !== undefined && n !== 'help');
}

/** Options listed under `Options:`: flags start a line at two spaces (descriptions wrap further in). */
function options(help: string): { short?: string; long: string }[] {
  return section(help, 'Options').flatMap((l) => {
    const m = /^ {2}(?:(-\w), )?(--[\w-]+)/.exec(l);
    return m ? [{ ...(m[1] ? { short: m[1] } : {}), long: m[2]! }] : [];
  });
}

async function helpOf(path: string[]): Promise<string> {
  const res = await runCli([...path, '--help']);
  expect(res.exitCode, `mkey-det ${path.join(' ')} --help`).toBe(0);
  return res.stdout;
}

/** Every command, as the path typed after `mkey-det`, with its help text. */
async function allCommands(): Promise<{ path: string[]; help: string }[]> {
  const found: { path: string[]; help: string }[] = [];
  let level = subcommands(await helpOf([])).map((n) => [n]);
  while (level.length > 0) {
    const helps = await Promise.all(level.map((p) => helpOf(p)));
    const next: string[][] = [];
    level.forEach((path, i) => {
      found.push({ path, help: helps[i]! });
      for (const sub of subcommands(helps[i]!)) next.push([...path, sub]);
    });
    level = next;
  }
  return found;
}

describe('one spelling across commands', () => {
  it('every --out has -o, -o is only --out, and every command has Examples', async () => {
    const commands = await allCommands();
    const names = commands.map((c) => c.path.join(' '));
    // the walk itself works: the commands this test was written against are all found
    for (const known of ['doctor', 'config', 'train', 'pretrain', 'test', 'infer', 'report', 'export', 'run-onnx', 'bench', 'analyze', 'analyze qk', 'analyze attention']) {
      expect(names).toContain(known);
    }
    const withOut: string[] = [];
    for (const { path, help } of commands) {
      const name = `mkey-det ${path.join(' ')}`;
      const opts = options(help);
      expect(opts.length, `${name}: no options parsed from its help`).toBeGreaterThan(0);
      for (const o of opts) {
        if (o.long === '--out') expect(o.short, `${name}: --out without -o`).toBe('-o');
        if (o.short === '-o') expect(o.long, `${name}: -o is not --out`).toBe('--out');
      }
      if (opts.some((o) => o.long === '--out')) withOut.push(path.join(' '));
      const examples = section(help, 'Examples');
      expect(examples.length, `${name}: no "Examples:" section in --help`).toBeGreaterThan(0);
      expect(
        examples.some((l) => l.trimStart().startsWith(`mkey-det ${path.join(' ')}`)),
        `${name}: its Examples do not show the command`,
      ).toBe(true);
    }
    expect(withOut.sort()).toEqual(['analyze attention', 'analyze qk', 'bench', 'config', 'export', 'infer', 'report']);
  });
});
