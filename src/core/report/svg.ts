/** Small, dependency-free SVG line charts for the HTML report (inline, so the file opens offline). */

export interface Series {
  label: string;
  points: [number, number][];
}

export interface ChartOptions {
  title: string;
  xLabel: string;
  yLabel: string;
  width?: number;
  height?: number;
  /** Draw a marker at every point (for sparse series such as per-epoch AP). */
  markers?: boolean;
}

/** Colour-blind-friendly palette (Okabe-Ito), cycled. */
export const PALETTE = ['#0072B2', '#D55E00', '#009E73', '#CC79A7', '#E69F00', '#56B4E9', '#000000', '#F0E442'];

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&#39;');
}

/** About `count` round tick values covering [lo, hi]. */
export function niceTicks(lo: number, hi: number, count = 5): number[] {
  if (!(hi > lo)) {
    const pad = lo === 0 ? 1 : Math.abs(lo) * 0.1;
    lo -= pad;
    hi += pad;
  }
  const raw = (hi - lo) / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const start = Math.floor(lo / step) * step;
  const ticks: number[] = [];
  for (let v = start; v <= hi + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  if (ticks[ticks.length - 1]! < hi) ticks.push(Number((ticks[ticks.length - 1]! + step).toPrecision(12)));
  return ticks;
}

function tickLabel(v: number, ticks: number[]): string {
  const span = Math.max(...ticks.map(Math.abs));
  if (span !== 0 && (span < 1e-3 || span >= 1e6)) return v === 0 ? '0' : v.toExponential(1).replace('e', 'e');
  const step = ticks.length > 1 ? Math.abs(ticks[1]! - ticks[0]!) : 1;
  const decimals = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9)));
  return v.toFixed(decimals);
}

/** One chart as an `<svg>` element string. Series without points are listed in the legend as "(no data)". */
export function lineChart(series: Series[], opts: ChartOptions): string {
  const W = opts.width ?? 560;
  const H = opts.height ?? 320;
  const legendRows = Math.ceil(series.length / 2);
  const m = { l: 64, r: 16, t: 30, b: 44 + legendRows * 16 };
  const pw = W - m.l - m.r;
  const ph = H - m.t - m.b;
  const all = series.flatMap((s) => s.points);
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${escapeXml(opts.title)}">`);
  parts.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#fff"/>`);
  parts.push(`<text x="${W / 2}" y="18" text-anchor="middle" font-size="14" font-weight="600">${escapeXml(opts.title)}</text>`);
  if (all.length === 0) {
    parts.push(`<text x="${W / 2}" y="${m.t + ph / 2}" text-anchor="middle" font-size="13" fill="#777">no data yet</text>`);
  } else {
    const xs = all.map((p) => p[0]);
    const ys = all.map((p) => p[1]);
    const xt = niceTicks(Math.min(...xs), Math.max(...xs));
    const yt = niceTicks(Math.min(...ys), Math.max(...ys));
    const x0 = xt[0]!;
    const x1 = xt[xt.length - 1]!;
    const y0 = yt[0]!;
    const y1 = yt[yt.length - 1]!;
    const sx = (x: number) => m.l + ((x - x0) / (x1 - x0 || 1)) * pw;
    const sy = (y: number) => m.t + ph - ((y - y0) / (y1 - y0 || 1)) * ph;
    for (const t of yt) {
      parts.push(`<line x1="${m.l}" x2="${m.l + pw}" y1="${sy(t).toFixed(1)}" y2="${sy(t).toFixed(1)}" stroke="#e5e5e5"/>`);
      parts.push(`<text x="${m.l - 6}" y="${(sy(t) + 4).toFixed(1)}" text-anchor="end" font-size="11" fill="#444">${tickLabel(t, yt)}</text>`);
    }
    for (const t of xt) {
      parts.push(`<line x1="${sx(t).toFixed(1)}" x2="${sx(t).toFixed(1)}" y1="${m.t + ph}" y2="${m.t + ph + 4}" stroke="#444"/>`);
      parts.push(`<text x="${sx(t).toFixed(1)}" y="${m.t + ph + 16}" text-anchor="middle" font-size="11" fill="#444">${tickLabel(t, xt)}</text>`);
    }
    parts.push(`<rect x="${m.l}" y="${m.t}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
    series.forEach((s, i) => {
      if (s.points.length === 0) return;
      const color = PALETTE[i % PALETTE.length]!;
      const d = s.points.map((p, j) => `${j === 0 ? 'M' : 'L'}${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join('');
      parts.push(`<path d="${d}" fill="none" stroke="${color}" stroke-width="1.6"/>`);
      if (opts.markers || s.points.length === 1) {
        for (const p of s.points) parts.push(`<circle cx="${sx(p[0]).toFixed(1)}" cy="${sy(p[1]).toFixed(1)}" r="3" fill="${color}"/>`);
      }
    });
  }
  parts.push(`<text x="${m.l + pw / 2}" y="${m.t + ph + 32}" text-anchor="middle" font-size="12">${escapeXml(opts.xLabel)}</text>`);
  parts.push(`<text transform="translate(14 ${m.t + ph / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escapeXml(opts.yLabel)}</text>`);
  series.forEach((s, i) => {
    const col = i % 2;
    const row = Math.floor(i / 2);
    const lx = m.l + col * (pw / 2);
    const ly = m.t + ph + 48 + row * 16;
    const color = PALETTE[i % PALETTE.length]!;
    parts.push(`<line x1="${lx}" x2="${lx + 18}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2.5"/>`);
    const label = s.points.length ? s.label : `${s.label} (no data)`;
    parts.push(`<text x="${lx + 24}" y="${ly}" font-size="11">${escapeXml(label.length > 42 ? label.slice(0, 41) + '…' : label)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('');
}
