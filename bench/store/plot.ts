/** One throughput sample: seconds since the workload started, MiB/s written and read since the previous sample. */
export interface Sample {
  t: number;
  phase: string;
  writeMiBps: number;
  readMiBps: number;
}

const WIDTH = 900;
const HEIGHT = 420;
const PAD = { left: 64, right: 20, top: 40, bottom: 48 };

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/** A small self-contained SVG line chart: write and read MiB/s over time, phases shaded, ceiling dashed. */
export function throughputSvg(samples: Sample[], title: string, ceilingMiBps: number): string {
  const tMax = Math.max(1, ...samples.map((s) => s.t));
  const yMax = Math.max(1, ceilingMiBps, ...samples.map((s) => Math.max(s.writeMiBps, s.readMiBps))) * 1.1;
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  const x = (t: number): number => PAD.left + (t / tMax) * plotW;
  const y = (v: number): number => PAD.top + plotH - (v / yMax) * plotH;
  const line = (pick: (s: Sample) => number): string =>
    samples.map((s, i) => `${i === 0 ? 'M' : 'L'}${x(s.t).toFixed(1)},${y(pick(s)).toFixed(1)}`).join(' ');

  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`);
  // Phase bands.
  const shades = ['#f4f6fb', '#fbf6ee', '#eef8f1'];
  let start = 0;
  let k = 0;
  for (let i = 1; i <= samples.length; i++) {
    if (i === samples.length || samples[i].phase !== samples[start].phase) {
      const t0 = start === 0 ? 0 : samples[start - 1].t;
      const t1 = samples[i - 1].t;
      parts.push(`<rect x="${x(t0).toFixed(1)}" y="${PAD.top}" width="${Math.max(0, x(t1) - x(t0)).toFixed(1)}" height="${plotH}" fill="${shades[k++ % shades.length]}"/>`);
      parts.push(`<text x="${(x(t0) + 4).toFixed(1)}" y="${PAD.top + 14}" fill="#555">${esc(samples[start].phase)}</text>`);
      start = i;
    }
  }
  // Axes and grid.
  for (let i = 0; i <= 5; i++) {
    const v = (yMax / 5) * i;
    parts.push(`<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#ddd"/>`);
    parts.push(`<text x="${PAD.left - 6}" y="${(y(v) + 4).toFixed(1)}" text-anchor="end">${v.toFixed(0)}</text>`);
    const t = (tMax / 5) * i;
    parts.push(`<text x="${x(t).toFixed(1)}" y="${HEIGHT - PAD.bottom + 16}" text-anchor="middle">${t.toFixed(0)}</text>`);
  }
  parts.push(`<text x="${PAD.left + plotW / 2}" y="${HEIGHT - 10}" text-anchor="middle">seconds</text>`);
  parts.push(`<text x="16" y="${PAD.top + plotH / 2}" transform="rotate(-90 16 ${PAD.top + plotH / 2})" text-anchor="middle">MiB/s</text>`);
  parts.push(`<text x="${PAD.left}" y="22" font-size="14" font-weight="bold">${esc(title)}</text>`);
  if (ceilingMiBps > 0) {
    parts.push(`<line x1="${PAD.left}" x2="${WIDTH - PAD.right}" y1="${y(ceilingMiBps).toFixed(1)}" y2="${y(ceilingMiBps).toFixed(1)}" stroke="#c0392b" stroke-dasharray="6 4"/>`);
    parts.push(`<text x="${WIDTH - PAD.right - 4}" y="${(y(ceilingMiBps) - 4).toFixed(1)}" text-anchor="end" fill="#c0392b">ceiling ${ceilingMiBps.toFixed(0)} MiB/s</text>`);
  }
  parts.push(`<path d="${line((s) => s.writeMiBps)}" fill="none" stroke="#2c6fbb" stroke-width="1.8"/>`);
  parts.push(`<path d="${line((s) => s.readMiBps)}" fill="none" stroke="#27ae60" stroke-width="1.8"/>`);
  parts.push(`<rect x="${WIDTH - PAD.right - 150}" y="${PAD.top + 24}" width="12" height="3" fill="#2c6fbb"/><text x="${WIDTH - PAD.right - 132}" y="${PAD.top + 29}">append MiB/s</text>`);
  parts.push(`<rect x="${WIDTH - PAD.right - 150}" y="${PAD.top + 42}" width="12" height="3" fill="#27ae60"/><text x="${WIDTH - PAD.right - 132}" y="${PAD.top + 47}">read MiB/s (verified)</text>`);
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
