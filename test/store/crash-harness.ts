/**
 * kill -9 durability harness of the store (issue 2). Each iteration starts crash-child.js on one
 * store directory, lets it append from many producers with `sync: always` (or, with
 * --sync-interval-ms, `interval`: acknowledged once written to the OS, which a process crash must
 * not lose either), SIGKILLs it at a
 * seeded random moment (sometimes while it is still opening/recovering), reopens the directory
 * here and checks:
 *   - every acknowledged record is present and byte-identical (else: lost / corrupt),
 *   - every queue's offsets 0..end-1 are all readable (contiguous),
 *   - every record found, acknowledged or not, is whole (its own size and checksum hold).
 * The next iteration appends to the same directory, so recovering a recovered store is exercised.
 *
 *   node dist/test/store/crash-harness.js --iterations 20 --json
 *
 * prints {"iterations":N,"acknowledged":A,"lost":L,"corrupt":C} as its last line and exits
 * non-zero when L or C is not 0 or a child died on its own.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { crc32c } from '@node-rs/crc32';
import { Prng } from '../../bench/store/prng.js';
import { MessageStore, type StoreOptions, type SyncPolicy } from '../../src/store/index.js';

/** Topic names of the harness; one is not ASCII so byte and character lengths differ. */
export const CRASH_TOPICS = ['orders', 'payments', 'audit-log', 'clicks', 'тема-события'] as const;
/** Queues per topic: enough that producers rarely meet on one queue, few enough that some do. */
export const CRASH_QUEUES_PER_TOPIC = 24;
/** First bytes of every harness record ("CRSH"), so a stray block is not taken for a record. */
export const CRASH_MAGIC = 0x48535243;
/**
 * magic u32, size u32, crc32c of bytes 12.. u32, iteration u32, producer u32, seq u32, topic
 * index u32, queue id u32: a record says where it was written, so one found in another queue (or
 * twice, or from an iteration that has not run) is caught, acknowledged or not.
 */
export const CRASH_HEADER_BYTES = 32;
/** The challenge's message sizes. */
export const CRASH_MIN_BYTES = 100;
export const CRASH_MAX_BYTES = 17 * 1024;
/**
 * With --large-percent: that share of records is drawn from this range instead, past the write
 * chunk and the flush cap (1 MiB each) and the native writer's kept staging buffer (2 MiB), so
 * kills land inside flushes that take a chunk of their own and span several device writes.
 */
export const CRASH_LARGE_MIN_BYTES = 512 * 1024;
export const CRASH_LARGE_MAX_BYTES = 2560 * 1024;
/**
 * Small segments so that a few iterations cross segment boundaries and kills land during
 * segment roll-over too, not only inside one file.
 */
export const CRASH_SEGMENT_BYTES = 4 * 1024 * 1024;
/**
 * With --retain-mib: segments larger than the unflushed window (4 MiB here), so that a recycled
 * active segment's previous life lies outside the window its file's size would give
 * (recovery.ts, LastSegmentRule), and kills land while retention renames files into and out of
 * the spare.
 */
export const CRASH_RETENTION_SEGMENT_BYTES = 16 * 1024 * 1024;
/**
 * The child also takes an index checkpoint this often (every CRASH_FULL_CHECKPOINT_EVERY-th a
 * full one), so kills land while checkpoint files are written and reopens load a checkpoint
 * and its delta chain, not only scan the log (the store's own interval is 256 MiB of log, more
 * than an iteration writes).
 */
export const CRASH_CHECKPOINT_INTERVAL_MS = 30;
export const CRASH_FULL_CHECKPOINT_EVERY = 3;
/** Concurrent producers in the child: many appends in flight, so kills hit a full group commit. */
export const CRASH_PRODUCERS = 24;
/** A child that is not ready (opened) by then is reported as hung, not waited on forever. */
const CHILD_READY_TIMEOUT_MS = 60_000;
/** Running time before the kill, drawn uniformly from this range (ms after the store opened). */
const KILL_AFTER_MIN_MS = 10;
const KILL_AFTER_MAX_MS = 400;
/** Share of iterations killed at a random moment after spawn, ready or not (maybe mid-recovery). */
const EARLY_KILL_SHARE = 0.2;
/** Early kills land this long after spawn: node start-up plus the store's open. */
const EARLY_KILL_MAX_MS = 600;

