/**
 * History read batches waiting for a slot (`coldReadConcurrency` while appends run, the thread
 * pool but one once they are quiet), merged when a slot frees: the oldest waiting batch and those
 * queued right behind it go to the device as one job, as long as together they span at most
 * MAX_READ_BATCH_SEGMENTS segments and HISTORY_MERGE_MAX_BYTES. A slot is a pool thread, and a
 * thread keeps only its own batch's prefetch before the device: readers whose getRanges are a few
 * records each (a store of many small queues) left the device's queue at 8-11 reads with every
 * slot busy (docs/store-measurements.md, "Nineteenth pass"). Merging costs a waiting batch
 * nothing it would not have waited anyway; a batch that finds a slot free starts at once.
 */
import { invariant } from '../common/index.js';
import { HISTORY_MERGE_MAX_BYTES, MAX_READ_BATCH_SEGMENTS } from './constants.js';

/** Spans of the log: `lengths[k]` bytes from `positions[k]` of segment `segs[k]`. */
export interface SpanBatch<S> {
  readonly segs: readonly S[];
  readonly positions: readonly number[];
  readonly lengths: readonly number[];
}

interface Waiting<S> extends SpanBatch<S> {
  readonly bytes: number;
  resolve(bufs: Buffer[]): void;
  reject(err: unknown): void;
}

function sum(values: readonly number[]): number {
  let n = 0;
  for (const v of values) n += v;
  return n;
}

export class HistoryReadQueue<S> {
  /**
   * Oldest first. Taken batches leave it at once: an entry's resolve function keeps its promise,
   * and with it the batch's buffers, alive (a queue cut off in bulk held hundreds of MB).
   */
  private readonly waiting: Waiting<S>[] = [];
  private active = 0;
  /** Jobs run since creation, and batches they carried: how much merging happens (stats). */
  private jobs = 0;
  private batches = 0;

  constructor(
    private slots: number,
    /** Reads one batch: one job on the thread pool. */
    private readonly run: (batch: SpanBatch<S>) => Promise<Buffer[]>,
  ) {
    invariant(slots >= 1, 'history reads have a slot at least');
  }

  /** Jobs allowed at once; raising it starts waiting batches now. */
  get limit(): number {
    return this.slots;
  }

  set limit(n: number) {
    invariant(n >= 1, 'history reads have a slot at least');
    if (n === this.slots) return;
    this.slots = n;
    this.pump();
  }

  /** Jobs running now. */
  get inFlight(): number {
    return this.active;
  }

  /** Batches waiting for a slot. */
  get pending(): number {
    return this.waiting.length;
  }

  /** Batches read since creation, and the jobs that read them (fewer where batches were merged). */
  get counts(): { batches: number; jobs: number } {
    return { batches: this.batches, jobs: this.jobs };
  }

  /** Reads `batch` once a slot is free, maybe in one job with other waiting batches. */
  read(batch: SpanBatch<S>): Promise<Buffer[]> {
    invariant(batch.positions.length === batch.lengths.length && batch.segs.length === batch.lengths.length, 'a batch has one segment and length per position');
    return new Promise<Buffer[]>((resolve, reject) => {
      this.waiting.push({ segs: batch.segs, positions: batch.positions, lengths: batch.lengths, bytes: sum(batch.lengths), resolve, reject });
      this.pump();
    });
  }

  private pump(): void {
    while (this.active < this.slots && this.pending > 0) {
      const taken = this.take();
      this.active++;
      void this.start(taken).finally(() => {
        this.active--;
        this.pump();
      });
    }
  }

  /** The oldest waiting batch, and those right behind it that fit in one job with it. */
  private take(): Waiting<S>[] {
    const first = this.waiting.shift() as Waiting<S>;
    const taken = [first];
    // Alone in the queue (readers keeping up): nothing to merge, no set of segments to build.
    if (this.waiting.length === 0) return taken;
    const segs = new Set<S>(first.segs);
    let bytes = first.bytes;
    while (this.waiting.length > 0) {
      const next = this.waiting[0];
      if (bytes + next.bytes > HISTORY_MERGE_MAX_BYTES) break;
      let added = 0;
      for (const s of new Set(next.segs)) if (!segs.has(s)) added++;
      if (segs.size + added > MAX_READ_BATCH_SEGMENTS) break;
      for (const s of next.segs) segs.add(s);
      bytes += next.bytes;
      taken.push(next);
      this.waiting.shift();
    }
    return taken;
  }

  private async start(taken: Waiting<S>[]): Promise<void> {
    this.jobs++;
    this.batches += taken.length;
    if (taken.length === 1) {
      await this.settle(taken[0]);
      return;
    }
    let bufs: Buffer[];
    try {
      bufs = await this.run({
        segs: taken.flatMap((w) => w.segs),
        positions: taken.flatMap((w) => w.positions),
        lengths: taken.flatMap((w) => w.lengths),
      });
    } catch {
      // A failed read fails its whole job: each batch is read again on its own, in this slot, so
      // that only the readers whose own reads fail see an error.
      for (const w of taken) await this.settle(w);
      return;
    }
    invariant(bufs.length === sum(taken.map((w) => w.positions.length)), 'a merged batch returns one buffer per span of its batches');
    let at = 0;
    for (const w of taken) {
      w.resolve(bufs.slice(at, at + w.positions.length));
      at += w.positions.length;
    }
  }

  private async settle(w: Waiting<S>): Promise<void> {
    try {
      // The spans alone: `run` must not get hold of the promise's resolve (see `waiting`).
      w.resolve(await this.run({ segs: w.segs, positions: w.positions, lengths: w.lengths }));
    } catch (err) {
      w.reject(err);
    }
  }
}
