/**
 * Prometheus metrics for message stores (docs/store.md, "Metrics"). Every value is read from
 * `stats()` when the registry is scraped, so the append and read paths pay nothing for them.
 * One StoreMetrics per registry serves any number of stores, told apart by the `store` label;
 * a store that was closed drops out of the next scrape by itself.
 */
import { Counter, Gauge, type Registry } from 'prom-client';
import { StoreClosedError, StoreInvalidArgumentError } from './errors.js';
import type { StoreStats, TierStats } from './types.js';

/** What StoreMetrics reads: a MessageStore, or anything else with its `stats()`. */
export interface StoreStatsSource {
  stats(): StoreStats;
}

/** Prefix of every metric name. */
export const STORE_METRIC_PREFIX = 'cirrus_store_';

type Snapshot = ReadonlyArray<readonly [name: string, stats: StoreStats]>;

export class StoreMetrics {
  private readonly sources = new Map<string, StoreStatsSource>();
  /** One stats() per store per scrape: every metric's collect() of one scrape shares it. */
  private snapshot: Snapshot | null = null;

  /** Registers the store metrics in `registry` (once per registry: names are unique there). */
  constructor(registry: Registry) {
    const registers = [registry];
    const read = (): Snapshot => {
      if (this.snapshot === null) {
        const taken: [string, StoreStats][] = [];
        for (const [name, source] of this.sources) {
          try {
            taken.push([name, source.stats()]);
          } catch (err) {
            // A closed store has nothing more to say; anything else is a bug to surface.
            if (!(err instanceof StoreClosedError)) throw err;
            this.sources.delete(name);
          }
        }
        this.snapshot = taken;
        // A scrape runs every metric's collect() in one synchronous pass: the next scrape reads afresh.
        queueMicrotask(() => (this.snapshot = null));
      }
      return this.snapshot;
    };
    const tiers = (s: StoreStats): [string, TierStats][] => {
      const out: [string, TierStats][] = [['memory', s.cache.memory]];
      if (s.cache.fastTier !== null) out.push(['fast', s.cache.fastTier]);
      return out;
    };

    type Labels = Partial<Record<'store' | 'tier', string>>;
    /** One metric whose collect() resets it and emits a value per label set of this scrape. */
    const metric = (kind: 'counter' | 'gauge', name: string, help: string, each: (emit: (labels: Labels, v: number) => void) => void): void => {
      const config = { name: STORE_METRIC_PREFIX + name, help, labelNames: ['store', 'tier'] as const, registers };
      if (kind === 'counter') {
        new Counter({
          ...config,
          collect() {
            this.reset();
            each((labels, v) => this.inc(labels, v));
          },
        });
      } else {
        new Gauge({
          ...config,
          collect() {
            this.reset();
            each((labels, v) => this.set(labels, v));
          },
        });
      }
    };
    const perStore = (kind: 'counter' | 'gauge', name: string, help: string, value: (s: StoreStats) => number): void =>
      metric(kind, name, help, (emit) => {
        for (const [store, s] of read()) emit({ store }, value(s));
      });
    const perTier = (kind: 'counter' | 'gauge', name: string, help: string, value: (t: TierStats) => number): void =>
      metric(kind, name, help, (emit) => {
        for (const [store, s] of read()) for (const [tier, t] of tiers(s)) emit({ store, tier }, value(t));
      });

    perStore('counter', 'written_bytes_total', 'Log bytes made durable (records with their headers)', (s) => s.bytesWritten);
    perStore('counter', 'written_messages_total', 'Appends acknowledged', (s) => s.messagesWritten);
    perStore('counter', 'read_bytes_total', 'Message bytes returned by getRange', (s) => s.bytesRead);
    perStore('counter', 'read_messages_total', 'Messages returned by getRange', (s) => s.messagesRead);
    perStore('counter', 'syncs_total', 'Durable writes (write + fdatasync) of the group commit', (s) => s.syncs);
    perStore('gauge', 'sync_latency_mean_seconds', 'Mean durable write latency over the store\'s life', (s) => s.syncLatencyMeanMs / 1000);
    perStore('gauge', 'sync_latency_p99_seconds', 'p99 durable write latency over the store\'s life', (s) => s.syncLatencyP99Ms / 1000);
    perStore('gauge', 'batch_messages_mean', 'Appends one sync covers, on average', (s) => s.meanBatchMessages);
    perStore('gauge', 'direct_writes', '1: flushes are written O_DIRECT with their fdatasync in one native job; 0: through the page cache', (s) => (s.directWrites ? 1 : 0));
    perStore('gauge', 'segments', 'Segment files of the log', (s) => s.segments);
    perStore('counter', 'recycled_segments_total', 'Segments made from a file retention removed (recycleSegments), since open', (s) => s.recycledSegments);
    perStore('gauge', 'topics', 'Topics', (s) => s.topics);
    perStore('gauge', 'queues', 'Queues', (s) => s.queues);
    perTier('counter', 'cache_hits_total', 'Reads served by a cache tier (memory, fast)', (t) => t.hits);
    perTier('counter', 'cache_misses_total', 'Reads a cache tier (memory, fast) did not hold', (t) => t.misses);
    perTier('gauge', 'cache_bytes', 'Bytes a cache tier holds', (t) => t.bytes);
    perTier('gauge', 'cache_budget_bytes', 'Budget of a cache tier', (t) => t.budgetBytes);
    perStore('gauge', 'history_reads_in_flight', 'History read jobs running (each holds a pool thread)', (s) => s.historyReads.inFlight);
    perStore('gauge', 'history_reads_waiting', 'History read batches waiting for a slot', (s) => s.historyReads.waiting);
    perStore('gauge', 'history_reads_limit', 'History read jobs allowed at once now', (s) => s.historyReads.limit);
    perStore('counter', 'history_read_batches_total', 'History read batches (one per cold getRange)', (s) => s.historyReads.batches);
    perStore('counter', 'history_read_jobs_total', 'History read jobs (batches that waited together are one job)', (s) => s.historyReads.jobs);
    perStore('counter', 'checkpoints_full_total', 'Full index checkpoints written', (s) => s.checkpoints.full);
    perStore('counter', 'checkpoints_delta_total', 'Delta index checkpoints written', (s) => s.checkpoints.deltas);
    perStore('counter', 'checkpoint_failures_total', 'Checkpoint writes that failed (the previous checkpoint stayed)', (s) => s.checkpoints.failed);
    perStore('gauge', 'checkpoint_lag_bytes', 'Log bytes durable since the last checkpoint: what a reopen after a crash would scan', (s) => s.checkpoints.logBytesSince);
  }

  /** Reports `source` under the label store="`name`" from the next scrape on. */
  add(name: string, source: StoreStatsSource): void {
    if (typeof name !== 'string' || name.length === 0) throw new StoreInvalidArgumentError('name', 'must be a non-empty string');
    if (this.sources.has(name)) throw new StoreInvalidArgumentError('name', `a store named ${JSON.stringify(name)} is already reported`);
    this.sources.set(name, source);
  }

  /** Stops reporting the store named `name`; false when none was. */
  remove(name: string): boolean {
    return this.sources.delete(name);
  }
}