/** Where a record was read: its header must name the same queue and an iteration that has run. */
export interface CrashRecordPlace {
  topic: number;
  queueId: number;
  /** The latest iteration run so far. */
  iteration: number;
}

/** Whether a record, acknowledged or not, is whole and in its place: null when fine, else what is wrong. */
export function crashRecordProblem(data: Uint8Array, place?: CrashRecordPlace): string | null {
  if (data.length < CRASH_HEADER_BYTES) return `only ${data.length} bytes`;
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.readUInt32LE(0) !== CRASH_MAGIC) return 'bad magic';
  if (buf.readUInt32LE(4) !== buf.length) return `size field ${buf.readUInt32LE(4)} but ${buf.length} bytes`;
  if (buf.readUInt32LE(8) !== crc32c(buf.subarray(12))) return 'body checksum mismatch';
  if (place !== undefined) {
    const [topic, queueId, iteration] = [buf.readUInt32LE(24), buf.readUInt32LE(28), buf.readUInt32LE(12)];
    if (topic !== place.topic || queueId !== place.queueId) return `written to ${topic}/${queueId}, found in ${place.topic}/${place.queueId}`;
    if (iteration > place.iteration) return `from iteration ${iteration}, which has not run`;
  }
  return null;
}

/** Iteration, producer and sequence number of a whole record: each record was written once. */
function crashRecordIdentity(data: Buffer): string {
  return `${data.readUInt32LE(12)}/${data.readUInt32LE(16)}/${data.readUInt32LE(20)}`;
}

/** 128 bits of SHA-256: byte identity with a negligible chance of a false match. */
export function crashRecordHash(data: Uint8Array): string {
  return createHash('sha256').update(data).digest('hex').slice(0, 32);
}

export interface CrashHarnessOptions {
  iterations: number;
  seed: number;
  /** Store directory; a fresh temp dir when null (deleted afterwards unless keep). */
  dir: string | null;
  keep: boolean;
  producers: number;
  /**
   * Retention's maxTotalBytes in MiB (segments of CRASH_RETENTION_SEGMENT_BYTES, recycled), or
   * null for none. Acknowledged records below a queue's first retained offset then count as
   * deleted, not lost.
   */
  retainMib: number | null;
  /**
   * Run the store with sync 'interval' and this period (acknowledged once written, so through the
   * page cache), or null for 'always'. A kill -9 is a process crash: nothing acknowledged may be lost.
   */
  syncIntervalMs: number | null;
  /** Percent (0-100) of records drawn from CRASH_LARGE_MIN_BYTES..CRASH_LARGE_MAX_BYTES. */
  largePercent: number;
  /**
   * Each iteration draws its own shape (crashShape): retention on or off, direct writes or the
   * page cache, sync 'always' or 'interval', over segments of one size, so that a store is
   * reopened with other options than it was written with (as users change their configuration).
   */
  vary: boolean;
  /** Progress lines (one per iteration). */
  log: (line: string) => void;
}

export interface CrashSummary {
  iterations: number;
  acknowledged: number;
  lost: number;
  corrupt: number;
}

export interface CrashReport extends CrashSummary {
  /** Records found beyond what the parent saw acknowledged (complete writes cut off by the kill). */
  unacknowledgedWhole: number;
  /** Children that exited on their own instead of being killed, and other harness failures. */
  failures: string[];
  problems: string[];
}

/** Acknowledged hashes: key "topicIndex/queueId" -> offset -> hash. */
type AckMap = Map<string, Map<number, string>>;

