/**
 * Group commit: many appends, one write and one fdatasync.
 *
 * An append reserves its bytes at the end of the log (`reserved`) and copies its record into the
 * current write chunk, synchronously, so queue offsets follow call order. A flush takes what lies
 * between `launched` and `reserved` (at most MAX_FLUSH_BYTES) and, per segment, writes it and
 * runs one fdatasync ('always': both in one call, StoreFile.writeDurable, O_DIRECT where the
 * file system allows it). Up to MAX_FLUSHES_IN_FLIGHT flushes run at once
 * (the next one starts when MIN_OVERLAP_FLUSH_BYTES wait, or at once when none runs), so new
 * appends fill the next chunks while earlier ones sync (pipelining) and the batch size follows
 * the load by itself: one record when idle, megabytes under pressure. Flushes complete in any
 * order; `committed` advances only over a contiguous prefix of completed flushes, so appends
 * resolve strictly in log order.
 *
 *   watermarks:  flushed <= committed <= launched <= reserved
 *   'always':   a flush is complete after its fdatasync; flushed == committed
 *   'interval': a flush is complete after its write; a timer syncs and moves flushed
 *   an append resolves when its record's end <= committed
 *
 * Failure: when the write or the sync of a flush fails, no further flush starts; once every
 * flush in flight has settled, everything from the failed flush's start on is rolled back
 * (later flushes too, since their offsets follow): index entries popped newest first, chunks
 * cut, the segment file truncated and synced, segments created for it removed. Those appends
 * reject with CIRRUS_STORE_NO_SPACE or CIRRUS_STORE_IO and nothing of them is ever visible.
 * After ENOSPC the store goes on: the next append tries again, so appends succeed once space
 * returns. After any other error, or if the rollback itself fails, the error is sticky: every
 * later append rejects with it until the store is reopened (after a failed fsync the device's
 * state is unknown); reads stay available. In 'interval' mode a failed periodic sync is sticky
 * too, since it covers appends that were already acknowledged.
 */
import { invariant } from '../common/index.js';
import { MAX_FLUSHES_IN_FLIGHT, MAX_FLUSH_BYTES, MIN_OVERLAP_FLUSH_BYTES } from './constants.js';
import { StoreNoSpaceError, writeErrorFrom, type StoreIoError } from './errors.js';
import { createHistogram } from './histogram.js';
import type { QueueRef } from './queue-index.js';
import type { Segment, SegmentSet } from './segment-set.js';
import type { Chunk, MemoryTier } from './tiered-cache.js';
import type { SyncPolicy } from './types.js';

interface Waiter {
  readonly q: QueueRef;
  /** Log position just past the record. */
  readonly end: number;
  readonly offset: number;
  readonly resolve: (offset: number) => void;
  readonly reject: (err: unknown) => void;
}

/** One segment's part of a flush: chunk slices written at log position `position`. */
interface WriteGroup {
  readonly segStart: number;
  readonly position: number;
  readonly bufs: Buffer[];
  bytes: number;
}

interface Flight {
  readonly from: number;
  readonly target: number;
  readonly bytes: number;
  settled: boolean;
  error: unknown;
  /** Resolves once settled (a flush into a recycled segment waits for those before it). */
  readonly whenSettled: Promise<void>;
  markSettled(): void;
}

export interface GroupCommitHooks {
  /** Runs before a flush's write: makes new topic ids durable. */
  beforeWrite(): Promise<void>;
  /** After `committed` moved (eviction, checkpoint triggers). */
  afterFlush(): void;
  /** Undo the index entry of a rolled-back append (called newest first). */
  rollbackEntry(q: QueueRef): void;
  /** The log rolled over into a new segment (retention trigger). */
  segmentRolled(): void;
}

type WriteError = StoreIoError | StoreNoSpaceError;

