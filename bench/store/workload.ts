import * as hdr from 'hdr-histogram-js';
import type { MessageStoreApi } from '../../src/store/types.js';
import { HOT_POLL_MS, HOT_PROBE_INTERVAL_MS, MAX_FETCH_MESSAGES, MAX_MESSAGE_BYTES } from './constants.js';
import type { Layout } from './layout.js';
import type { PayloadFactory } from './payload.js';
import { mix32 } from './prng.js';

/** What producers write into: the store itself, or a peer adapter. */
export type AppendFn = (topicIndex: number, queueId: number, data: Buffer) => Promise<number>;

/** Counters shared by the workload and the sampler that turns them into throughput over time. */
export class Counters {
  bytesWritten = 0;
  messagesWritten = 0;
  bytesRead = 0;
  messagesRead = 0;
  verifiedBytes = 0;
  errors = 0;
  /** The first few verification failures, for the report. */
  readonly errorSamples: string[] = [];

  fail(message: string): void {
    this.errors++;
    if (this.errorSamples.length < 20) this.errorSamples.push(message);
  }
}

/**
 * Tells the hot readers which queues just got a record acknowledged, so that they read those
 * instead of passing over all of theirs looking: with 217,000 queues (`--full`) a pass of each
 * hot loop over its 5,400 queues after every read took about a third of the main thread that
 * the store shares with the benchmark (a CPU profile: 36 % of all samples in the hot loop
 * itself), which a consumer notified of new messages (RocketMQ's long polling) does not pay.
 */
export class AckFeed {
  private listener: ((queue: number) => void) | null = null;

  /** A producer's append to global queue `queue` was acknowledged. */
  acked(queue: number): void {
    if (this.listener !== null) this.listener(queue);
  }

  listen(fn: ((queue: number) => void) | null): void {
    this.listener = fn;
  }
}

export function newLatencyHistogram(): hdr.Histogram {
  // Microseconds, 1 us .. 60 s, 3 significant digits: p99 of a few ms is exact to 0.1 %.
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: 60_000_000, numberOfSignificantValueDigits: 3 });
}

export interface ProducerOptions {
  layout: Layout;
  payload: PayloadFactory;
  producers: number;
  targetBytes: number;
  seed: number;
  /** Next offset per global queue; producers own disjoint queues, so it is exact. */
  next: Uint32Array;
  append: AppendFn;
  counters: Counters;
  latency: hdr.Histogram;
  /**
   * Per global queue: when its oldest record not yet read was acknowledged (performance.now()),
   * 0 when the reader is caught up. Set here, cleared by the readers; lets them report how far
   * behind the writer hot reads really are.
   */
  ackedAt?: Float64Array;
  /** Told of every acknowledged append (phase 2: the hot readers listen). */
  acks?: AckFeed;
}

/**
 * The challenge's writer threads: `producers` loops, each with one append in flight (a thread
 * blocked in append). Producer p owns the queues g with g % producers == p, so it knows the offset
 * each append must get and can check the store returns exactly that. Stops once `targetBytes`
 * more have been issued.
 */
export async function runProducers(o: ProducerOptions): Promise<void> {
  const { layout, payload, producers, next, counters } = o;
  if (layout.totalQueues < producers) {
    throw new RangeError(`${producers} producers need at least as many queues, layout has ${layout.totalQueues}`);
  }
  let issued = 0;
  const producer = async (p: number): Promise<void> => {
    const owned = Math.floor((layout.totalQueues - 1 - p) / producers) + 1;
    let n = 0;
    const scratch = Buffer.allocUnsafe(MAX_MESSAGE_BYTES);
    while (issued < o.targetBytes) {
      const g = p + producers * (mix32(o.seed, p, n++, 0x51ed) % owned);
      const topic = layout.topicOf[g];
      const queueId = layout.queueIdOf[g];
      const offset = next[g]++;
      const data = payload.buildInto(scratch, topic, queueId, offset);
      issued += data.length;
      const started = process.hrtime.bigint();
      const got = await o.append(topic, queueId, data);
      o.latency.recordValue(Math.max(1, Number((process.hrtime.bigint() - started) / 1000n)));
      if (o.ackedAt && o.ackedAt[g] === 0) o.ackedAt[g] = performance.now();
      o.acks?.acked(g);
      if (got !== offset) counters.fail(`append ${layout.topicNames[topic]}/${queueId} returned offset ${got}, expected ${offset}`);
      counters.bytesWritten += data.length;
      counters.messagesWritten++;
    }
  };
  await Promise.all(Array.from({ length: producers }, (_, p) => producer(p)));
}