interface ChildOutcome {
  acks: number;
  duplicateAcks: string[];
  failure: string | null;
  killedAfterMs: number;
  early: boolean;
}

/** What one iteration's child and the checking reopen run with. */
export interface CrashShape {
  retainMib: number | null;
  syncIntervalMs: number | null;
  largePercent: number;
  directWrites: boolean;
  /** Segments of CRASH_RETENTION_SEGMENT_BYTES with or without retention (--vary keeps one size). */
  largeSegments: boolean;
  /** The child's own checkpoints (every CRASH_CHECKPOINT_INTERVAL_MS); without, only the store's. */
  checkpoints: boolean;
}

/** With --vary: the share of iterations with retention, with direct writes, and with sync 'interval'. */
const VARY_RETENTION_SHARE = 0.5;
const VARY_DIRECT_SHARE = 0.5;
const VARY_INTERVAL_SHARE = 0.25;
/** With --vary, the share of iterations whose child takes checkpoints of its own. */
const VARY_CHECKPOINTS_SHARE = 0.5;
/** With --vary, what retention keeps and how often sync 'interval' syncs, unless given. */
const VARY_RETAIN_MIB = 16;
const VARY_SYNC_INTERVAL_MS = 20;

/** Iteration `i`'s shape: the options as given, or with --vary drawn from their own seeded sequence. */
export function crashShape(o: CrashHarnessOptions, varyRng: Prng): CrashShape {
  if (!o.vary) return { retainMib: o.retainMib, syncIntervalMs: o.syncIntervalMs, largePercent: o.largePercent, directWrites: true, largeSegments: false, checkpoints: true };
  return {
    retainMib: varyRng.next() < VARY_RETENTION_SHARE ? (o.retainMib ?? VARY_RETAIN_MIB) : null,
    syncIntervalMs: varyRng.next() < VARY_INTERVAL_SHARE ? (o.syncIntervalMs ?? VARY_SYNC_INTERVAL_MS) : null,
    largePercent: o.largePercent,
    directWrites: varyRng.next() < VARY_DIRECT_SHARE,
    largeSegments: true,
    checkpoints: varyRng.next() < VARY_CHECKPOINTS_SHARE,
  };
}

function describeShape(shape: CrashShape): string {
  return [
    shape.retainMib === null ? 'no retention' : `retention ${shape.retainMib} MiB`,
    shape.syncIntervalMs === null ? 'sync always' : `sync interval ${shape.syncIntervalMs} ms`,
    shape.directWrites ? 'direct writes' : 'page cache',
    shape.checkpoints ? 'checkpoints' : 'no extra checkpoints',
  ].join(', ');
}

/** The store options the child and the checking reopen share. */
export function crashStoreOptions(shape: CrashShape): Pick<StoreOptions, 'segmentBytes' | 'retention' | 'sync' | 'maxMessageBytes' | 'directWrites'> {
  const sync: SyncPolicy = shape.syncIntervalMs === null ? { mode: 'always' } : { mode: 'interval', intervalMs: shape.syncIntervalMs };
  const maxMessageBytes = shape.largePercent > 0 ? CRASH_LARGE_MAX_BYTES : CRASH_MAX_BYTES;
  const segmentBytes = shape.retainMib !== null || shape.largeSegments ? CRASH_RETENTION_SEGMENT_BYTES : CRASH_SEGMENT_BYTES;
  const base = { segmentBytes, sync, maxMessageBytes, directWrites: shape.directWrites };
  return shape.retainMib === null ? base : { ...base, retention: { maxTotalBytes: shape.retainMib * 1024 * 1024 } };
}

function childPath(): string {
  return fileURLToPath(new URL('./crash-child.js', import.meta.url));
}