export class GroupCommit {
  reserved: number;
  launched: number;
  committed: number;
  flushed: number;
  /** Start of the segment receiving reservations (its file may not exist yet). */
  private segStart: number;
  private waiters: Waiter[] = [];
  private waitHead = 0;
  private flights: Flight[] = [];
  /** The pending macrotask of a deferred launch (see deferLaunch); null when none. */
  private deferredLaunch: NodeJS.Immediate | null = null;
  /** Resolves once the last launched flush has issued its writes (see run). */
  private issueTurn: Promise<void> = Promise.resolve();
  /** Appends the last commit resolved, and appends enqueued since: see deferLaunch. */
  private cohort = 0;
  private joined = 0;
  private failing = false;
  private recovering = false;
  private drainWaiters: (() => void)[] = [];
  private readonly creating = new Map<number, Promise<Segment>>();
  /** Where the log's data ends in each segment it has rolled past (by start), until that segment's successor exists. */
  private readonly sealedEnds = new Map<number, number>();
  private creationChain: Promise<unknown> = Promise.resolve();
  private intervalTimer: NodeJS.Timeout | null = null;
  private intervalSync: Promise<void> | null = null;
  private readonly dirty = new Set<Segment>();
  /** Set after an unrecoverable write/sync error: every later append rejects with it. */
  stickyError: WriteError | null = null;
  /** Last write error seen, cleared by the next successful flush when it was ENOSPC. */
  lastError: WriteError | null = null;
  readonly syncLatency = createHistogram();
  syncs = 0;
  flushes = 0;
  flushedMessages = 0;
  bytesWritten = 0;

  constructor(
    private readonly segments: SegmentSet,
    private readonly mem: MemoryTier,
    private readonly segmentBytes: number,
    private readonly policy: SyncPolicy,
    private readonly hooks: GroupCommitHooks,
    private readonly now: () => number,
  ) {
    const active = segments.active;
    invariant(active !== undefined, 'an active segment exists before appends');
    this.segStart = active.start;
    this.reserved = active.start + active.size;
    this.launched = this.reserved;
    this.committed = this.reserved;
    this.flushed = this.reserved;
    if (policy.mode === 'interval') {
      this.intervalTimer = setInterval(() => void this.syncDirty(), policy.intervalMs);
      this.intervalTimer.unref();
    }
  }

  /** Highest log position readers may see: only what can no longer be rolled back. */
  get visibleEnd(): number {
    return this.committed;
  }

  /**
   * Reserves `bytes` at the log's end and returns the chunk holding them; the record goes at
   * chunk.used - bytes. Synchronous, so reservations follow call order.
   */
  reserve(bytes: number): Chunk {
    if (this.reserved + bytes > this.segStart + this.segmentBytes) {
      const last = this.mem.last();
      if (last) last.sealed = true;
      this.sealedEnds.set(this.segStart, this.reserved);
      this.segStart = Math.max(this.segStart + this.segmentBytes, this.reserved);
      this.reserved = this.segStart;
      this.hooks.segmentRolled();
    }
    let c = this.mem.last();
    if (!c || c.sealed || c.segStart !== this.segStart || c.start + c.used !== this.reserved || c.used + bytes > c.buf.length) {
      if (c) c.sealed = true;
      c = { start: this.reserved, buf: this.mem.allocate(bytes), used: 0, sealed: false, segStart: this.segStart };
      this.mem.add(c);
    }
    c.used += bytes;
    this.reserved += bytes;
    return c;
  }

  /** Registers the append whose record ends at `end`; resolves with `offset` once committed. */
  enqueue(q: QueueRef, end: number, offset: number): Promise<number> {
    const p = new Promise<number>((resolve, reject) => {
      this.waiters.push({ q, end, offset, resolve, reject });
    });
    if (this.deferredLaunch !== null && ++this.joined >= this.cohort) {
      clearImmediate(this.deferredLaunch);
      this.deferredLaunch = null;
    }
    this.maybeLaunch();
    return p;
  }

  /**
   * After a flush resolves its appends, the next launch waits one macrotask (setImmediate): the
   * producers just woken run their continuations as microtasks first, and the appends they issue
   * join the next flush instead of splitting into a one-record flush now and the rest later.
   * Without this, closed-loop producers settle into two alternating half-size cohorts.
   * It ends early once as many appends have arrived as the commit resolved (the whole cohort is
   * back): waiting on for the macrotask would only let other callbacks that completed meanwhile
   * (readers' preads, their checks) run while the device sits idle.
   */
  private deferLaunch(resolved: number): void {
    if (this.deferredLaunch !== null) {
      this.cohort += resolved;
      return;
    }
    this.cohort = resolved;
    this.joined = 0;
    this.deferredLaunch = setImmediate(() => {
      this.deferredLaunch = null;
      this.maybeLaunch();
    });
  }

  private maybeLaunch(): void {
    if (this.deferredLaunch !== null) return;
    while (
      !this.failing &&
      this.stickyError === null &&
      this.launched < this.reserved &&
      this.flights.length < MAX_FLUSHES_IN_FLIGHT &&
      (this.flights.length === 0 || this.reserved - this.launched >= MIN_OVERLAP_FLUSH_BYTES)
    ) {
      this.launch();
    }
  }

