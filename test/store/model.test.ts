/**
 * Model-based property test of MessageStore (fast-check commands): random sequences of
 * concurrent appends over several topics and queues, reads at random offsets (also while appends
 * are in flight), listings, checkpoints, retention with small segments (rolls, deletion and
 * segment recycling), clean reopens with other options, crash-style reopens (a copy of the
 * directory taken while the store runs, appends in flight), bad input, a second open of a locked
 * directory, and injected write faults (ENOSPC on log writes, syncs, segment creation, the
 * dictionary and checkpoints; EIO, sticky until reopen), each checked against a model: per
 * (topic, queueId) the acknowledged records in order, the first retained offset, and the log
 * order of every record (retention may only drop a prefix of the log).
 *
 * Runs: CIRRUS_MODEL_RUNS (default 20), CIRRUS_MODEL_COMMANDS (default 30 at most per run),
 * CIRRUS_MODEL_SEED to replay a seed (with CIRRUS_MODEL_PATH for a path), CIRRUS_MODEL_SHRINK=1 to shrink a
 * failure (slow: every step runs real I/O), CIRRUS_MODEL_VERBOSE=1 to log every command.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import fc from 'fast-check';
import {
  MessageStore,
  StoreError,
  StoreInvalidArgumentError,
  StoreIoError,
  StoreLockedError,
  StoreNoSpaceError,
  StoreOffsetTruncatedError,
  type OpenOptions,
} from '../../src/store/index.js';
import { FaultyIo, crashSnapshot, removeDir, segmentFiles, tempDir, xorshiftBytes, type FaultOp } from './helpers.js';

const RUNS = Number(process.env.CIRRUS_MODEL_RUNS ?? 20);
const MAX_COMMANDS = Number(process.env.CIRRUS_MODEL_COMMANDS ?? 30);
const SEED = process.env.CIRRUS_MODEL_SEED === undefined ? undefined : Number(process.env.CIRRUS_MODEL_SEED);
const PATH = process.env.CIRRUS_MODEL_PATH;
const VERBOSE = process.env.CIRRUS_MODEL_VERBOSE === '1';

const HEADER = 36;
const MAX_MESSAGE = 24 * 1024;
const TOPICS = ['a', 'b', 'topic-c', 'ü'] as const;
const QUEUE_IDS = [0, 1, 2, 3, 700, 0xffff_ffff] as const;

// ---------------------------------------------------------------------------------------------
// Configuration of one open.

interface Config {
  segmentBytes: number;
  memoryCacheBytes: number;
  fast: boolean;
  retentionBytes: number | null;
  recycle: boolean;
  /** false: FaultyIo hides the durable write (writev + fdatasync through the page cache). */
  durableWrites: boolean;
}

const configArb: fc.Arbitrary<Config> = fc.record({
  segmentBytes: fc.constantFrom(32 * 1024, 48 * 1024, 64 * 1024, 160 * 1024, 1024 * 1024),
  memoryCacheBytes: fc.constantFrom(0, 64 * 1024, 512 * 1024, 8 * 1024 * 1024),
  fast: fc.boolean(),
  retentionBytes: fc.option(fc.constantFrom(96 * 1024, 256 * 1024, 768 * 1024), { nil: null, freq: 3 }),
  recycle: fc.boolean(),
  durableWrites: fc.boolean(),
});

function showConfig(c: Config): string {
  return `seg=${c.segmentBytes >> 10}K mem=${c.memoryCacheBytes >> 10}K fast=${c.fast} ret=${c.retentionBytes === null ? '-' : `${c.retentionBytes >> 10}K`} recycle=${c.recycle} durable=${c.durableWrites}`;
}

// ---------------------------------------------------------------------------------------------
// Model.

interface Rec {
  data: Buffer;
  /** Position in log order (call order of acknowledged appends, over the store's whole life). */
  seq: number;
}

interface QueueModel {
  topic: string;
  queueId: number;
  /** First retained offset as last observed (retention only moves it up). */
  start: number;
  /** Every acknowledged record, index = offset (those below `start` too, for the prefix check). */
  recs: Rec[];
}

interface Model {
  queues: Map<string, QueueModel>;
  seq: number;
  /** Order in which topics were first appended to (dictionary order), for topics() order. */
  topicRank: Map<string, number>;
  /** Topics whose dictionary position is unknown (no record survived a reopen). */
  uncertain: Set<string>;
  nextRank: number;
  cfg: Config;
  /** Acknowledged appends since this open (stats().messagesWritten). */
  ackedSinceOpen: number;
  /** The largest segment size any open used (retention's lower bound). */
  maxSegmentBytes: number;
  /**
   * Whether retention may have run since starts were last observed: the current options have it,
   * or the previous open had it (a retention a roll-over started finishes before close()).
   */
  retentionPossible: boolean;
}

interface Real {
  store: MessageStore;
  dir: string;
  root: string;
  io: FaultyIo;
  /** Directories to remove at the end of the run. */
  scratch: string[];
}