async function runChild(dir: string, o: CrashHarnessOptions, shape: CrashShape, iteration: number, rng: Prng, acked: AckMap): Promise<ChildOutcome> {
  const early = rng.next() < EARLY_KILL_SHARE;
  const delay = early ? rng.int(0, EARLY_KILL_MAX_MS) : rng.int(KILL_AFTER_MIN_MS, KILL_AFTER_MAX_MS);
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const store = crashStoreOptions(shape);
  const child = spawn(
    process.execPath,
    [childPath(), '--dir', dir, '--seed', String(o.seed), '--iteration', String(iteration),
      '--producers', String(o.producers), '--segment-bytes', String(store.segmentBytes),
      '--retain-bytes', String(store.retention?.maxTotalBytes ?? 0), '--sync-interval-ms', String(shape.syncIntervalMs ?? 0),
      '--large-percent', String(shape.largePercent), '--direct-writes', shape.directWrites ? 'on' : 'off',
      '--checkpoint-ms', String(shape.checkpoints ? CRASH_CHECKPOINT_INTERVAL_MS : 0)],
    { stdio: ['ignore', 'pipe', 'pipe'], env },
  );
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    if (stderr.length < 8192) stderr += chunk;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  let acks = 0;
  const duplicateAcks: string[] = [];
  let onReady: () => void = () => {};
  const ready = new Promise<void>((resolve) => (onReady = resolve));
  const lines = createInterface({ input: child.stdout });
  lines.on('line', (line) => {
    if (line === 'R') return onReady();
    const parts = line.split(' ');
    // A line cut by the kill is not an acknowledgement we can check: skip it.
    if (parts.length !== 5 || parts[0] !== 'A' || parts[4].length !== 32) return;
    const key = `${parts[1]}/${parts[2]}`;
    const offset = Number(parts[3]);
    let queue = acked.get(key);
    if (!queue) acked.set(key, (queue = new Map()));
    const previous = queue.get(offset);
    if (previous !== undefined) duplicateAcks.push(`offset ${offset} of ${key} acknowledged twice`);
    else queue.set(offset, parts[4]);
    acks++;
  });
  const linesDone = new Promise<void>((resolve) => lines.on('close', resolve));

  const started = Date.now();
  let failure: string | null = null;
  const timeout = (ms: number) => new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ms).unref());
  if (early) {
    const r = await Promise.race([timeout(delay), exited.then(() => 'exited' as const)]);
    if (r === 'exited') failure = `iteration ${iteration}: child exited before the kill: ${stderr.trim()}`;
  } else {
    const r = await Promise.race([ready.then(() => 'ready' as const), exited.then(() => 'exited' as const), timeout(CHILD_READY_TIMEOUT_MS)]);
    if (r === 'ready') {
      const r2 = await Promise.race([timeout(delay), exited.then(() => 'exited' as const)]);
      if (r2 === 'exited') failure = `iteration ${iteration}: child exited while appending: ${stderr.trim()}`;
    } else if (r === 'exited') {
      failure = `iteration ${iteration}: child exited while opening the store: ${stderr.trim()}`;
    } else {
      failure = `iteration ${iteration}: child not ready after ${CHILD_READY_TIMEOUT_MS} ms`;
    }
  }
  const killedAfterMs = Date.now() - started;
  child.kill('SIGKILL');
  await exited;
  await linesDone;
  return { acks, duplicateAcks, failure, killedAfterMs, early };
}

interface VerifyOutcome {
  lost: number;
  corrupt: number;
  unacknowledgedWhole: number;
  /** Acknowledged records below their queue's first retained offset (retention deleted them). */
  deleted: number;
  /** Whether retention left a spare segment file (recycling at work). */
  spare: boolean;
  records: number;
  /** How the reopen rebuilt its index: from a checkpoint (and how many deltas), or why not. */
  reopenedFrom: string;
  problems: string[];
}

/** Reopens the directory in this process and checks every queue against what was acknowledged. */
/**
 * `retained`: whether any run so far had retention (queues may then start past 0). `seen`: hashes
 * of the whole unacknowledged records earlier reopens served, per queue; a reopen served them to
 * readers, so they must stay as they were (no end offset goes back over them) like acknowledged ones.
 */
