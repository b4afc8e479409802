/**
 * What Python hands back, checked against its schema where it crosses into Node: a reply that
 * does not match is one error naming who replied and the first field that is wrong, never a
 * `TypeError` deep inside the command that read it.
 */
import type { z } from 'zod';
import { MkeyError } from '../utils/errors.js';

/** `images[0].detections[2].score` (`(top level)` for the reply itself). */
export function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const key of path) out += typeof key === 'number' ? `[${key}]` : `${out ? '.' : ''}${String(key)}`;
  return out || '(top level)';
}

/** The issues of a failed parse, one line each (field: message). */
export function issueLines(error: z.ZodError): string[] {
  return error.issues.map((i) => `${fieldPath(i.path)}: ${i.message}`);
}

/**
 * `value` parsed by `schema`, or an MkeyError `<who> replied with unexpected data at <field>: ...`
 * (exit 1: a mismatch of the two sides, not the user's input); every issue is in its detail.
 */
export function checkReply<S extends z.ZodType>(schema: S, value: unknown, who: string): z.output<S> {
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const first = parsed.error.issues[0];
  throw new MkeyError(`${who} replied with unexpected data at ${fieldPath(first?.path ?? [])}: ${first?.message ?? 'invalid'}`, {
    detail: issueLines(parsed.error).join('\n'),
  });
}