const key = (topic: string, queueId: number): string => `${topic}\u0000${queueId}`;

function queueOf(m: Model, topic: string, queueId: number): QueueModel {
  const k = key(topic, queueId);
  let q = m.queues.get(k);
  if (q === undefined) {
    q = { topic, queueId, start: 0, recs: [] };
    m.queues.set(k, q);
  }
  return q;
}

function noteTopicCall(m: Model, topic: string): void {
  if (!m.topicRank.has(topic)) m.topicRank.set(topic, m.nextRank++);
}

function payloadOf(size: number, salt: number): Buffer {
  return xorshiftBytes(size, (salt * 2654435761 + 12345) >>> 0 || 1);
}

let saltCounter = 1;

function openOptions(real: { dir: string; root: string; io: FaultyIo }, c: Config): OpenOptions {
  return {
    dir: real.dir,
    io: real.io,
    segmentBytes: c.segmentBytes,
    maxMessageBytes: MAX_MESSAGE,
    memoryCacheBytes: c.memoryCacheBytes,
    ...(c.fast ? { fastTierDir: join(real.root, 'fast'), fastTierBytes: 256 * 1024 } : {}),
    ...(c.retentionBytes === null ? {} : { retention: { maxTotalBytes: c.retentionBytes } }),
    recycleSegments: c.recycle,
  };
}

function log(msg: string): void {
  if (VERBOSE) process.stderr.write(`${msg}\n`);
}

const isCode =
  (code: string) =>
  (e: unknown): boolean =>
    e instanceof StoreError && e.code === code;

/**
 * Retention may only have dropped a prefix of the log: every dropped record lies before every
 * retained one. Needs every queue's start as of one moment (queues()).
 */
function checkPrefixDropped(m: Model): void {
  let maxDropped = -1;
  let minKept = Number.POSITIVE_INFINITY;
  for (const q of m.queues.values()) {
    for (let o = 0; o < q.recs.length; o++) {
      const seq = q.recs[o].seq;
      if (o < q.start) maxDropped = Math.max(maxDropped, seq);
      else minKept = Math.min(minKept, seq);
    }
  }
  assert.ok(maxDropped < minKept, `retention dropped a prefix of the log (dropped up to seq ${maxDropped}, kept from ${minKept})`);
}

/** A start offset the store reports for q: never below what was seen, never past the end, moving only with retention. */
function learnStart(m: Model, q: QueueModel, start: number, allowDown = false): void {
  assert.ok(start <= q.recs.length, `${q.topic}/${q.queueId}: start ${start} past the end ${q.recs.length}`);
  if (!allowDown) assert.ok(start >= q.start, `${q.topic}/${q.queueId}: start went down ${q.start} -> ${start}`);
  if (start > q.start) assert.ok(m.retentionPossible, `${q.topic}/${q.queueId}: start moved (${q.start} -> ${start}) without retention`);
  q.start = start;
}

function retainedBytes(m: Model): number {
  let n = 0;
  for (const q of m.queues.values()) for (let o = q.start; o < q.recs.length; o++) n += HEADER + q.recs[o].data.length;
  return n;
}

/** Listings, stats and end offsets against the model (no append in flight). */
function checkListings(m: Model, r: Real): number {
  const s = r.store;
  const listed = s.queues();
  const held = [...m.queues.values()].filter((q) => q.recs.length > 0);
  assert.equal(listed.length, held.length, `queues(): ${listed.length} listed, model holds ${held.length}`);
  for (const info of listed) {
    const q = m.queues.get(key(info.topic, info.queueId));
    assert.ok(q !== undefined && q.recs.length > 0, `queues() lists ${info.topic}/${info.queueId}, unknown to the model`);
    assert.equal(info.endOffset, q.recs.length, `${info.topic}/${info.queueId} endOffset`);
    learnStart(m, q, info.startOffset);
    let bytes = 0;
    for (let o = q.start; o < q.recs.length; o++) bytes += HEADER + q.recs[o].data.length;
    assert.equal(info.bytes, bytes, `${info.topic}/${info.queueId} bytes`);
  }
  checkPrefixDropped(m);
  m.retentionPossible = m.cfg.retentionBytes !== null;
  const heldTopics = new Set(held.map((q) => q.topic));
  const topics = s.topics();
  assert.deepEqual([...topics].sort(), [...heldTopics].sort(), 'topics()');
  const certain = topics.filter((t) => !m.uncertain.has(t));
  const ranked = [...certain].sort((x, y) => (m.topicRank.get(x) ?? 0) - (m.topicRank.get(y) ?? 0));
  assert.deepEqual(certain, ranked, 'topics() in the order they were first written');
  for (const t of TOPICS) {
    const per = s.queues(t);
    assert.deepEqual(
      per.map((i) => i.queueId).sort((x, y) => x - y),
      held.filter((q) => q.topic === t).map((q) => q.queueId).sort((x, y) => x - y),
      `queues(${t})`,
    );
  }
  for (const q of m.queues.values()) assert.equal(s.endOffset(q.topic, q.queueId), q.recs.length, `endOffset ${q.topic}/${q.queueId}`);
  const st = s.stats();
  assert.equal(st.topics, topics.length, 'stats().topics');
  assert.equal(st.queues, listed.length, 'stats().queues');
  assert.equal(st.messagesWritten, m.ackedSinceOpen, 'stats().messagesWritten');
  return st.segments;
}