export interface ReaderOptions {
  store: MessageStoreApi;
  layout: Layout;
  payload: PayloadFactory;
  readers: number;
  seed: number;
  /** Offsets the writers have issued per queue; read until every queue reaches it. */
  next: Uint32Array;
  counters: Counters;
  /** True once writers stopped for good: then the readers finish at the final end. */
  writersDone: () => boolean;
  /** The producers' ackedAt (see ProducerOptions). */
  ackedAt: Float64Array;
  /** The producers' acknowledgements (see ProducerOptions), which the hot loops follow. */
  acks: AckFeed;
}

export interface ReaderResult {
  hotQueues: number;
  coldQueues: number;
  /** Memory-tier hits / lookups over the hot probes; NaN when no probe saw a lookup. */
  hotHitRatio: number;
  hotProbes: number;
  /** Age of the oldest unread record when a hot read starts, milliseconds. */
  hotLag: hdr.Histogram;
}

/**
 * Phase 2 and 3 readers. Half of the queues (picked from the seed) are hot: their reader starts
 * at the queue's end and follows the writer; the other half are cold: read from offset 0. Half of
 * the reader loops serve hot queues (each reads a queue when the producers say a record of it was
 * acknowledged, one fetch at a time, round-robin among those behind), half serve cold ones (each
 * queue read to its end before the next, as a consumer catching up on history does).
 * Every record is checked byte for byte.
 */
