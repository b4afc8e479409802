/**
 * The command reference docs/commands/ is generated from the CLI's own `--help`
 * (scripts/gen-command-docs.mjs): regenerated here in memory, it must equal the committed files,
 * so a changed option, help text or command cannot leave the reference behind. The failure names
 * the command and the line to rerun. No Python is started (about 15 `--help` runs of Node).
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
// @ts-expect-error: a plain ESM script without types
import { REGENERATE, ROOT, differingFiles, generateCommandDocs, listCommands, staleFiles } from '../scripts/gen-command-docs.mjs';

interface Generated {
  files: Map<string, string>;
  commands: { path: string[]; file: string; description: string }[];
}

// Generated once for the file's tests.
let generated: Promise<Generated> | undefined;
const generate = (): Promise<Generated> => (generated ??= generateCommandDocs() as Promise<Generated>);

describe('docs/commands (generated from --help)', () => {
  it('equals what the built CLI prints, for every command it lists', async () => {
    const { files, commands } = await generate();
    // The commands come from `mkey-det --help` itself: every top-level one has its page.
    const names = new Set(commands.filter((c) => c.path.length === 1).map((c) => c.path[0]));
    expect(names.has('train') && names.has('report')).toBe(true);
    for (const name of names) expect(files.has(`${name}.md`)).toBe(true);

    const problems = [
      ...(differingFiles(files) as string[]).map((file) => {
        const command = file === 'README.md' ? '' : ` ${file.replace(/\.md$/, '')}`;
        return `docs/commands/${file} is not what \`mkey-det${command} --help\` prints now`;
      }),
      ...(staleFiles(files) as string[]).map(
        (file) => `docs/commands/${file} is generated for a command \`mkey-det --help\` no longer lists`,
      ),
    ];
    expect(problems, `${problems.join('\n')}\nrerun: ${REGENERATE as string} (and commit docs/commands/)`).toEqual([]);
  });

  it('every command has a section in docs/CLI.md that its page links to', async () => {
    const { commands } = await generate();
    const cli = readFileSync(join(ROOT as string, 'docs', 'CLI.md'), 'utf8');
    const missing = commands
      .filter((c) => c.path.length === 1)
      .map((c) => `mkey-det ${c.path[0]}`)
      .filter((title) => !cli.split('\n').includes(`### ${title}`));
    expect(missing, `docs/CLI.md lacks a "### <command>" section for: ${missing.join(', ')}`).toEqual([]);
  });

  it("reads a help text's Commands section, wrapped descriptions included", () => {
    const text = [
      'Usage: x [options] [command]',
      '',
      'Commands:',
      '  qk [options] <paths...>         per layer and head, the singular',
      '                                  values of the interaction',
      '  analyze                         look inside',
      '  help [command]                  display help for command',
      '',
      'Examples:',
      '  x qk a b',
    ].join('\n');
    expect(listCommands(text)).toEqual([
      { name: 'qk', description: 'per layer and head, the singular values of the interaction' },
      { name: 'analyze', description: 'look inside' },
    ]);
    expect(listCommands('Usage: x\n\nOptions:\n  -h, --help  help\n')).toEqual([]);
  });
});
