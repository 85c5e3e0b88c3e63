/**
 * A dependency-free SVG line chart: successes per second over time, one line per system, the
 * oracle dashed. Small on purpose: the benchmark's plots need lines, axes and a legend, nothing
 * a charting library would add.
 */
export interface Series {
  readonly name: string;
  readonly values: readonly number[];
  readonly dashed?: boolean;
}

const COLORS = ['#d62728', '#1f77b4', '#2ca02c', '#9467bd', '#ff7f0e', '#8c564b', '#17becf'];
const W = 960;
const H = 400;
const M = { left: 60, right: 170, top: 36, bottom: 44 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

export function lineChartSvg(title: string, yLabel: string, series: readonly Series[]): string {
  const n = Math.max(1, ...series.map((s) => s.values.length));
  const yMaxRaw = Math.max(1, ...series.flatMap((s) => s.values));
  const step = 10 ** Math.floor(Math.log10(yMaxRaw));
  const yMax = Math.ceil((yMaxRaw * 1.05) / step) * step;
  const pw = W - M.left - M.right;
  const ph = H - M.top - M.bottom;
  const x = (i: number): number => M.left + (n <= 1 ? 0 : (i / (n - 1)) * pw);
  const y = (v: number): number => M.top + ph - (v / yMax) * ph;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${W}" height="${H}" fill="white"/>`);
  parts.push(`<text x="${M.left}" y="20" font-size="14" font-weight="bold">${esc(title)}</text>`);
  for (let k = 0; k <= 5; k++) {
    const v = (yMax * k) / 5;
    parts.push(`<line x1="${M.left}" x2="${M.left + pw}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${M.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${Math.round(v)}</text>`);
  }
  const xStep = Math.max(1, Math.ceil(n / 12 / 5) * 5);
  for (let i = 0; i < n; i += xStep) parts.push(`<text x="${x(i).toFixed(1)}" y="${M.top + ph + 16}" text-anchor="middle">${i}</text>`);
  parts.push(`<text x="${M.left + pw / 2}" y="${H - 8}" text-anchor="middle">seconds of the measured window</text>`);
  parts.push(`<text x="14" y="${M.top + ph / 2}" transform="rotate(-90 14 ${M.top + ph / 2})" text-anchor="middle">${esc(yLabel)}</text>`);
  parts.push(`<rect x="${M.left}" y="${M.top}" width="${pw}" height="${ph}" fill="none" stroke="#999"/>`);
  series.forEach((s, k) => {
    const color = s.dashed ? '#000000' : COLORS[k % COLORS.length];
    const pts = s.values.map((v, i) => `${x(i).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    parts.push(`<polyline fill="none" stroke="${color}" stroke-width="1.6"${s.dashed ? ' stroke-dasharray="5,4"' : ''} points="${pts}"/>`);
    const ly = M.top + 14 + k * 18;
    parts.push(`<line x1="${W - M.right + 12}" x2="${W - M.right + 36}" y1="${ly - 4}" y2="${ly - 4}" stroke="${color}" stroke-width="2"${s.dashed ? ' stroke-dasharray="5,4"' : ''}/>`);
    parts.push(`<text x="${W - M.right + 42}" y="${ly}">${esc(s.name)}</text>`);
  });
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
