/**
 * Where JSON.parse stopped, read from V8's own message (Node 20): a number where the message has
 * one, the end of the text at its end, and for `Unexpected token` (no number) the place that the
 * quoted text around the token names, checked against V8 itself.
 */
import { describe, expect, it } from 'vitest';
import { describeJsonError, jsonErrorPosition } from '../src/core/dataset.js';

function parseError(text: string): string {
  try {
    JSON.parse(text);
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error(`valid JSON: ${text}`);
}

const position = (text: string): number | undefined => jsonErrorPosition(text, parseError(text));

describe('jsonErrorPosition', () => {
  it('takes the number of `... at position N`', () => {
    expect(parseError('{"a" 1}')).toMatch(/at position 5$/);
    expect(position('{"a" 1}')).toBe(5);
    expect(position('{"a":1} x')).toBe(8); // "Unexpected non-whitespace character after JSON at position 8"
  });

  it('puts `Unexpected end of JSON input` at the end of the text', () => {
    expect(parseError('{"a": [1, tr')).toBe('Unexpected end of JSON input');
    expect(position('{"a": [1, tr')).toBe(12);
    expect(position('')).toBe(0);
  });

  it('finds an unexpected token in a short text (quoted whole) and in special strings', () => {
    expect(parseError('[1,]')).toBe(`Unexpected token ']', "[1,]" is not valid JSON`);
    expect(position('[1,]')).toBe(3);
    expect(position('{"a": tru}')).toBe(9);
    expect(parseError('[object Object]')).toBe('"[object Object]" is not valid JSON');
    expect(position('[object Object]')).toBe(1);
  });

  it('finds an unexpected token near the start, the end and the middle of a long text', () => {
    const start = '[tru, 1, 2, 3, 4, 5, 6, 7, 8, 9]';
    expect(parseError(start)).toMatch(/^Unexpected token ',', "\[tru, 1, 2, 3,"\.\.\. is not valid JSON$/);
    expect(position(start)).toBe(4);
    const end = '[1, 2, 3, 4, 5, 6, 7, 8, 9, tru]';
    expect(parseError(end)).toMatch(/^Unexpected token ']', \.\.\."/);
    expect(position(end)).toBe(end.length - 1);
    const middle = '[1, 2, 3, 4, 5, 6, tru, 7, 8, 9, 10, 11]';
    expect(position(middle)).toBe(middle.indexOf('tru') + 3);
  });

  it('picks the first place V8 fails at when the quoted text stands many times', () => {
    // the same 21 characters stand inside every string before the error (valid there)
    const valid = '{"s": "a [1,2,3,4,} 5,6,7,8,9 z"}, ';
    const bad = '{"t": [1,2,3,4,} 5,6,7,8,9 z"}, ';
    const text = `[${valid.repeat(50)}${bad}${valid.repeat(50)}0]`;
    expect(parseError(text)).toMatch(/^Unexpected token '\}', \.\.\." \[1,2,3,4,\} 5,6,7,8,"\.\.\. is not valid JSON$/);
    expect(position(text)).toBe(1 + valid.length * 50 + bad.indexOf('}'));
  });

  it('leaves other messages without a position', () => {
    expect(jsonErrorPosition('x', 'something else')).toBeUndefined();
  });
});

describe('describeJsonError', () => {
  it('gives line and column of the position, on one line', () => {
    const text = '{"a": 1,\n "b": [1, 2, 3, 4, 5, 6, tru, 7]}';
    const err = new SyntaxError(parseError(text));
    expect(describeJsonError(text, err)).toBe(`Unexpected token ',' at line 2, column 29 (position 37)`);
    expect(text[37]).toBe(',');
  });
});