/** stats().segments against the files (no retention may be under way: it removes a segment from the list, then its file). */
function checkSegmentFiles(r: Real): void {
  const files = segmentFiles(r.dir).map((f) => f.slice(f.lastIndexOf('/') + 1));
  assert.equal(files.length, r.store.stats().segments, `stats().segments = segment files (${files.join(' ')})`);
}

/** Every retained record of every queue reads back as the model holds it. */
async function checkAllRecords(m: Model, r: Real): Promise<void> {
  for (const q of m.queues.values()) {
    for (let o = q.start; o < q.recs.length; ) {
      let got: Buffer[];
      try {
        got = await r.store.getRange(q.topic, q.queueId, o, 100);
      } catch (e) {
        if (e instanceof StoreOffsetTruncatedError && m.retentionPossible) {
          // Background retention (at a roll-over) moved the start meanwhile.
          learnStart(m, q, e.firstAvailableOffset);
          o = q.start;
          continue;
        }
        throw e;
      }
      const n = Math.min(100, q.recs.length - o);
      assert.equal(got.length, n, `${q.topic}/${q.queueId}@${o}: ${got.length} records, expected ${n}`);
      got.forEach((b, k) => assert.ok(b.equals(q.recs[o + k].data), `${q.topic}/${q.queueId}@${o + k}: bytes differ (${b.length} vs ${q.recs[o + k].data.length})`));
      o += n;
    }
    assert.deepEqual(await r.store.getRange(q.topic, q.queueId, q.recs.length, 7), [], `${q.topic}/${q.queueId}: past the end`);
  }
}

// ---------------------------------------------------------------------------------------------
// Commands.

interface AppendItem {
  topic: string;
  queueId: number;
  size: number;
}

const sizeArb = fc.oneof(
  { weight: 5, arbitrary: fc.integer({ min: 0, max: 400 }) },
  { weight: 3, arbitrary: fc.integer({ min: 0, max: 6000 }) },
  { weight: 1, arbitrary: fc.integer({ min: 6000, max: 20 * 1024 }) },
);
const itemArb: fc.Arbitrary<AppendItem> = fc.record({
  topic: fc.constantFrom(...TOPICS),
  queueId: fc.oneof({ weight: 6, arbitrary: fc.constantFrom(0, 1, 2) }, { weight: 1, arbitrary: fc.constantFrom(...QUEUE_IDS) }),
  size: sizeArb,
});
const itemsArb = (max: number): fc.Arbitrary<AppendItem[]> => fc.array(itemArb, { minLength: 1, maxLength: max });

interface ReadProbe {
  topic: string;
  queueId: number;
  /** Picks the offset: 0..end+2 of the queue at run time. */
  pick: number;
  fetchNum: number;
}
const probeArb: fc.Arbitrary<ReadProbe> = fc.record({
  topic: fc.constantFrom(...TOPICS),
  queueId: fc.constantFrom(0, 1, 2, 700),
  pick: fc.nat(),
  fetchNum: fc.oneof(fc.integer({ min: 1, max: 5 }), fc.constantFrom(99, 100), fc.integer({ min: 1, max: 100 })),
});

interface Expected {
  item: AppendItem;
  data: Buffer;
  offset: number;
  q: QueueModel;
}

/** Plans a batch: each item's data and the offset it must get (call order, from the model's ends). */
function plan(m: Model, items: readonly AppendItem[]): Expected[] {
  const next = new Map<string, number>();
  return items.map((item) => {
    const q = queueOf(m, item.topic, item.queueId);
    const k = key(item.topic, item.queueId);
    const offset = next.get(k) ?? q.recs.length;
    next.set(k, offset + 1);
    return { item, data: payloadOf(item.size, saltCounter++), offset, q };
  });
}

/** Records the acknowledged appends of a batch (a prefix of each queue's planned ones) in the model. */
function acknowledge(m: Model, acked: readonly Expected[]): void {
  for (const e of acked) {
    assert.equal(e.offset, e.q.recs.length, `${e.item.topic}/${e.item.queueId}: acknowledged offsets contiguous`);
    e.q.recs.push({ data: e.data, seq: m.seq++ });
    m.ackedSinceOpen++;
  }
}

/** Offset a probe reads at: anywhere from 0 to two past the end (below the start too). */
function probeOffset(q: QueueModel | undefined, pick: number, pendingForQueue = 0): number {
  const end = (q?.recs.length ?? 0) + pendingForQueue;
  return pick % (end + 3);
}

