/** Parses a command's raw commander options with its zod schema into a typed object. */
import { z } from 'zod';
import { BadInputError, quoteValue } from './errors.js';

/**
 * Turns zod's first issue into one line naming the option, the bad value and what is accepted.
 * The value is shortened (first 80 characters, then `… (N characters)`): a 100 KB value pasted by
 * mistake must not become a 100 KB error line.
 */
export function parseOptions<S extends z.ZodType>(schema: S, raw: unknown): z.infer<S> {
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  const issue = result.error.issues[0]!;
  const key = issue.path.map(String).join('.');
  const flag = key ? `--${key.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}` : 'input';
  const value = key ? (raw as Record<string, unknown>)[String(issue.path[0])] : raw;
  const shown = value === undefined ? '(missing)' : quoteValue(value);
  throw new BadInputError(`invalid ${flag} ${shown}: ${issue.message}`);
}

/** A CLI integer option (commander hands us strings). */
export const intOption = (name: string, min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.coerce
    .string()
    .transform((s, ctx) => {
      const t = s.trim();
      if (!/^-?\d+$/.test(t)) {
        ctx.addIssue({ code: 'custom', message: `${name} must be an integer between ${min} and ${max}` });
        return z.NEVER;
      }
      const n = Number(t);
      if (n < min || n > max) {
        ctx.addIssue({ code: 'custom', message: `${name} must be an integer between ${min} and ${max}` });
        return z.NEVER;
      }
      return n;
    });

/** A string option turned into a value by `parse`, whose thrown message becomes the option's error. */
export const parsedOption = <T>(parse: (s: string) => T) =>
  z.string().transform((s, ctx) => {
    try {
      return parse(s);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