async function verifyStore(dir: string, acked: AckMap, shape: CrashShape, retained: boolean, iteration: number, seen: AckMap): Promise<VerifyOutcome> {
  const out: VerifyOutcome = { lost: 0, corrupt: 0, unacknowledgedWhole: 0, deleted: 0, spare: false, records: 0, reopenedFrom: 'reopen failed', problems: [] };
  const note = (p: string) => {
    if (out.problems.length < 50) out.problems.push(p);
  };
  let store: MessageStore;
  try {
    store = await MessageStore.open({ dir, ...crashStoreOptions(shape) });
  } catch (err) {
    // Nothing acknowledged can be read back: all of it is lost, and the store is damaged.
    for (const q of acked.values()) out.lost += q.size;
    out.corrupt++;
    note(`reopen failed: ${err instanceof Error ? err.message : String(err)}`);
    return out;
  }
  out.spare = store.stats().spareSegment;
  const ckpt = store.recovery.checkpoint;
  out.reopenedFrom = ckpt.used ? `checkpoint + ${ckpt.deltas} delta${ckpt.deltas === 1 ? '' : 's'}` : ckpt.reason;
  const identities = new Set<string>();
  try {
    for (let t = 0; t < CRASH_TOPICS.length; t++) {
      for (let q = 0; q < CRASH_QUEUES_PER_TOPIC; q++) {
        const name = CRASH_TOPICS[t];
        const expected = acked.get(`${t}/${q}`) ?? new Map<number, string>();
        let served = seen.get(`${t}/${q}`);
        if (!served) seen.set(`${t}/${q}`, (served = new Map()));
        const end = store.endOffset(name, q);
        const start = store.queues(name).find((info) => info.queueId === q)?.startOffset ?? 0;
        for (let offset = start; offset < end; ) {
          const want = Math.min(100, end - offset);
          let records: Buffer[];
          try {
            records = await store.getRange(name, q, offset, want);
          } catch (err) {
            out.corrupt += want;
            note(`${name}/${q}@${offset}: getRange failed: ${err instanceof Error ? err.message : String(err)}`);
            offset += want;
            continue;
          }
          if (records.length !== want) {
            out.corrupt++;
            note(`${name}/${q}@${offset}: ${records.length} records below end ${end}, expected ${want} (gap)`);
          }
          records.forEach((rec, i) => {
            const at = offset + i;
            out.records++;
            const problem = crashRecordProblem(rec, { topic: t, queueId: q, iteration });
            const hash = expected.get(at);
            if (problem) {
              out.corrupt++;
              note(`${name}/${q}@${at}: ${problem}${hash ? ' (acknowledged)' : ''}`);
              return;
            }
            const identity = crashRecordIdentity(rec);
            if (identities.has(identity)) {
              out.corrupt++;
              note(`${name}/${q}@${at}: record ${identity} (iteration/producer/seq) found a second time`);
              return;
            }
            identities.add(identity);
            const now = crashRecordHash(rec);
            if (hash !== undefined) {
              if (now !== hash) {
                out.corrupt++;
                note(`${name}/${q}@${at}: acknowledged record differs from what was written`);
              }
              return;
            }
            out.unacknowledgedWhole++;
            const before = served.get(at);
            if (before !== undefined && before !== now) {
              out.corrupt++;
              note(`${name}/${q}@${at}: an earlier reopen served another record here`);
            }
            served.set(at, now);
          });
          if (records.length === 0) break;
          offset += records.length;
        }
        for (const offset of expected.keys()) {
          if (offset < start) {
            out.deleted++;
          } else if (offset >= end) {
            out.lost++;
            note(`${name}/${q}@${offset}: acknowledged but missing (end offset ${end})`);
          }
        }
        for (const offset of served.keys()) {
          if (offset >= start && offset >= end) {
            out.corrupt++;
            note(`${name}/${q}@${offset}: an earlier reopen served a record here; the end offset went back to ${end}`);
          }
        }
      }
    }
    const known = new Set<string>(CRASH_TOPICS);
    for (const info of store.queues()) {
      if (!known.has(info.topic) || info.queueId >= CRASH_QUEUES_PER_TOPIC || (!retained && info.startOffset !== 0)) {
        out.corrupt++;
        note(`unexpected queue ${info.topic}/${info.queueId} start ${info.startOffset} end ${info.endOffset}`);
      }
    }
  } finally {
    await store.close();
  }
  return out;
}

