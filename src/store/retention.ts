/**
 * Retention: whole segments, oldest first, never the active one and never one holding data not
 * yet durable. A segment goes when its newest write is older than maxAgeMs, or while the log is
 * larger than maxTotalBytes.
 */
import type { Segment } from './segment-set.js';
import type { RetentionOptions } from './types.js';

export function segmentsToDelete(segments: readonly Segment[], retention: RetentionOptions, nowMs: number, flushed: number): Segment[] {
  const out: Segment[] = [];
  let total = segments.reduce((n, s) => n + s.size, 0);
  for (let i = 0; i < segments.length - 1; i++) {
    const seg = segments[i];
    // All of seg lies below the next segment's start; its size is only updated once a write into
    // it completes, so a sealed segment whose last flush is still in flight must not pass by it.
    if (segments[i + 1].start > flushed) break;
    const tooOld = retention.maxAgeMs !== undefined && nowMs - seg.lastWriteMs > retention.maxAgeMs;
    const tooBig = retention.maxTotalBytes !== undefined && total > retention.maxTotalBytes;
    if (!tooOld && !tooBig) break;
    out.push(seg);
    total -= seg.size;
  }
  return out;
}