export async function runReaders(o: ReaderOptions): Promise<ReaderResult> {
  const { store, layout, payload, counters } = o;
  const hot: number[] = [];
  const cold: number[] = [];
  const pos = new Uint32Array(layout.totalQueues);
  for (let g = 0; g < layout.totalQueues; g++) {
    if (mix32(o.seed, g, 0x407) & 1) {
      hot.push(g);
      pos[g] = store.endOffset(layout.topicNames[layout.topicOf[g]], layout.queueIdOf[g]);
    } else {
      cold.push(g);
    }
  }
  let probeHits = 0;
  let probeLookups = 0;
  let probes = 0;
  let lastProbeMs = 0;
  const hotLag = newLatencyHistogram();
  o.ackedAt.fill(0);

  const readSome = async (g: number, isHot: boolean): Promise<number> => {
    const topic = layout.topicOf[g];
    const queueId = layout.queueIdOf[g];
    const name = layout.topicNames[topic];
    const from = pos[g];
    const end = store.endOffset(name, queueId);
    if (from >= end) return 0;
    const want = Math.min(MAX_FETCH_MESSAGES, end - from);
    let records: Buffer[];
    if (isHot && o.ackedAt[g] > 0) hotLag.recordValue(Math.max(1, Math.round((performance.now() - o.ackedAt[g]) * 1000)));
    const now = Date.now();
    if (isHot && now - lastProbeMs >= HOT_PROBE_INTERVAL_MS) {
      lastProbeMs = now;
      // getRange looks every record up in the memory tier, and counts it, before its first
      // await (a store test pins this), so the counters around the call itself are this read's
      // alone, with other readers still running: no reader waits for a probe.
      const before = store.stats().cache.memory;
      const pending = store.getRange(name, queueId, from, want);
      const after = store.stats().cache.memory;
      probes++;
      // Hot means served by the tail's chunks: a read-ahead hit was read from the log first.
      probeHits += after.hits - (after.readAheadHits ?? 0) - (before.hits - (before.readAheadHits ?? 0));
      probeLookups += after.hits + after.misses - before.hits - before.misses;
      records = await pending;
    } else {
      records = await store.getRange(name, queueId, from, want);
    }
    if (records.length > want || (records.length === 0 && o.writersDone())) {
      // endOffset counts appends still in flight, which getRange does not show until they are
      // durable; once every append has resolved, nothing below endOffset may be missing.
      counters.fail(`getRange ${name}/${queueId}@${from} x${want} returned ${records.length} records below end ${end}`);
      pos[g] = end; // do not spin on a queue the store cannot serve
      return 0;
    }
    for (let i = 0; i < records.length; i++) {
      const problem = payload.verify(topic, queueId, from + i, records[i]);
      if (problem) counters.fail(`${name}/${queueId}@${from + i}: ${problem}`);
      else counters.verifiedBytes += records[i].length;
      counters.bytesRead += records[i].length;
      counters.messagesRead++;
    }
    pos[g] = from + records.length;
    // Caught up with every acknowledged record: the next one starts the lag clock again.
    if (pos[g] >= end) o.ackedAt[g] = 0;
    return records.length;
  };

  const finished = (queues: number[]): boolean => o.writersDone() && queues.every((g) => pos[g] >= o.next[g]);

  const loops = Math.max(1, Math.floor(o.readers / 2));
  const share = (queues: number[], i: number): number[] => queues.filter((_, k) => k % loops === i);
  // Hot loop l reads the queues in due[l]: acknowledged since it last read them (queued[g] set).
  const loopOf = new Int32Array(layout.totalQueues).fill(-1);
  const queued = new Uint8Array(layout.totalQueues);
  const due: number[][] = Array.from({ length: loops }, () => []);
  const wake: Array<(() => void) | null> = new Array<(() => void) | null>(loops).fill(null);
  const enqueue = (g: number): void => {
    const l = loopOf[g];
    if (l < 0 || queued[g] === 1) return;
    queued[g] = 1;
    due[l].push(g);
    const w = wake[l];
    if (w !== null) {
      wake[l] = null;
      w();
    }
  };
  o.acks.listen(enqueue);

  const hotLoop = async (l: number, mine: number[]): Promise<void> => {
    for (const g of mine) loopOf[g] = l;
    for (const g of mine) if (pos[g] < o.next[g]) enqueue(g);
    /** Set when the writers are done and queues are still behind; cleared by any progress. */
    let lastRound = false;
    for (;;) {
      const list = due[l];
      if (list.length === 0) {
        if (o.writersDone()) {
          // No more acknowledgements will come: whatever is still behind gets read now, and a
          // round that moves nothing means the store cannot serve it (fail, do not spin).
          const behind = mine.filter((g) => pos[g] < o.next[g]);
          if (behind.length === 0) return;
          if (lastRound) {
            for (const g of behind) counters.fail(`${layout.topicNames[layout.topicOf[g]]}/${layout.queueIdOf[g]}: read to ${pos[g]}, ${o.next[g]} appended`);
            return;
          }
          lastRound = true;
          for (const g of behind) enqueue(g);
          continue;
        }
        await new Promise<void>((resolve) => {
          wake[l] = resolve;
          setTimeout(resolve, HOT_POLL_MS);
        });
        wake[l] = null;
        continue;
      }
      due[l] = [];
      for (const g of list) {
        queued[g] = 0;
        // One fetch per turn; a queue still behind after it goes to the back of the line.
        const n = await readSome(g, true);
        if (n > 0) lastRound = false;
        if (n > 0 && pos[g] < o.next[g]) enqueue(g);
      }
    }
  };
  const coldLoop = async (mine: number[]): Promise<void> => {
    /** Set by a pass that moved nothing after the writers were done (as in the hot loop). */
    let lastRound = false;
    for (;;) {
      const writersDone = o.writersDone();
      let progress = 0;
      for (const g of mine) {
        while (pos[g] < o.next[g]) {
          const n = await readSome(g, false);
          if (n === 0) break;
          progress += n;
        }
      }
      if (progress > 0) {
        lastRound = false;
        continue;
      }
      if (finished(mine)) return;
      if (writersDone) {
        // Every append had resolved before this pass began and it still moved nothing: the store
        // cannot serve what is behind (its end went back, or records are missing). Fail, do not spin.
        if (lastRound) {
          for (const g of mine) {
            if (pos[g] < o.next[g]) counters.fail(`${layout.topicNames[layout.topicOf[g]]}/${layout.queueIdOf[g]}: read to ${pos[g]}, ${o.next[g]} appended`);
          }
          return;
        }
        lastRound = true;
        continue;
      }
      await new Promise((resolve) => setTimeout(resolve, HOT_POLL_MS));
    }
  };

  try {
    await Promise.all([
      ...Array.from({ length: loops }, (_, i) => hotLoop(i, share(hot, i))),
      ...Array.from({ length: loops }, (_, i) => coldLoop(share(cold, i))),
    ]);
  } finally {
    o.acks.listen(null);
  }
  return {
    hotQueues: hot.length,
    coldQueues: cold.length,
    hotHitRatio: probeLookups > 0 ? probeHits / probeLookups : Number.NaN,
    hotProbes: probes,
    hotLag,
  };
}
