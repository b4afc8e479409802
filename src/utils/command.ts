/**
 * How every command runs: its whole action (option parsing included) inside the one error
 * handler, and commander's own usage errors (unknown option, missing argument) answered the
 * same way, so that `--json` always yields one parseable JSON object on stdout.
 */
import type { Command, CommanderError } from 'commander';
import { BadInputError, ExitCode, handleError } from './errors.js';

/** Whether the command line asks for JSON output (`--json` before any `--`). */
export function jsonRequested(argv: readonly string[] = process.argv): boolean {
  const end = argv.indexOf('--');
  return (end === -1 ? argv : argv.slice(0, end)).includes('--json');
}

/**
 * Wraps a commander action: anything it throws, from parsing its options to the last line, goes
 * to `handleError` with the command's `--json`/`--verbose` (commander passes the Command last).
 */
export function guardedAction<Args extends unknown[]>(fn: (...args: Args) => Promise<void> | void): (...args: Args) => Promise<void> {
  return async (...args: Args) => {
    try {
      await fn(...args);
    } catch (err) {
      const cmd = args[args.length - 1] as Command | undefined;
      const flags = typeof cmd?.opts === 'function' ? cmd.opts<{ json?: unknown; verbose?: unknown }>() : {};
      handleError(err, { json: flags.json === true || jsonRequested(), verbose: flags.verbose === true });
    }
  };
}

/** commander's usage errors: exit 2 (bad input); under `--json` the JSON error object instead of commander's text. */
function exitOnUsageError(err: CommanderError): never {
  if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
    process.exit(ExitCode.ok);
  }
  if (err.exitCode === 0) process.exit(ExitCode.ok);
  if (jsonRequested()) handleError(new BadInputError(err.message.replace(/^error: /, '')), { json: true });
  process.exit(ExitCode.badInput);
}

/** Gives `cmd` the usage-error behaviour above (commander does not pass it down to subcommands). */
export function withUsageErrors(cmd: Command): Command {
  return cmd
    .showHelpAfterError('(run with --help for usage)')
    .configureOutput({
      // under --json stdout carries the error object; commander's text would be a second, unparseable shape
      outputError: (text, write) => {
        if (!jsonRequested()) write(text);
      },
      writeErr: (text) => {
        if (!jsonRequested()) process.stderr.write(text);
      },
    })
    .exitOverride(exitOnUsageError);
}
