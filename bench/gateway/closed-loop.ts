/**
 * Closed-loop throughput: N workers, each sending the next request when the previous one ends.
 * Used only for the overhead report's "requests per second" (the scenarios use the open-loop
 * generator, which a slow target cannot slow down).
 */
import { performance } from 'node:perf_hooks';
import { Pool } from 'undici';

export interface ClosedLoopResult {
  readonly ok: number;
  readonly failed: number;
  readonly rps: number;
}

export async function closedLoop(target: string, connections: number, durationMs: number): Promise<ClosedLoopResult> {
  const pool = new Pool(new URL(target).origin, { connections, pipelining: 1 });
  let ok = 0;
  let failed = 0;
  const start = performance.now();
  const end = start + durationMs;
  const worker = async (): Promise<void> => {
    while (performance.now() < end) {
      try {
        const res = await pool.request({ path: '/', method: 'GET', signal: AbortSignal.timeout(5_000) });
        await res.body.dump();
        if (res.statusCode >= 200 && res.statusCode < 300) ok++;
        else failed++;
      } catch {
        failed++;
      }
    }
  };
  await Promise.all(Array.from({ length: connections }, worker));
  const elapsed = performance.now() - start;
  await pool.close();
  return { ok, failed, rps: (ok * 1000) / elapsed };
}