/** Checks a getRange result taken while `pending` appends of the queue may be in flight. */
function checkRead(m: Model, p: ReadProbe, offset: number, res: PromiseSettledResult<Buffer[]>, pending: readonly Buffer[]): void {
  const q = m.queues.get(key(p.topic, p.queueId));
  const acked = q?.recs ?? [];
  const what = `getRange(${p.topic}, ${p.queueId}, ${offset}, ${p.fetchNum})`;
  if (res.status === 'rejected') {
    const e: unknown = res.reason;
    assert.ok(e instanceof StoreOffsetTruncatedError && e.code === 'CIRRUS_STORE_OFFSET_TRUNCATED', `${what} rejected: ${String(e)}`);
    assert.ok(q !== undefined, `${what}: truncated on a queue never written`);
    assert.ok(offset < e.firstAvailableOffset, `${what}: truncated but firstAvailableOffset ${e.firstAvailableOffset} <= offset`);
    // The other queues' starts are checked against the log order at the next listing.
    learnStart(m, q, e.firstAvailableOffset);
    return;
  }
  const got = res.value;
  if (q !== undefined) assert.ok(offset >= q.start || got.length === 0, `${what}: read below the retained start ${q.start}`);
  if (q !== undefined && offset < q.start) assert.fail(`${what} returned ${got.length} records below the known start ${q.start}`);
  const all = [...acked.map((r) => r.data), ...pending];
  const minimum = Math.max(0, Math.min(p.fetchNum, acked.length - offset));
  const maximum = Math.max(0, Math.min(p.fetchNum, all.length - offset));
  assert.ok(got.length >= minimum && got.length <= maximum, `${what}: ${got.length} records, expected ${minimum}..${maximum}`);
  got.forEach((b, k) => assert.ok(b.equals(all[offset + k]), `${what}: record ${offset + k} differs`));
}

type Cmd = fc.AsyncCommand<Model, Real, false>;

class AppendCmd implements Cmd {
  constructor(
    readonly items: AppendItem[],
    readonly probes: ReadProbe[],
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const planned = plan(m, this.items);
    for (const e of planned) noteTopicCall(m, e.item.topic);
    const pendingOf = (t: string, qid: number): Buffer[] => planned.filter((e) => e.item.topic === t && e.item.queueId === qid).map((e) => e.data);
    const appends = planned.map((e) => r.store.append(e.item.topic, e.item.queueId, e.data));
    // endOffset counts appends in flight.
    for (const e of planned) assert.equal(r.store.endOffset(e.item.topic, e.item.queueId), e.q.recs.length + pendingOf(e.item.topic, e.item.queueId).length);
    const reads = this.probes.map((p) => {
      const offset = probeOffset(m.queues.get(key(p.topic, p.queueId)), p.pick, pendingOf(p.topic, p.queueId).length);
      return { p, offset, res: r.store.getRange(p.topic, p.queueId, offset, p.fetchNum) };
    });
    // Settled at once, so a rejection is never unhandled while the appends are awaited.
    const readsSettled = Promise.allSettled(reads.map((x) => x.res));
    const results = await Promise.allSettled(appends);
    results.forEach((res, i) => {
      assert.equal(res.status, 'fulfilled', `append ${i} rejected: ${res.status === 'rejected' ? String(res.reason) : ''}`);
      if (res.status === 'fulfilled') assert.equal(res.value, planned[i].offset, `append ${i} offset (call order)`);
    });
    const readResults = await readsSettled;
    reads.forEach((x, i) => checkRead(m, x.p, x.offset, readResults[i], pendingOf(x.p.topic, x.p.queueId)));
    acknowledge(m, planned);
  }
  toString(): string {
    return `append(${JSON.stringify(this.items.map((i) => [i.topic, i.queueId, i.size]))}, reads ${JSON.stringify(this.probes.map((p) => [p.topic, p.queueId, p.pick, p.fetchNum]))})`;
  }
}

class ReadCmd implements Cmd {
  constructor(readonly probes: ReadProbe[]) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const reads = this.probes.map((p) => {
      const offset = probeOffset(m.queues.get(key(p.topic, p.queueId)), p.pick);
      return { p, offset, res: r.store.getRange(p.topic, p.queueId, offset, p.fetchNum) };
    });
    const results = await Promise.allSettled(reads.map((x) => x.res));
    reads.forEach((x, i) => {
      checkRead(m, x.p, x.offset, results[i], []);
      const q = m.queues.get(key(x.p.topic, x.p.queueId));
      const res = results[i];
      // With nothing in flight every acknowledged record is visible: exactly the model's slice.
      if (res.status === 'fulfilled' && q !== undefined && x.offset >= q.start) {
        assert.equal(res.value.length, Math.max(0, Math.min(x.p.fetchNum, q.recs.length - x.offset)), 'getRange length');
      }
    });
  }
  toString(): string {
    return `read(${JSON.stringify(this.probes.map((p) => [p.topic, p.queueId, p.pick, p.fetchNum]))})`;
  }
}