  private launch(): void {
    const from = this.launched;
    // Chunk slices from `from`, cut at chunk ends (always record boundaries), one group per segment.
    const groups: WriteGroup[] = [];
    let target = from;
    let bytes = 0;
    for (const c of this.mem.range(from, this.reserved)) {
      const s = Math.max(from, c.start);
      const e = c.start + c.used;
      if (e <= s) continue;
      // A flush never passes MAX_FLUSH_BYTES unless one chunk alone does: recovery's unflushed
      // window (recovery.ts) relies on this bound.
      if (bytes > 0 && bytes + (e - s) > MAX_FLUSH_BYTES) break;
      let g = groups[groups.length - 1];
      if (!g || g.segStart !== c.segStart) {
        g = { segStart: c.segStart, position: s, bufs: [], bytes: 0 };
        groups.push(g);
      }
      g.bufs.push(c.buf.subarray(s - c.start, e - c.start));
      g.bytes += e - s;
      bytes += e - s;
      target = e;
    }
    invariant(target > from, 'a flush makes progress');
    invariant(bytes > 0 && bytes <= target - from, 'a flush covers its range; only a segment gap is skipped');
    this.launched = target;
    let markSettled!: () => void;
    const whenSettled = new Promise<void>((resolve) => (markSettled = resolve));
    const flight: Flight = { from, target, bytes, settled: false, error: null, whenSettled, markSettled };
    this.flights.push(flight);
    // The flush's segments are asked for now, in log order: a flush of small segments can need two
    // new ones, and asked for after an await the next flush's could be created between them.
    const segs = groups.map((g) => this.segmentFor(g.segStart));
    // Awaited in run(); a creation failing before that must not count as unhandled meanwhile.
    for (const p of segs) p.catch(() => undefined);
    void this.run(flight, groups, segs);
  }

  private async run(flight: Flight, groups: WriteGroup[], segPromises: Promise<Segment>[]): Promise<void> {
    // History reads wait while a flush is in flight (write and fdatasync alike): opening the gate
    // between the two would let reads reach the device just as the sync does.
    this.segments.flushGate.hold();
    // Flushes reach the files in launch order: a direct write rewrites the block the previous one
    // ended in (native/durable-write.c), so a later flush must not overtake an earlier one on the
    // way (a new segment's creation, the topic dictionary, opening a file).
    const turn = this.issueTurn;
    let issued!: () => void;
    this.issueTurn = new Promise<void>((resolve) => (issued = resolve));
    try {
      await this.hooks.beforeWrite();
      const segs = await Promise.all(segPromises);
      await turn;
      const first = groups.findIndex((g, k) => g.position === segs[k].start);
      let concurrentFrom = 0;
      if (first >= 0) {
        // The first write into a segment goes only once every byte before it is durable: recovery
        // takes a segment after the last one's end as the log's continuation, so a crash that left
        // the previous segment's tail unwritten and this one's first records whole would leave a
        // hole recovery cannot tell from a short segment (unacknowledged records kept past an
        // offset marked damaged); in a recycled file, whose size (its previous life's) puts the
        // unflushed window inside it, that hole would read as damage in the middle (recovery.ts,
        // tailPlan). Once per segment: a roll-over's flush waits for the ones before it.
        const mine = this.flights.indexOf(flight);
        await Promise.all(this.flights.slice(0, mine).map((f) => f.whenSettled));
        if (this.failing) throw new Error('an earlier flush failed');
        for (; concurrentFrom < first; concurrentFrom++) await this.writeGroup(segs[concurrentFrom], groups[concurrentFrom]);
      }
      const writes = groups.slice(concurrentFrom).map((g, k) => this.writeGroup(segs[concurrentFrom + k], g));
      issued();
      // Every write settles before the flush does: a rollback must not cut a file under one.
      const failed = (await Promise.allSettled(writes)).find((r) => r.status === 'rejected');
      if (failed) throw failed.reason;
    } catch (err) {
      flight.error = err ?? new Error('flush failed');
      this.failing = true;
    } finally {
      issued();
      this.segments.flushGate.release();
    }
    flight.settled = true;
    flight.markSettled();
    this.advance();
  }

