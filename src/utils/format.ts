/** Text formatting shared by every command's output: durations and Markdown tables. */

/** `45s`, `3m 12s`, `2h 05m`; `missing` for an unknown or non-finite duration. */
export function formatDuration(seconds: number | null | undefined, missing = '?'): string {
  if (seconds == null || !Number.isFinite(seconds)) return missing;
  const t = Math.max(0, Math.round(seconds));
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m ${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h ${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

/**
 * A cell of a Markdown table: names come from folders and configs, so nothing in them may turn
 * into markup (a `|` splitting the row, raw HTML, a code span).
 */
export function markdownCell(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/([|`\\])/g, '\\$1')
    .replace(/\r?\n/g, ' ');
}

/**
 * A Markdown table; `rightAligned(title)` says which columns hold numbers (default: none).
 * Cells are escaped with {@link markdownCell}.
 */
export function markdownTable(head: string[], rows: string[][], rightAligned: (title: string) => boolean = () => false): string {
  const lines = [`| ${head.map(markdownCell).join(' | ')} |`, `| ${head.map((h) => (rightAligned(h) ? '---:' : '---')).join(' | ')} |`];
  for (const r of rows) lines.push(`| ${r.map(markdownCell).join(' | ')} |`);
  return lines.join('\n');
}
