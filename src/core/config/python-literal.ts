/**
 * Writes JavaScript values as Python literals, so that whatever a user typed (a path, a class name,
 * a --cfg-options value) lands in a generated config as data and never as code.
 *
 * Strings are escaped completely (quotes, backslashes, control characters, non-ASCII) and braces
 * are written as \x7b / \x7d: mmengine substitutes `{{ fileDirname }}`, `{{$ENV:...}}` and
 * `{{_base_.x}}` in a config's raw text before Python ever parses it, so a literal `{{` in a path
 * would otherwise be rewritten.
 */

/** A Python value in the generated source: `PyCode` is emitted verbatim (only for code we write). */
export class PyCode {
  constructor(readonly code: string) {}
}
/** A tuple (Python configs use tuples for scales, classes and betas). */
export class PyTuple {
  constructor(readonly items: PyValue[]) {}
}
export type PyValue =
  | null
  | boolean
  | number
  | string
  | PyCode
  | PyTuple
  | PyValue[]
  | { [key: string]: PyValue | undefined };

export function pythonString(s: string): string {
  let out = "'";
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    if (ch === "'") out += "\\'";
    else if (ch === '\\') out += '\\\\';
    else if (ch === '{') out += '\\x7b';
    else if (ch === '}') out += '\\x7d';
    else if (cp >= 0x20 && cp < 0x7f) out += ch;
    else if (cp < 0x100) out += '\\x' + cp.toString(16).padStart(2, '0');
    else if (cp < 0x10000) out += '\\u' + cp.toString(16).padStart(4, '0');
    else out += '\\U' + cp.toString(16).padStart(8, '0');
  }
  return out + "'";
}

const IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const PY_KEYWORDS = new Set(['False', 'None', 'True', 'and', 'as', 'assert', 'async', 'await', 'break', 'class', 'continue', 'def', 'del', 'elif', 'else', 'except', 'finally', 'for', 'from', 'global', 'if', 'import', 'in', 'is', 'lambda', 'nonlocal', 'not', 'or', 'pass', 'raise', 'return', 'try', 'while', 'with', 'yield']);

/** A finite number as Python source: JS's shortest round-trip form is a Python literal too (`3`, `1e-06`, `0.0001`). */
export function pythonNumber(n: number): string {
  if (!Number.isFinite(n)) throw new Error(`cannot write ${n} into a config (only finite numbers)`);
  return String(n);
}

/** `open items close` on one line when short (80 characters), else one item a line at `indent`. */
function bracketed(open: string, items: string[], close: string, indent: number, oneItemSuffix = ''): string {
  const flat = `${open}${items.join(', ')}${oneItemSuffix}${close}`;
  if (flat.length <= 80 && !flat.includes('\n')) return flat;
  const pad = '    '.repeat(indent + 1);
  return `${open}\n${items.map((i) => pad + i + ',').join('\n')}\n${'    '.repeat(indent)}${close}`;
}

/** Renders `value` as Python source, indented for nesting depth `indent`. */
export function toPythonLiteral(value: PyValue | undefined, indent = 0): string {
  if (value === null || value === undefined) return 'None';
  if (value instanceof PyCode) return value.code;
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') return pythonNumber(value);
  if (typeof value === 'string') return pythonString(value);
  if (value instanceof PyTuple) {
    if (value.items.length === 0) return '()';
    const items = value.items.map((v) => toPythonLiteral(v, indent + 1));
    return bracketed('(', items, ')', indent, items.length === 1 ? ',' : '');
  }
  if (Array.isArray(value)) return bracketed('[', value.map((v) => toPythonLiteral(v, indent + 1)), ']', indent);
  const entries = Object.entries(value).filter(([, v]) => v !== undefined);
  if (entries.length === 0) return 'dict()';
  // dict(key=...) reads like MMDetection's own configs; keys that are not identifiers use {...}.
  const allIdent = entries.every(([k]) => IDENT.test(k) && !PY_KEYWORDS.has(k));
  const parts = entries.map(([k, v]) =>
    allIdent ? `${k}=${toPythonLiteral(v, indent + 1)}` : `${pythonString(k)}: ${toPythonLiteral(v, indent + 1)}`,
  );
  return allIdent ? bracketed('dict(', parts, ')', indent) : bracketed('{', parts, '}', indent);
}