  /** One segment's part of a flush: written and synced ('always'), or written ('interval'). */
  private async writeGroup(seg: Segment, g: WriteGroup): Promise<void> {
    const at = g.position - seg.start;
    if (this.policy.mode === 'always') {
      // Write and fdatasync in one call: O_DIRECT in one native job where it can (io.ts).
      const t0 = process.hrtime.bigint();
      await this.segments.writeDurableAt(seg, g.bufs, at);
      this.syncLatency.record(Number(process.hrtime.bigint() - t0) / 1000);
      this.syncs++;
    } else {
      await this.segments.writeAt(seg, g.bufs, at);
      this.dirty.add(seg);
    }
    const end = at + g.bytes;
    if (end > seg.size) seg.size = end;
    seg.lastWriteMs = this.now();
  }

  /** Commits the contiguous prefix of completed flushes; starts the rollback once all settled. */
  private advance(): void {
    let moved = false;
    let resolvedNow = 0;
    while (this.flights.length > 0 && this.flights[0].settled && this.flights[0].error === null) {
      const f = this.flights.shift() as Flight;
      invariant(f.from >= this.committed && f.target <= this.launched, 'flushes commit in log order, without gaps or overlap');
      this.committed = f.target;
      if (this.policy.mode === 'always') this.flushed = f.target;
      this.bytesWritten += f.bytes;
      this.flushes++;
      const resolved = this.resolveUpTo(f.target);
      invariant(this.waitHead >= this.waiters.length || this.waiters[this.waitHead].end > this.committed, 'every append the commit covers is resolved');
      this.flushedMessages += resolved;
      resolvedNow += resolved;
      moved = true;
    }
    if (moved) {
      if (this.lastError instanceof StoreNoSpaceError) this.lastError = null;
      this.hooks.afterFlush();
    }
    if (this.failing) {
      if (!this.recovering && this.flights.every((f) => f.settled)) {
        this.recovering = true;
        const failed = this.flights[0];
        invariant(failed !== undefined && failed.error !== null, 'the first unsettled flush is the failed one');
        void this.fail(failed.error, failed.from).finally(() => {
          this.flights = [];
          this.failing = false;
          this.recovering = false;
          this.maybeLaunch();
          this.notifyDrain();
        });
      }
      return;
    }
    if (this.stickyError !== null) this.rejectUnlaunched();
    if (moved) this.deferLaunch(resolvedNow);
    else this.maybeLaunch();
    this.notifyDrain();
  }

  /**
   * After a sticky error no flush launches again, so appends reserved and not yet launched would
   * wait forever: once the flushes in flight have settled, they are rolled back (nothing of them
   * was written) and rejected with it. fail() does this for its own errors; this is for the others
   * ('interval' mode's periodic sync).
   */
  private rejectUnlaunched(): void {
    const err = this.stickyError;
    if (err === null || this.failing || this.flights.length > 0 || this.launched >= this.reserved) return;
    invariant(this.committed === this.launched, 'with no flush in flight everything launched is committed');
    for (const w of this.rollbackPending(this.launched).rejected) w.reject(err);
  }

  private notifyDrain(): void {
    if (this.flights.length > 0 || (this.launched < this.reserved && this.stickyError === null)) return;
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w();
  }

  /** Resolves when everything reserved so far is committed (or failed); syncs in 'interval' mode. */
  async drain(): Promise<void> {
    this.maybeLaunch();
    while (this.flights.length > 0 || (this.launched < this.reserved && this.stickyError === null)) {
      await new Promise<void>((r) => this.drainWaiters.push(r));
    }
    if (this.intervalSync) await this.intervalSync;
    if (this.policy.mode === 'interval' && this.stickyError === null) await this.syncDirty();
  }

  stop(): void {
    if (this.intervalTimer) clearInterval(this.intervalTimer);
    this.intervalTimer = null;
  }

  /**
   * The segment starting at `start`, creating its file when the log has just rolled into it.
   * Creations are chained so segments join the set in start order even when flushes for two
   * new segments are in flight at once. A creation that fails fails the ones chained behind it
   * too: creating the next segment after a missing one would put a hole in the log (and break the
   * set's order at the next roll-over); fail() waits for the chain, then starts it afresh.
   */
  private segmentFor(start: number): Promise<Segment> {
    const known = this.segments.find(start);
    if (known && known.start === start) return Promise.resolve(known);
    const pending = this.creating.get(start);
    if (pending) return pending;
    const seg: Segment = { start, size: 0, lastWriteMs: this.now() };
    const p = this.creationChain
      .then(async () => {
        // A recycled segment the log rolls past is cut where its data ends, durably, before its
        // successor exists: recovery must not read its previous life's records after its data
        // as damage in the middle of the log (they fail their CRC there; recovery.ts).
        const prev = this.segments.active;
        const end = prev === undefined ? undefined : this.sealedEnds.get(prev.start);
        if (prev !== undefined && prev.recycled === true) {
          invariant(end !== undefined && end >= prev.start && end <= start, 'a segment rolled past has a sealed end');
          await this.segments.truncate(prev, end - prev.start);
        }
        if (prev !== undefined) this.sealedEnds.delete(prev.start);
        await this.segments.openActive(seg, true);
        return seg;
      })
      .finally(() => this.creating.delete(start));
    this.creating.set(start, p);
    this.creationChain = p;
    return p;
  }