export async function runCrashHarness(o: CrashHarnessOptions): Promise<CrashReport> {
  const dir = o.dir ?? mkdtempSync(join(tmpdir(), 'cirrus-crash-'));
  const rng = new Prng(o.seed);
  // Its own sequence, so --vary leaves the kill moments of a seed as they were.
  const varyRng = new Prng(o.seed ^ 0x5ea50ed);
  let retained = false;
  const acked: AckMap = new Map();
  const seen: AckMap = new Map();
  const report: CrashReport = { iterations: 0, acknowledged: 0, lost: 0, corrupt: 0, unacknowledgedWhole: 0, failures: [], problems: [] };
  try {
    for (let i = 0; i < o.iterations; i++) {
      const shape = crashShape(o, varyRng);
      retained ||= shape.retainMib !== null;
      const child = await runChild(dir, o, shape, i, rng, acked);
      report.iterations++;
      report.acknowledged += child.acks;
      report.corrupt += child.duplicateAcks.length;
      report.problems.push(...child.duplicateAcks);
      if (child.failure) report.failures.push(child.failure);
      const verifyStarted = Date.now();
      const v = await verifyStore(dir, acked, shape, retained, i, seen);
      const verifyMs = Date.now() - verifyStarted;
      // Each iteration re-checks everything acknowledged so far; count each loss once, at its last check.
      report.lost = v.lost;
      report.corrupt += v.corrupt;
      report.unacknowledgedWhole = v.unacknowledgedWhole;
      report.problems.push(...v.problems.map((p) => `iteration ${i}: ${p}`));
      o.log(
        `iteration ${i + 1}/${o.iterations}${o.vary ? ` (${describeShape(shape)})` : ''}: ${child.early ? 'early ' : ''}kill after ${child.killedAfterMs} ms, ` +
          `${child.acks} acknowledged (total ${report.acknowledged}), reopened from ${v.reopenedFrom}, ${v.records} records checked in ${verifyMs} ms, ` +
          `lost ${v.lost}, corrupt ${v.corrupt}, whole unacknowledged ${v.unacknowledgedWhole}` +
          (!retained ? '' : `, deleted by retention ${v.deleted}${v.spare ? ', spare segment file waiting' : ''}`) +
          (child.failure ? `, FAILURE: ${child.failure}` : ''),
      );
      if (v.corrupt > 0 || v.lost > 0 || child.failure) break;
    }
  } finally {
    if (!o.keep && o.dir === null) rmSync(dir, { recursive: true, force: true });
    else o.log(`store directory kept: ${dir}`);
  }
  return report;
}