class ListCmd implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    checkListings(m, r);
    await Promise.resolve();
  }
  toString(): string {
    return 'listings';
  }
}

class CheckpointCmd implements Cmd {
  constructor(readonly full: boolean) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.store.checkpoint({ full: this.full });
    const st = r.store.stats();
    assert.equal(st.checkpoints.logBytesSince, 0, 'a checkpoint covers the whole durable log');
    checkListings(m, r);
  }
  toString(): string {
    return `checkpoint(${this.full ? 'full' : ''})`;
  }
}

class RetentionCmd implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await r.store.applyRetention();
    // A second call waits for one a roll-over started meanwhile, and runs again.
    await r.store.applyRetention();
    checkListings(m, r);
    checkSegmentFiles(r);
    const limit = m.cfg.retentionBytes;
    if (limit !== null) {
      const kept = retainedBytes(m);
      const segments = r.store.stats().segments;
      assert.ok(segments === 1 || kept <= limit, `after retention ${kept} bytes in ${segments} segments, limit ${limit}`);
    }
    await checkAllRecords(m, r);
  }
  toString(): string {
    return 'applyRetention';
  }
}

/** Closes the store and opens it again, with `cfg`. */
async function reopen(m: Model, r: Real, cfg: Config, clean: boolean): Promise<void> {
  await r.store.close();
  r.io = new FaultyIo({ durableWrites: cfg.durableWrites });
  r.store = await MessageStore.open(openOptions(r, cfg));
  afterReopen(m, cfg);
  assert.equal(r.store.recovery.cleanShutdown, clean, 'cleanShutdown');
  assert.deepEqual(r.store.recovery.damage, [], 'no damage after a clean close');
  checkSegmentFiles(r);
}

function afterReopen(m: Model, cfg: Config): void {
  m.retentionPossible = m.cfg.retentionBytes !== null || cfg.retentionBytes !== null;
  m.cfg = cfg;
  m.ackedSinceOpen = 0;
  m.maxSegmentBytes = Math.max(m.maxSegmentBytes, cfg.segmentBytes);
  for (const t of TOPICS) {
    if (![...m.queues.values()].some((q) => q.topic === t && q.recs.length > 0)) m.uncertain.add(t);
  }
}

class ReopenCmd implements Cmd {
  constructor(readonly cfg: Config | null) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await reopen(m, r, this.cfg ?? m.cfg, true);
    checkListings(m, r);
    await checkAllRecords(m, r);
  }
  toString(): string {
    return `reopen(${this.cfg === null ? 'same' : showConfig(this.cfg)})`;
  }
}

class CrashCmd implements Cmd {
  constructor(
    readonly items: AppendItem[],
    readonly ticks: number,
    readonly cfg: Config | null,
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const planned = plan(m, this.items);
    for (const e of planned) noteTopicCall(m, e.item.topic);
    const ackedAt: boolean[] = planned.map(() => false);
    const appends = Promise.allSettled(
      planned.map((e, i) =>
        r.store.append(e.item.topic, e.item.queueId, e.data).then((offset) => {
          ackedAt[i] = true;
          return offset;
        }),
      ),
    );
    for (let i = 0; i < this.ticks; i++) {
      if (i % 2 === 0) await new Promise<void>((res) => setImmediate(res));
      else await new Promise<void>((res) => setTimeout(res, 1));
    }
    const copy = crashSnapshot(r.dir); // synchronous: nothing of this process runs meanwhile
    const acked = [...ackedAt];
    r.scratch.push(copy);
    const results = await appends;
    results.forEach((res, i) => {
      assert.equal(res.status, 'fulfilled', `append ${i} rejected: ${res.status === 'rejected' ? String(res.reason) : ''}`);
      if (res.status === 'fulfilled') assert.equal(res.value, planned[i].offset);
    });
    await r.store.close();
    removeDir(r.dir);
    r.dir = copy;
    const cfg = this.cfg ?? m.cfg;
    r.io = new FaultyIo({ durableWrites: cfg.durableWrites });
    r.store = await MessageStore.open(openOptions(r, cfg));
    const rec = r.store.recovery;
    assert.equal(rec.cleanShutdown, false);
    assert.deepEqual(rec.damage.filter((d) => d.kind !== 'tail'), [], 'a crash leaves only a torn tail');
    assert.equal(rec.damagedOffsets, 0, 'no offsets lost in the middle');
    // Which of the batch survived: per queue a prefix of its appends, and over the batch a prefix
    // of the log (call order) that covers every append acknowledged before the copy.
    const lastAcked = acked.lastIndexOf(true);
    let survived = -1;
    for (let k = planned.length; k >= 0 && survived < 0; k--) {
      const ok = [...new Set(planned.map((e) => key(e.item.topic, e.item.queueId)))].every((qk) => {
        const q = m.queues.get(qk) as QueueModel;
        const inPrefix = planned.slice(0, k).filter((e) => key(e.item.topic, e.item.queueId) === qk).length;
        return r.store.endOffset(q.topic, q.queueId) === q.recs.length + inPrefix;
      });
      if (ok) survived = k;
    }
    const ends = planned.map((e) => `${e.item.topic}/${e.item.queueId}=${r.store.endOffset(e.item.topic, e.item.queueId)}`);
    assert.ok(survived >= 0, `the records that survived the crash are no prefix of the log: ${[...new Set(ends)].join(' ')}`);
    assert.ok(survived > lastAcked, `acknowledged append ${lastAcked} lost (${survived} of ${planned.length} survived)`);
    m.ackedSinceOpen = 0;
    acknowledge(m, planned.slice(0, survived));
    afterReopen(m, cfg);
    m.ackedSinceOpen = 0;
    // Retention may have deleted a segment after the copy's index checkpoint moved a start up but
    // before the copy was taken: the copy may then start lower (the records are still there).
    for (const info of r.store.queues()) {
      const q = m.queues.get(key(info.topic, info.queueId));
      assert.ok(q !== undefined, `${info.topic}/${info.queueId} appeared after the crash`);
      learnStart(m, q, info.startOffset, true);
    }
    checkListings(m, r);
    await checkAllRecords(m, r);
  }
  toString(): string {
    return `crash(after ${this.ticks} ticks, ${JSON.stringify(this.items.map((i) => [i.topic, i.queueId, i.size]))}, ${this.cfg === null ? 'same' : showConfig(this.cfg)})`;
  }
}