  private resolveUpTo(position: number): number {
    let n = 0;
    while (this.waitHead < this.waiters.length && this.waiters[this.waitHead].end <= position) {
      const w = this.waiters[this.waitHead++];
      w.resolve(w.offset);
      n++;
    }
    if (this.waitHead === this.waiters.length) {
      this.waiters = [];
      this.waitHead = 0;
    } else if (this.waitHead > 4096) {
      this.waiters = this.waiters.slice(this.waitHead);
      this.waitHead = 0;
    }
    return n;
  }

  /** Rolls back everything at or after `from` and rejects its appends; see the file comment. */
  private async fail(cause: unknown, from: number): Promise<void> {
    const err = writeErrorFrom(cause, 'append flush failed');
    this.lastError = err;
    // In-memory state first, so appends arriving meanwhile reserve from the rolled-back end.
    const { seg, rejected } = this.rollbackPending(from);
    try {
      // Creations still under way would add segments past the cut after the loop below.
      await this.creationChain.catch(() => undefined);
      this.creationChain = Promise.resolve();
      while (this.segments.active !== seg) {
        const gone = this.segments.active as Segment;
        // 'interval' mode: a segment the rollback deletes has nothing left to sync.
        this.dirty.delete(gone);
        await this.segments.remove(gone, 'rollback');
      }
      await this.segments.truncate(seg, from - seg.start);
    } catch (e) {
      this.stickyError = writeErrorFrom(e, 'rollback after a failed flush failed');
    }
    if (!(err instanceof StoreNoSpaceError) && this.stickyError === null) this.stickyError = err;
    // Rejected only now that the cut is durable: a rejected append never reappears after a crash.
    for (const w of rejected) w.reject(err);
    // Appends that arrived while the file was being cut cannot be written now: reject them too.
    if (this.stickyError !== null) {
      const late = this.rollbackPending(from).rejected;
      for (const w of late) w.reject(this.stickyError);
    }
  }

  /** Pops the index entries of every unresolved append (newest first) and cuts the chunks. */
  private rollbackPending(from: number): { seg: Segment; rejected: Waiter[] } {
    const rejected = this.waiters.slice(this.waitHead);
    this.waiters = [];
    this.waitHead = 0;
    for (let i = rejected.length - 1; i >= 0; i--) {
      invariant(rejected[i].end > from, 'only uncommitted appends are rolled back');
      this.hooks.rollbackEntry(rejected[i].q);
    }
    this.mem.rollback(from);
    for (const start of this.sealedEnds.keys()) if (start + this.segmentBytes > from) this.sealedEnds.delete(start);
    this.reserved = from;
    this.launched = from;
    this.committed = from;
    if (this.flushed > from) this.flushed = from;
    const seg = this.segments.find(from);
    invariant(seg !== undefined, 'the rollback point lies in a segment');
    this.segStart = seg.start;
    return { seg, rejected };
  }

  /** 'interval' mode: one fdatasync of every segment written since the last one. */
  private syncDirty(): Promise<void> {
    if (this.intervalSync) return this.intervalSync;
    if (this.dirty.size === 0) return Promise.resolve();
    const target = this.committed;
    const segs = [...this.dirty];
    this.dirty.clear();
    this.intervalSync = (async () => {
      try {
        for (const seg of segs) {
          const t0 = process.hrtime.bigint();
          await this.segments.sync(seg);
          this.syncLatency.record(Number(process.hrtime.bigint() - t0) / 1000);
          this.syncs++;
        }
        if (target > this.flushed) this.flushed = target;
      } catch (e) {
        this.stickyError = writeErrorFrom(e, 'periodic sync failed');
        this.lastError = this.stickyError;
        this.rejectUnlaunched();
        this.notifyDrain();
      } finally {
        this.intervalSync = null;
      }
    })();
    return this.intervalSync;
  }
}
