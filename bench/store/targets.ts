/** One of issue 2's performance targets, judged on a finished run. */
export interface TargetCheck {
  name: string;
  value: number | null;
  /** The bound, in the same unit as value. */
  bound: number;
  /** '>=' or '<=' the bound. */
  direction: '>=' | '<=';
  /** null when the run did not measure it (e.g. no peers). */
  met: boolean | null;
}

export interface TargetInputs {
  producers: number;
  ratioToCeiling: number;
  ratioToBestPeer: number | null;
  totalSeconds: number;
  idealSeconds: number;
  p99AppendMs: number;
  hotHitRatio: number | null;
  peakRssMiB: number;
  memoryBudgetBytes: number;
  messagesWritten: number;
  killReopenSeconds: number | null;
}

const MiB = 1024 * 1024;
/** Producers from which the stricter ceiling ratio applies ("--producers 200"). */
const MANY_PRODUCERS = 200;

function check(name: string, value: number | null, direction: '>=' | '<=', bound: number): TargetCheck {
  const met = value === null ? null : direction === '>=' ? value >= bound : value <= bound;
  return { name, value, bound, direction, met };
}

/**
 * Issue 2's targets ("How fast"), so every result file says which ones this run met. They are
 * stated for the default workload on the reference machine; on another workload size they are a
 * guide, not a verdict (the reopen bound, for one, is for a 4 GiB store).
 */
export function checkTargets(r: TargetInputs): TargetCheck[] {
  const rssBound = r.memoryBudgetBytes / MiB + 256 + (16 * r.messagesWritten) / MiB;
  return [
    check(`appendMiBps / ceiling (${r.producers >= MANY_PRODUCERS ? MANY_PRODUCERS : 40} producers)`, r.ratioToCeiling, '>=', r.producers >= MANY_PRODUCERS ? 0.8 : 0.6),
    check('appendMiBps / best peer', r.ratioToBestPeer, '>=', 3),
    check('totalSeconds / idealSeconds', r.idealSeconds > 0 ? r.totalSeconds / r.idealSeconds : null, '<=', 1.2),
    check('p99AppendMs', r.p99AppendMs, '<=', 5),
    check('hotHitRatio', r.hotHitRatio, '>=', 0.95),
    check('peakRssMiB (budget + 256 MiB + 16 B/message)', r.peakRssMiB, '<=', Math.round(rssBound)),
    check('reopen after kill -9, s', r.killReopenSeconds, '<=', 2),
  ];
}