type BadCall = { label: string; argument: string; call: (s: MessageStore) => Promise<unknown> };

const BAD_CALLS: BadCall[] = [
  { label: 'append empty topic', argument: 'topic', call: (s) => s.append('', 0, Buffer.alloc(1)) },
  { label: 'append long topic', argument: 'topic', call: (s) => s.append('x'.repeat(256), 0, Buffer.alloc(1)) },
  { label: 'append long UTF-8 topic', argument: 'topic', call: (s) => s.append('é'.repeat(128), 0, Buffer.alloc(1)) },
  { label: 'append NUL topic', argument: 'topic', call: (s) => s.append('a\0', 0, Buffer.alloc(1)) },
  { label: 'append lone surrogate', argument: 'topic', call: (s) => s.append('a\ud800', 0, Buffer.alloc(1)) },
  { label: 'append non-string topic', argument: 'topic', call: (s) => s.append(7 as unknown as string, 0, Buffer.alloc(1)) },
  { label: 'append negative queue', argument: 'queueId', call: (s) => s.append('a', -1, Buffer.alloc(1)) },
  { label: 'append fractional queue', argument: 'queueId', call: (s) => s.append('a', 1.5, Buffer.alloc(1)) },
  { label: 'append queue 2^32', argument: 'queueId', call: (s) => s.append('a', 2 ** 32, Buffer.alloc(1)) },
  { label: 'append NaN queue', argument: 'queueId', call: (s) => s.append('a', Number.NaN, Buffer.alloc(1)) },
  { label: 'append string data', argument: 'data', call: (s) => s.append('a', 0, 'abc' as unknown as Uint8Array) },
  { label: 'append oversized data', argument: 'data', call: (s) => s.append('a', 0, Buffer.alloc(MAX_MESSAGE + 1)) },
  { label: 'append oversized new topic', argument: 'data', call: (s) => s.append('never', 0, Buffer.alloc(MAX_MESSAGE + 1)) },
  { label: 'getRange negative offset', argument: 'offset', call: (s) => s.getRange('a', 0, -1, 1) },
  { label: 'getRange unsafe offset', argument: 'offset', call: (s) => s.getRange('a', 0, 2 ** 53, 1) },
  { label: 'getRange fractional offset', argument: 'offset', call: (s) => s.getRange('a', 0, 0.5, 1) },
  { label: 'getRange fetchNum 0', argument: 'fetchNum', call: (s) => s.getRange('a', 0, 0, 0) },
  { label: 'getRange fetchNum 101', argument: 'fetchNum', call: (s) => s.getRange('a', 0, 0, 101) },
  { label: 'getRange bad topic', argument: 'topic', call: (s) => s.getRange('', 0, 0, 1) },
  { label: 'getRange bad queue', argument: 'queueId', call: (s) => s.getRange('a', -3, 0, 1) },
  { label: 'endOffset bad queue', argument: 'queueId', call: async (s) => s.endOffset('a', 0.25) },
  { label: 'queues bad topic', argument: 'topic', call: async (s) => s.queues('') },
];