/**
 * Parses a `--cfg-options` value the way mmengine's DictAction does (ints, floats, True/False,
 * None, quoted strings, [lists] / (tuples), comma lists), into data; anything else is a string.
 */
export function parseCfgValue(raw: string): PyValue {
  const s = raw.trim();
  const splitTop = (body: string): string[] => {
    const parts: string[] = [];
    let depth = 0;
    let quote: string | null = null;
    let cur = '';
    for (const ch of body) {
      if (quote) {
        if (ch === quote) quote = null;
        cur += ch;
      } else if (ch === '"' || ch === "'") {
        quote = ch;
        cur += ch;
      } else if (ch === '[' || ch === '(') {
        depth++;
        cur += ch;
      } else if (ch === ']' || ch === ')') {
        depth--;
        cur += ch;
      } else if (ch === ',' && depth === 0) {
        parts.push(cur);
        cur = '';
      } else cur += ch;
    }
    if (cur.trim() !== '') parts.push(cur);
    return parts;
  };
  if ((s.startsWith('[') && s.endsWith(']')) || (s.startsWith('(') && s.endsWith(')'))) {
    const items = splitTop(s.slice(1, -1)).map(parseCfgValue);
    return s.startsWith('[') ? items : new PyTuple(items);
  }
  // Scalars as mmengine's DictAction (tools/train.py --cfg-options) reads them: int(), then
  // float() (underscores between digits, a leading +, inf and nan included), then true/false in
  // any case, then exactly None; anything else stays a string (test/config.test.ts compares).
  const digits = '\\d+(?:_\\d+)*';
  if (new RegExp(`^[-+]?${digits}$`).test(s)) return Number(s.replace(/_/g, ''));
  if (new RegExp(`^[-+]?(${digits}\\.(${digits})?|\\.${digits}|${digits})([eE][-+]?${digits})?$`).test(s)) return Number(s.replace(/_/g, ''));
  const special = /^([-+]?)(inf|infinity|nan)$/i.exec(s);
  if (special) return new PyCode(`float('${special[1] === '-' ? '-' : ''}${special[2]!.toLowerCase().startsWith('inf') ? 'inf' : 'nan'}')`);
  if (s.toLowerCase() === 'true') return true;
  if (s.toLowerCase() === 'false') return false;
  if (s === 'None') return null;
  if (s.length >= 2 && (s[0] === '"' || s[0] === "'") && s.at(-1) === s[0]) return s.slice(1, -1);
  if (splitTop(s).length > 1) return splitTop(s).map(parseCfgValue);
  return raw;
}

/**
 * Data that came back from Python as JSON (the bridge's `config.base_values`: tuples as
 * `{"__tuple__": [...]}`) as a fresh PyValue. Every string stays a string (data, never code).
 */
export function fromPythonJson(v: unknown): PyValue {
  if (v === null || typeof v === 'boolean' || typeof v === 'number' || typeof v === 'string') return v;
  if (Array.isArray(v)) return v.map(fromPythonJson);
  if (typeof v === 'object') {
    const o = v as Record<string, unknown>;
    const keys = Object.keys(o);
    if (keys.length === 1 && keys[0] === '__tuple__' && Array.isArray(o.__tuple__)) return new PyTuple(o.__tuple__.map(fromPythonJson));
    return Object.fromEntries(keys.map((k) => [k, fromPythonJson(o[k])]));
  }
  throw new TypeError(`not JSON data: ${typeof v}`);
}