function usage(): string {
  return [
    'usage: node dist/test/store/crash-harness.js [--iterations N] [--seed N] [--producers N] [--retain-mib N] [--sync-interval-ms N] [--large-percent N] [--vary] [--dir PATH] [--keep] [--json]',
    '  --iterations N  kill points (default 20)',
    '  --seed N        seed of kill moments and record contents (default: time-based, printed)',
    `  --producers N   concurrent producers in the child (default ${CRASH_PRODUCERS})`,
    `  --retain-mib N  run the store with retention (maxTotalBytes N MiB, ${CRASH_RETENTION_SEGMENT_BYTES / 1024 / 1024} MiB segments, recycled);`,
    '                  acknowledged records retention deleted are counted apart, not as lost',
    '  --sync-interval-ms N  run the store with sync \'interval\' (N ms) instead of \'always\'; a kill -9',
    '                  still may lose nothing acknowledged (the writes reached the OS)',
    `  --large-percent N  that percent of records ${CRASH_LARGE_MIN_BYTES / 1024}-${CRASH_LARGE_MAX_BYTES / 1024} KiB (past the write chunk and flush cap)`,
    '  --vary          each iteration draws retention on/off, direct writes or the page cache, sync',
    '                  always or interval (16 MiB segments throughout): reopens with other options',
    '  --dir PATH      store directory to use (default: a new temp dir, deleted afterwards)',
    '  --keep          keep the temp store directory (to inspect a failure)',
    '  --json          progress on stderr; last stdout line {"iterations","acknowledged","lost","corrupt"}',
    'exit status: 0 when nothing was lost or corrupt, 1 when something was, 2 on a harness failure',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  // The last occurrence wins, so `npm run test:crash -- --iterations 60` overrides the script's default.
  const value = (name: string): string | undefined => {
    const i = argv.lastIndexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (argv.includes('--help') || argv.includes('-h')) {
    process.stdout.write(usage() + '\n');
    return 0;
  }
  const int = (name: string, fallback: number): number => {
    const raw = value(name);
    if (raw === undefined) return fallback;
    const n = Number(raw);
    if (!Number.isInteger(n) || n < 1) throw new RangeError(`--${name} must be a positive integer, got ${raw}`);
    return n;
  };
  const json = argv.includes('--json');
  const seed = int('seed', Date.now() % 1_000_000_000);
  const out = json ? process.stderr : process.stdout;
  const options: CrashHarnessOptions = {
    iterations: int('iterations', 20),
    seed,
    dir: value('dir') ?? null,
    keep: argv.includes('--keep'),
    producers: int('producers', CRASH_PRODUCERS),
    retainMib: value('retain-mib') === undefined ? null : int('retain-mib', 1),
    syncIntervalMs: value('sync-interval-ms') === undefined ? null : int('sync-interval-ms', 1),
    largePercent: value('large-percent') === undefined ? 0 : int('large-percent', 1),
    vary: argv.includes('--vary'),
    log: (line) => out.write(`[crash] ${line}\n`),
  };
  options.log(
    `seed ${seed} (rerun with --seed ${seed}), ${options.iterations} iterations, ${options.producers} producers` +
      (options.retainMib === null ? '' : `, retention ${options.retainMib} MiB`) +
      (options.syncIntervalMs === null ? '' : `, sync 'interval' every ${options.syncIntervalMs} ms`) +
      (options.largePercent === 0 ? '' : `, ${options.largePercent} % large records`) +
      (options.vary ? ', options varied per iteration' : ''),
  );
  const r = await runCrashHarness(options);
  for (const p of r.problems.slice(0, 50)) options.log(`problem: ${p}`);
  for (const f of r.failures) options.log(`failure: ${f}`);
  const summary: CrashSummary = { iterations: r.iterations, acknowledged: r.acknowledged, lost: r.lost, corrupt: r.corrupt };
  if (json) process.stdout.write(JSON.stringify(summary) + '\n');
  else options.log(`done: ${JSON.stringify(summary)}, whole unacknowledged records ${r.unacknowledgedWhole}`);
  if (r.lost > 0 || r.corrupt > 0) return 1;
  if (r.failures.length > 0) return 2;
  return 0;
}

const isEntry = process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href;
// `node --test dist/test/` (Node 20) also runs this file, bare; crash.test.ts runs it for real.
const loadedByTestRunner = process.env.NODE_TEST_CONTEXT !== undefined && process.argv.length <= 2;
if (isEntry && !loadedByTestRunner) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`[crash] harness error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      process.exit(2);
    },
  );
}