class InvalidCmd implements Cmd {
  constructor(readonly which: number[]) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const before = JSON.stringify(r.store.queues());
    const topicsBefore = r.store.topics();
    for (const i of this.which) {
      const bad = BAD_CALLS[i % BAD_CALLS.length];
      let err: unknown = null;
      try {
        await bad.call(r.store);
      } catch (e) {
        err = e;
      }
      assert.ok(err instanceof StoreInvalidArgumentError && err.code === 'CIRRUS_STORE_INVALID_ARGUMENT', `${bad.label}: ${String(err)}`);
      assert.equal(err.argument, bad.argument, `${bad.label}: argument`);
    }
    assert.equal(JSON.stringify(r.store.queues()), before, 'bad input changed nothing');
    assert.deepEqual(r.store.topics(), topicsBefore);
    assert.equal(r.store.endOffset('never', 0), 0);
    checkListings(m, r);
  }
  toString(): string {
    return `invalid(${this.which.map((i) => BAD_CALLS[i % BAD_CALLS.length].label).join(', ')})`;
  }
}

class LockedCmd implements Cmd {
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    await assert.rejects(MessageStore.open({ dir: r.dir }), (e: unknown) => e instanceof StoreLockedError && e.code === 'CIRRUS_STORE_LOCKED');
    await assert.rejects(
      MessageStore.open({ dir: r.dir, memoryCacheByte: 1 } as unknown as OpenOptions),
      (e: unknown) => e instanceof StoreInvalidArgumentError && e.argument === 'memoryCacheByte',
    );
    checkListings(m, r);
  }
  toString(): string {
    return 'second open (locked, misspelt option)';
  }
}

interface Fault {
  op: FaultOp;
  path: string;
  code: 'ENOSPC' | 'EIO';
  skip: number;
  torn: number;
}
const faultArb: fc.Arbitrary<Fault> = fc.record({
  op: fc.constantFrom<FaultOp>('writev', 'writev', 'datasync', 'open'),
  path: fc.constantFrom('.seg', '.seg', 'topics.dict'),
  code: fc.constantFrom<'ENOSPC' | 'EIO'>('ENOSPC', 'ENOSPC', 'ENOSPC', 'EIO'),
  skip: fc.integer({ min: 0, max: 2 }),
  torn: fc.constantFrom(0, 0, 700, 5000),
});

class FaultCmd implements Cmd {
  constructor(
    readonly fault: Fault,
    readonly items: AppendItem[],
  ) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    const f = this.fault;
    const planned = plan(m, this.items);
    for (const e of planned) noteTopicCall(m, e.item.topic);
    r.io.inject({ op: f.op, code: f.code, pathIncludes: f.path, skip: f.skip, tornBytes: f.op === 'writev' ? f.torn : 0 });
    const results = await Promise.allSettled(planned.map((e) => r.store.append(e.item.topic, e.item.queueId, e.data)));
    r.io.clear();
    const expectedError = f.code === 'ENOSPC' ? StoreNoSpaceError : StoreIoError;
    const firstRejected = results.findIndex((x) => x.status === 'rejected');
    results.forEach((res, i) => {
      if (res.status === 'rejected') {
        assert.ok(res.reason instanceof expectedError, `append ${i}: ${String(res.reason)}`);
      } else {
        assert.equal(res.value, planned[i].offset, `append ${i} offset`);
        // Everything from the failed flush's start on is rolled back: the rejected appends are a suffix.
        assert.ok(firstRejected < 0 || i < firstRejected, `append ${i} acknowledged after rejected append ${firstRejected}`);
      }
    });
    const ok = firstRejected < 0 ? planned : planned.slice(0, firstRejected);
    acknowledge(m, ok);
    if (firstRejected >= 0) assert.ok(r.store.writeError() instanceof expectedError, 'writeError() remembers the failure');
    checkListings(m, r);
    await checkAllRecords(m, r);
    const sticky = firstRejected >= 0 && f.code === 'EIO';
    // Space is back: the next append goes through (after EIO, it rejects until reopen).
    const probe = plan(m, [{ topic: 'a', queueId: 0, size: 10 }]);
    noteTopicCall(m, 'a');
    const res = await Promise.allSettled([r.store.append('a', 0, probe[0].data)]);
    if (sticky) {
      assert.ok(res[0].status === 'rejected' && res[0].reason instanceof StoreIoError, `sticky EIO: ${res[0].status}`);
      checkListings(m, r);
      await checkAllRecords(m, r);
      // Close after a sticky error writes no checkpoint or clean marker: the reopen recovers.
      await r.store.close();
      r.io = new FaultyIo({ durableWrites: m.cfg.durableWrites });
      r.store = await MessageStore.open(openOptions(r, m.cfg));
      afterReopen(m, m.cfg);
      assert.deepEqual(r.store.recovery.damage.filter((d) => d.kind !== 'tail'), []);
    } else {
      assert.equal(res[0].status, 'fulfilled', `append after the fault: ${res[0].status === 'rejected' ? String(res[0].reason) : ''}`);
      if (res[0].status === 'fulfilled') assert.equal(res[0].value, probe[0].offset);
      acknowledge(m, probe);
      assert.equal(r.store.writeError(), null, 'a successful flush clears writeError()');
    }
    checkListings(m, r);
    await checkAllRecords(m, r);
  }
  toString(): string {
    return `fault(${JSON.stringify(this.fault)}, ${JSON.stringify(this.items.map((i) => [i.topic, i.queueId, i.size]))})`;
  }
}

class CheckpointFaultCmd implements Cmd {
  constructor(readonly full: boolean, readonly skip: number) {}
  check(): boolean {
    return true;
  }
  async run(m: Model, r: Real): Promise<void> {
    r.io.inject({ op: 'writev', code: 'ENOSPC', pathIncludes: 'index.', skip: this.skip });
    const res = await Promise.allSettled([r.store.checkpoint({ full: this.full })]);
    r.io.clear();
    if (res[0].status === 'rejected') assert.ok(res[0].reason instanceof StoreNoSpaceError, String(res[0].reason));
    checkListings(m, r);
    await checkAllRecords(m, r);
  }
  toString(): string {
    return `checkpointFault(${this.full ? 'full' : 'delta'}, skip ${this.skip})`;
  }
}

const commands = [
  fc.record({ items: itemsArb(24), probes: fc.array(probeArb, { maxLength: 3 }) }).map(({ items, probes }) => new AppendCmd(items, probes)),
  fc.record({ items: itemsArb(24), probes: fc.array(probeArb, { maxLength: 3 }) }).map(({ items, probes }) => new AppendCmd(items, probes)),
  fc.record({ items: itemsArb(60), probes: fc.array(probeArb, { maxLength: 3 }) }).map(({ items, probes }) => new AppendCmd(items, probes)),
  fc.array(probeArb, { minLength: 1, maxLength: 4 }).map((p) => new ReadCmd(p)),
  fc.constant(new ListCmd()),
  fc.boolean().map((full) => new CheckpointCmd(full)),
  fc.constant(new RetentionCmd()),
  fc.option(configArb, { nil: null }).map((c) => new ReopenCmd(c)),
  fc
    .record({ items: itemsArb(30), ticks: fc.integer({ min: 0, max: 6 }), cfg: fc.option(configArb, { nil: null }) })
    .map(({ items, ticks, cfg }) => new CrashCmd(items, ticks, cfg)),
  fc.array(fc.nat({ max: BAD_CALLS.length - 1 }), { minLength: 1, maxLength: 4 }).map((w) => new InvalidCmd(w)),
  fc.constant(new LockedCmd()),
  fc.record({ fault: faultArb, items: itemsArb(30) }).map(({ fault, items }) => new FaultCmd(fault, items)),
  fc.record({ full: fc.boolean(), skip: fc.integer({ min: 0, max: 1 }) }).map(({ full, skip }) => new CheckpointFaultCmd(full, skip)),
];

test('model: MessageStore against a model of acknowledged records, over appends, reads, retention, reopens, crashes, bad input and write faults', { timeout: 600_000 }, async () => {
  let runs = 0;
  let executed = 0;
  await fc.assert(
    fc.asyncProperty(configArb, fc.commands(commands, { maxCommands: MAX_COMMANDS }), async (cfg, cmds) => {
      runs++;
      const root = tempDir('cirrus-model-');
      const io = new FaultyIo({ durableWrites: cfg.durableWrites });
      const dir = join(root, 'store');
      const real: Real = { store: await MessageStore.open(openOptions({ dir, root, io }, cfg)), dir, root, io, scratch: [] };
      const model: Model = {
        queues: new Map(),
        seq: 0,
        topicRank: new Map(),
        uncertain: new Set(),
        nextRank: 0,
        cfg,
        ackedSinceOpen: 0,
        maxSegmentBytes: cfg.segmentBytes,
        retentionPossible: cfg.retentionBytes !== null,
      };
      log(`run ${runs}: ${showConfig(cfg)}`);
      try {
        const wrapped = [...cmds].map((c) => ({
          check: (m: Model) => c.check(m),
          run: async (m: Model, rl: Real) => {
            log(`  ${c.toString()}`);
            executed++;
            try {
              await c.run(m, rl);
            } catch (err) {
              // fast-check reports the failing sequence; node:test does not print the cause.
              process.stderr.write(`model: ${c.toString().slice(0, 300)} failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
              throw err;
            }
          },
          toString: () => c.toString(),
        }));
        await fc.asyncModelRun(() => ({ model, real }), wrapped);
        // The end: everything reads back, and once more after a clean reopen.
        checkListings(model, real);
        await checkAllRecords(model, real);
        await reopen(model, real, model.cfg, true);
        checkListings(model, real);
        await checkAllRecords(model, real);
      } finally {
        await real.store.close().catch(() => undefined);
        removeDir(root);
        removeDir(real.dir);
        for (const d of real.scratch) removeDir(d);
      }
    }),
    { numRuns: RUNS, ...(SEED === undefined ? {} : { seed: SEED }), ...(PATH === undefined ? {} : { path: PATH }), endOnFailure: process.env.CIRRUS_MODEL_SHRINK !== '1', interruptAfterTimeLimit: 180_000, markInterruptAsFailure: true },
  );
  log(`runs ${runs}, commands ${executed}`);
});
