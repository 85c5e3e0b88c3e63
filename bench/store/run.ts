/**
 * `npm run bench:store`: the storage challenge workload against the Cirrus store, measured against
 * the disk's own durable-write ceiling and against peers. See bench/store/README.md.
 */
import type { Histogram } from 'hdr-histogram-js';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { constants as osConstants, tmpdir, totalmem, cpus } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getHeapSpaceStatistics } from 'node:v8';
import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks';
import { DEFAULT_MEMORY_CACHE_BYTES, MessageStore, mappedBufferBytes } from '../../src/store/index.js';
import type { MessageStoreApi, StoreOptions, StoreStats } from '../../src/store/types.js';
import { probeCeiling, probeRounds, type CeilingResult } from './ceiling.js';
import { measureKillReopen, type KillReopen } from './kill-reopen.js';
import { CEILING_BLOCK_BYTES, CEILING_FILE_COUNTS, LOOP_DELAY_RESOLUTION_MS, MEAN_RECORD_BYTES, PROGRESS_INTERVAL_MS, SAMPLE_INTERVAL_MS } from './constants.js';
import { makeLayout } from './layout.js';
import { checkTargets } from './targets.js';
import { parseBenchOptions, type BenchOptions } from './options.js';
import { PayloadFactory, randomPool } from './payload.js';
import { runPeer, type PeerResult } from './peers/run-peer.js';
import { throughputSvg, type Sample } from './plot.js';
import { deviceReadBytes, dropPageCache } from './system.js';
import { AckFeed, Counters, newLatencyHistogram, runProducers, runReaders } from './workload.js';

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

function log(line: string): void {
  process.stderr.write(`[bench:store] ${line}\n`);
}

function seconds(since: bigint): number {
  return Number(process.hrtime.bigint() - since) / 1e9;
}

function round(n: number, digits = 2): number {
  const f = 10 ** digits;
  return Math.round(n * f) / f;
}

/** Samples throughput for the plot and prints a progress line now and then. */
class Sampler {
  readonly samples: Sample[] = [];
  phase = 'phase 1';
  private readonly started = process.hrtime.bigint();
  private lastWritten = 0;
  private lastRead = 0;
  private lastT = 0;
  private lastProgress = 0;
  private timer: NodeJS.Timeout | null = null;

  /** Memory at the sample with the highest RSS: what the peak was made of. */
  peakMemory: PeakMemory | null = null;
  /** The store's cache bytes (memory tier + read-ahead), when a store is open. */
  cacheBytes: () => number = () => 0;

  constructor(private readonly counters: () => Counters) {}

  start(): void {
    this.timer = setInterval(() => this.sample(), SAMPLE_INTERVAL_MS);
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    this.sample();
  }

  private sample(): void {
    const c = this.counters();
    const t = seconds(this.started);
    const dt = t - this.lastT;
    if (dt <= 0) return;
    const s: Sample = {
      t: round(t, 3),
      phase: this.phase,
      writeMiBps: round((c.bytesWritten - this.lastWritten) / MiB / dt),
      readMiBps: round((c.bytesRead - this.lastRead) / MiB / dt),
    };
    this.samples.push(s);
    this.lastWritten = c.bytesWritten;
    this.lastRead = c.bytesRead;
    this.lastT = t;
    const mem = process.memoryUsage();
    if (this.peakMemory === null || mem.rss / MiB > this.peakMemory.rssMiB) {
      this.peakMemory = {
        phase: this.phase,
        rssMiB: round(mem.rss / MiB, 1),
        heapUsedMiB: round(mem.heapUsed / MiB, 1),
        heapTotalMiB: round(mem.heapTotal / MiB, 1),
        newSpaceMiB: round(newSpaceBytes() / MiB, 1),
        arrayBuffersMiB: round(mem.arrayBuffers / MiB, 1),
        mappedMiB: round(mappedBufferBytes() / MiB, 1),
        storeCacheMiB: round(this.cacheBytes() / MiB, 1),
      };
    }
    if (t - this.lastProgress >= PROGRESS_INTERVAL_MS / 1000) {
      this.lastProgress = t;
      const rss = mem.rss / MiB;
      log(
        `${s.phase.padEnd(8)} t=${t.toFixed(0)}s written ${(c.bytesWritten / GiB).toFixed(2)} GiB ` +
          `(${s.writeMiBps.toFixed(0)} MiB/s) read ${(c.bytesRead / GiB).toFixed(2)} GiB ` +
          `(${s.readMiBps.toFixed(0)} MiB/s) errors ${c.errors} rss ${rss.toFixed(0)} MiB`,
      );
    }
  }
}

function newSpaceBytes(): number {
  const space = getHeapSpaceStatistics().find((s) => s.space_name === 'new_space');
  return space === undefined ? 0 : space.space_size;
}

/**
 * process.memoryUsage() at the highest-RSS sample. arrayBuffers counts every Buffer's bytes: the
 * store's cache, records handed to readers and not yet collected, and the benchmark's own
 * payload pool (PAYLOAD_POOL_BYTES), except the store's large buffers, which it maps itself
 * (mappedMiB: the cache's chunks, read slabs, history spans; src/store/large-buffer.ts). RSS
 * beyond heap + arrayBuffers + mapped is code, stacks and allocator slack.
 */
interface PeakMemory {
  phase: string;
  rssMiB: number;
  heapUsedMiB: number;
  heapTotalMiB: number;
  /** Of heapTotal, V8's young generation (its semi-spaces), which V8 grows while many objects survive a scavenge. */
  newSpaceMiB: number;
  arrayBuffersMiB: number;
  mappedMiB: number;
  storeCacheMiB: number;
}

interface StoreRun {
  appendMiBps: number;
  phase1Seconds: number;
  phase2Seconds: number;
  phase3Seconds: number;
  totalSeconds: number;
  idealSeconds: number;
  p50AppendMs: number;
  p99AppendMs: number;
  p999AppendMs: number;
  maxAppendMs: number;
  hotHitRatio: number;
  hotProbes: number;
  hotLagP50Ms: number;
  hotLagP99Ms: number;
  hotQueues: number;
  coldQueues: number;
  messagesWritten: number;
  bytesWritten: number;
  messagesRead: number;
  verifiedBytes: number;
  errors: number;
  errorSamples: string[];
  deviceReadBytes: number | null;
  cacheDrop: string;
  peakRssMiB: number;
  peakMemory: PeakMemory | null;
  reopenSeconds: number;
  killReopen: KillReopen;
  stats: StoreStats;
  phaseProfiles: PhaseProfile[];
  samples: Sample[];
}

/** Where a phase's time went: device syncs and the event loop, from counters taken at its ends. */
interface PhaseMark {
  syncs: number;
  syncMsSum: number;
  messages: number;
  elu: EventLoopUtilization;
  cpu: NodeJS.CpuUsage;
  at: bigint;
  /** At a phase's start: how late a 1 ms timer fires, sampled until the phase ends. */
  loopDelay: IntervalHistogram | null;
}

export interface PhaseProfile {
  syncs: number;
  syncMeanMs: number;
  meanBatchMessages: number;
  /** Share of wall time the main thread ran JavaScript or native calls (not waiting). */
  eventLoopUtilization: number;
  /** Process CPU (all threads, user + system) over wall time; 1.0 = one core. */
  cpuCores: number;
  p50AppendMs: number;
  p99AppendMs: number;
  /**
   * p99 of how late the event loop ran a 1 ms timer, ms: how long a ready callback (a sync's
   * completion, say) may wait for the main thread, the part of append latency that is not the device.
   */
  loopDelayP99Ms: number;
}

/** `start`: the mark opens a phase (and samples the event loop's delay until phaseBetween). */
function markPhase(store: MessageStoreApi, start: boolean): PhaseMark {
  const s = store.stats();
  let loopDelay: IntervalHistogram | null = null;
  if (start) {
    loopDelay = monitorEventLoopDelay({ resolution: LOOP_DELAY_RESOLUTION_MS });
    loopDelay.enable();
  }
  return {
    syncs: s.syncs,
    syncMsSum: s.syncLatencyMeanMs * s.syncs,
    messages: s.messagesWritten,
    elu: performance.eventLoopUtilization(),
    cpu: process.cpuUsage(),
    at: process.hrtime.bigint(),
    loopDelay,
  };
}

function phaseBetween(a: PhaseMark, b: PhaseMark, latency: Histogram): PhaseProfile {
  a.loopDelay?.disable();
  const syncs = b.syncs - a.syncs;
  const wallUs = Number(b.at - a.at) / 1000;
  const cpu = b.cpu.user + b.cpu.system - a.cpu.user - a.cpu.system;
  return {
    syncs,
    syncMeanMs: syncs > 0 ? round((b.syncMsSum - a.syncMsSum) / syncs, 3) : 0,
    meanBatchMessages: syncs > 0 ? round((b.messages - a.messages) / syncs, 1) : 0,
    eventLoopUtilization: round(performance.eventLoopUtilization(b.elu, a.elu).utilization, 3),
    cpuCores: wallUs > 0 ? round(cpu / wallUs, 2) : 0,
    p50AppendMs: round(latency.getValueAtPercentile(50) / 1000, 3),
    p99AppendMs: round(latency.getValueAtPercentile(99) / 1000, 3),
    // The histogram counts the timer's whole interval; its lateness is what exceeds the resolution.
    loopDelayP99Ms: a.loopDelay ? round(Math.max(0, a.loopDelay.percentile(99) / 1e6 - LOOP_DELAY_RESOLUTION_MS), 2) : 0,
  };
}

function describePhase(name: string, p: PhaseProfile): string {
  return `${name}: append p50/p99 ${p.p50AppendMs}/${p.p99AppendMs} ms; ${p.syncs} syncs, mean ${p.syncMeanMs} ms, ${p.meanBatchMessages} messages per flush; main thread busy ${(p.eventLoopUtilization * 100).toFixed(0)} % (loop delay p99 ${p.loopDelayP99Ms} ms), process CPU ${p.cpuCores} cores`;
}

async function runStore(o: BenchOptions, storeDir: string): Promise<StoreRun> {
  const layout = makeLayout(o.seed, o.topics, o.maxQueues);
  log(`layout: ${o.topics} topics, ${layout.totalQueues} queues; ${o.producers} producers, ${o.readers} readers`);
  const payload = new PayloadFactory(randomPool(o.seed), o.seed);
  const storeOptions: StoreOptions = { dir: storeDir, sync: { mode: 'always' } };
  if (o.memoryCacheBytes) storeOptions.memoryCacheBytes = o.memoryCacheBytes;
  if (o.segmentBytes) storeOptions.segmentBytes = o.segmentBytes;
  if (o.coldReadConcurrency) storeOptions.coldReadConcurrency = o.coldReadConcurrency;
  if (o.historyPageCache) storeOptions.historyPageCache = o.historyPageCache;
  let store: MessageStoreApi = await MessageStore.open(storeOptions);
  const counters = new Counters();
  const next = new Uint32Array(layout.totalQueues);
  const ackedAt = new Float64Array(layout.totalQueues);
  // One histogram per writing phase (so each phase's tail can be told apart), merged for the totals.
  const latency1 = newLatencyHistogram();
  const latency2 = newLatencyHistogram();
  const sampler = new Sampler(() => counters);
  sampler.cacheBytes = () => {
    const m = store.stats().cache.memory;
    return m.bytes;
  };
  const append = (t: number, q: number, data: Buffer): Promise<number> => store.append(layout.topicNames[t], q, data);

  sampler.start();
  const m1 = markPhase(store, true);
  const t1 = process.hrtime.bigint();
  await runProducers({ layout, payload, producers: o.producers, targetBytes: o.phase1Bytes, seed: o.seed, next, append, counters, latency: latency1 });
  const phase1Seconds = seconds(t1);
  const phase1Bytes = counters.bytesWritten;
  const p1 = phaseBetween(m1, markPhase(store, false), latency1);
  log(describePhase('phase 1', p1));
  const appendMiBps = phase1Bytes / MiB / phase1Seconds;
  log(`phase 1 done: ${(phase1Bytes / GiB).toFixed(2)} GiB in ${phase1Seconds.toFixed(1)} s = ${appendMiBps.toFixed(0)} MiB/s`);

  sampler.phase = 'drop cache';
  const drop = dropPageCache(storeDir);
  log(drop.detail);
  const ioBefore = deviceReadBytes();

  sampler.phase = 'phase 2';
  const m2 = markPhase(store, true);
  let p2: PhaseProfile | null = null;
  const t2 = process.hrtime.bigint();
  let writersDone = false;
  let phase2Seconds = 0;
  const acks = new AckFeed();
  // The readers' setup (where each hot reader starts: every queue's end) runs before the first
  // phase-2 append: started after the producers, its synchronous pass over all queues held their
  // first acknowledgements up (137 ms at 217,000 queues, the run's longest append wait).
  const readers = runReaders({ store, layout, payload, readers: o.readers, seed: o.seed, next, counters, ackedAt, acks, writersDone: () => writersDone });
  const writers = runProducers({
    layout, payload, producers: o.producers, targetBytes: o.phase2Bytes, seed: o.seed ^ 0x2, next, append, counters, latency: latency2, ackedAt, acks,
  }).finally(() => {
    writersDone = true;
    phase2Seconds = seconds(t2);
    p2 = phaseBetween(m2, markPhase(store, false), latency2);
    log(describePhase('phase 2', p2));
    sampler.phase = 'phase 3';
    log(`phase 2 writes done in ${phase2Seconds.toFixed(1)} s; phase 3: reading every queue to its end`);
  });
  const [readResult] = await Promise.all([readers, writers]);
  const phase3Seconds = seconds(t2) - phase2Seconds;
  sampler.stop();
  const ioAfter = deviceReadBytes();
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  const stats = store.stats();
  const totalSeconds = phase1Seconds + phase2Seconds + phase3Seconds;
  const latency = newLatencyHistogram();
  latency.add(latency1);
  latency.add(latency2);

  // Every queue must end exactly where its producer left it.
  for (let g = 0; g < layout.totalQueues; g++) {
    const end = store.endOffset(layout.topicNames[layout.topicOf[g]], layout.queueIdOf[g]);
    if (end !== next[g]) counters.fail(`endOffset of ${layout.topicNames[layout.topicOf[g]]}/${layout.queueIdOf[g]} is ${end}, expected ${next[g]}`);
  }
  await store.close();
  const tReopen = process.hrtime.bigint();
  store = await MessageStore.open(storeOptions);
  const reopenSeconds = seconds(tReopen);
  const g0 = layout.totalQueues - 1;
  const lastOffset = next[g0] - 1;
  if (lastOffset >= 0) {
    const [rec] = await store.getRange(layout.topicNames[layout.topicOf[g0]], layout.queueIdOf[g0], lastOffset, 1);
    const problem = rec ? payload.verify(layout.topicOf[g0], layout.queueIdOf[g0], lastOffset, rec) : 'missing after reopen';
    if (problem) counters.fail(`after reopen: ${problem}`);
  }
  await store.close();
  log('kill -9 while appending to the full data set, then reopen');
  const killReopen = await measureKillReopen(storeOptions, o.seed);
  log(
    `reopen after kill -9: ${killReopen.seconds === null ? killReopen.note : `${killReopen.seconds.toFixed(2)} s, scanning ${((killReopen.scannedBytes ?? 0) / MiB).toFixed(1)} MiB of log (${killReopen.acknowledgedBeforeKill} appends acknowledged before the kill; ${killReopen.cacheDrop})`}`,
  );

  return {
    appendMiBps,
    phase1Seconds,
    phase2Seconds,
    phase3Seconds,
    totalSeconds,
    idealSeconds: counters.bytesWritten / MiB / appendMiBps,
    p50AppendMs: latency.getValueAtPercentile(50) / 1000,
    p99AppendMs: latency.getValueAtPercentile(99) / 1000,
    p999AppendMs: latency.getValueAtPercentile(99.9) / 1000,
    maxAppendMs: latency.maxValue / 1000,
    hotHitRatio: readResult.hotHitRatio,
    hotProbes: readResult.hotProbes,
    hotLagP50Ms: readResult.hotLag.getValueAtPercentile(50) / 1000,
    hotLagP99Ms: readResult.hotLag.getValueAtPercentile(99) / 1000,
    hotQueues: readResult.hotQueues,
    coldQueues: readResult.coldQueues,
    messagesWritten: counters.messagesWritten,
    bytesWritten: counters.bytesWritten,
    messagesRead: counters.messagesRead,
    verifiedBytes: counters.verifiedBytes,
    errors: counters.errors,
    errorSamples: counters.errorSamples,
    deviceReadBytes: ioBefore !== null && ioAfter !== null ? ioAfter - ioBefore : null,
    cacheDrop: drop.detail,
    peakRssMiB,
    peakMemory: sampler.peakMemory,
    reopenSeconds,
    killReopen,
    stats,
    phaseProfiles: p2 ? [p1, p2] : [p1],
    samples: sampler.samples,
  };
}

function table(rows: [string, string][]): string {
  const w = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `  ${k.padEnd(w)}  ${v}`).join('\n');
}

function defaultResultsDir(): string {
  // dist/bench/store/run.js (or .build/<x>/bench/store/run.js) -> <repo>/bench/results
  return fileURLToPath(new URL('../../../bench/results/', import.meta.url));
}

/** Set in the re-run child, so a flag Node does not echo back in execArgv cannot loop. */
const RERUN_ENV = 'CIRRUS_BENCH_STORE_RERUN';

/**
 * Runs this script again with the Node flags and libuv pool size the options ask for, when this
 * process was started without them (V8 reads heap flags once, at start; libuv sizes its pool on
 * first use); resolves to the child's exit code, or null when nothing is missing and this process
 * should run the benchmark itself. An UV_THREADPOOL_SIZE already set is the caller's choice.
 */
async function rerunWithRuntime(flags: readonly string[], uvThreadpoolSize: number | null): Promise<number | null> {
  if (process.env[RERUN_ENV] !== undefined) return null;
  // A flag counts as given whatever its value: the caller's own `--max-semi-space-size=16` stays
  // theirs rather than being overridden by ours appended after it.
  const flagName = (f: string): string => f.split('=', 1)[0] as string;
  const given = new Set([...process.execArgv, ...(process.env.NODE_OPTIONS ?? '').split(/\s+/)].map(flagName));
  const missing = flags.filter((f) => !given.has(flagName(f)));
  const pool = uvThreadpoolSize !== null && process.env.UV_THREADPOOL_SIZE === undefined ? String(uvThreadpoolSize) : null;
  if (missing.length === 0 && pool === null) return null;
  if (missing.length > 0) log(`running with Node flags ${missing.join(' ')} (docs/store.md, "Runtime"; --node-flags none runs as started)`);
  if (pool !== null) log(`running with UV_THREADPOOL_SIZE=${pool} (docs/store.md, "Runtime"; --uv-threadpool-size none runs as started)`);
  const child = spawn(process.execPath, [...process.execArgv, ...missing, fileURLToPath(import.meta.url), ...process.argv.slice(2)], {
    stdio: 'inherit',
    env: { ...process.env, ...(pool === null ? {} : { UV_THREADPOOL_SIZE: pool }), [RERUN_ENV]: '1' },
  });
  const forward = (signal: NodeJS.Signals): void => void child.kill(signal);
  process.on('SIGINT', forward).on('SIGTERM', forward);
  const [code, signal] = (await once(child, 'exit')) as [number | null, NodeJS.Signals | null];
  return code ?? (signal ? 128 + (osConstants.signals[signal] ?? 0) : 1);
}

/**
 * Bytes closed-loop producers keep in flight between them: one mean record each, rounded up to
 * whole 4 KiB pages as the log's writes end up on the device.
 */
function closedLoopRoundBytes(producers: number): number {
  return Math.ceil((producers * MEAN_RECORD_BYTES) / 4096) * 4096;
}

async function main(): Promise<number> {
  const o = parseBenchOptions(process.argv.slice(2));
  const rerun = await rerunWithRuntime(o.nodeFlags, o.uvThreadpoolSize);
  if (rerun !== null) return rerun;
  const base = o.dir ? (mkdirSync(o.dir, { recursive: true }), mkdtempSync(join(o.dir, 'cirrus-bench-'))) : mkdtempSync(join(tmpdir(), 'cirrus-bench-'));
  log(`mode ${o.mode}; data in ${base}`);
  let exitCode = 0;
  try {
    const ceilingDir = join(base, 'ceiling');
    mkdirSync(ceilingDir);
    log(
      `ceiling probe: write + fdatasync (through the page cache, and direct as the store writes where it can), ` +
        `${CEILING_FILE_COUNTS.join('/')} files x ${CEILING_BLOCK_BYTES.map((b) => `${b / 1024} KiB`).join('/')}, ${o.ceilingCellBytes / MiB} MiB per cell`,
    );
    const ceiling: CeilingResult = await probeCeiling(ceilingDir, {
      cellBytes: o.ceilingCellBytes,
      fileCounts: CEILING_FILE_COUNTS,
      blockSizes: CEILING_BLOCK_BYTES,
      onCell: (c) => log(`  ${c.io} ${c.files} file(s) x ${c.blockBytes / 1024} KiB: ${c.mibps.toFixed(0)} MiB/s`),
    });
    const ceilingMiBps = ceiling.best.mibps;
    log(`ceiling ${ceilingMiBps.toFixed(0)} MiB/s (${ceiling.best.io} ${ceiling.best.files} x ${ceiling.best.blockBytes / 1024} KiB)`);
    const roundBytes = closedLoopRoundBytes(o.producers);
    const closedLoop = await probeRounds(ceilingDir, roundBytes, o.ceilingCellBytes);
    rmSync(ceilingDir, { recursive: true, force: true });
    log(
      `closed-loop reference: 1 file x ${roundBytes / 1024} KiB rounds (${o.producers} producers' mean record each, ${closedLoop.io}): ` +
        `${closedLoop.mibps.toFixed(0)} MiB/s = ${(closedLoop.mibps / ceilingMiBps).toFixed(2)} x ceiling`,
    );

    const storeDir = join(base, 'store');
    const run = await runStore(o, storeDir);
    if (!o.keep) rmSync(storeDir, { recursive: true, force: true });

    const peers: PeerResult[] = [];
    for (const name of o.peers) {
      const peerDir = join(base, `peer-${name}`);
      mkdirSync(peerDir);
      const result = await runPeer(name, peerDir, o, log);
      peers.push(result);
      rmSync(peerDir, { recursive: true, force: true });
    }
    const measured = peers.filter((p) => p.mibps !== null);
    const best = measured.reduce<PeerResult | null>((a, b) => (a === null || (b.mibps ?? 0) > (a.mibps ?? 0) ? b : a), null);
    const peerErrors = peers.reduce((n, p) => n + p.errors, 0);
    const errors = run.errors + peerErrors;

    const result = {
      mode: o.mode,
      date: new Date().toISOString(),
      machine: { cpus: cpus().length, memoryGiB: round(totalmem() / GiB, 1), node: process.version, nodeFlags: process.execArgv, uvThreadpoolSize: process.env.UV_THREADPOOL_SIZE ?? null },
      workload: {
        producers: o.producers, readers: o.readers, topics: o.topics, maxQueuesPerTopic: o.maxQueues,
        phase1GiB: round(o.phase1Bytes / GiB, 3), phase2GiB: round(o.phase2Bytes / GiB, 3), seed: o.seed,
        memoryCacheBytes: o.memoryCacheBytes, segmentBytes: o.segmentBytes, coldReadConcurrency: o.coldReadConcurrency,
        historyPageCache: o.historyPageCache,
      },
      ceilingMiBps: round(ceilingMiBps),
      ceilingCell: `${ceiling.best.files}x${ceiling.best.blockBytes / 1024}KiB ${ceiling.best.io}`,
      ceilingGrid: ceiling.cells.map((c) => ({ files: c.files, blockKiB: c.blockBytes / 1024, io: c.io, mibps: round(c.mibps) })),
      closedLoopRoundKiB: roundBytes / 1024,
      closedLoopIo: closedLoop.io,
      closedLoopMiBps: round(closedLoop.mibps),
      appendMiBps: round(run.appendMiBps),
      ratioToCeiling: round(run.appendMiBps / ceilingMiBps, 3),
      ratioToClosedLoop: round(run.appendMiBps / closedLoop.mibps, 3),
      totalSeconds: round(run.totalSeconds),
      idealSeconds: round(run.idealSeconds),
      phaseSeconds: [round(run.phase1Seconds), round(run.phase2Seconds), round(run.phase3Seconds)],
      phaseProfiles: run.phaseProfiles,
      p50AppendMs: round(run.p50AppendMs, 3),
      p99AppendMs: round(run.p99AppendMs, 3),
      p999AppendMs: round(run.p999AppendMs, 3),
      maxAppendMs: round(run.maxAppendMs, 3),
      peakRssMiB: round(run.peakRssMiB, 1),
      peakMemory: run.peakMemory,
      hotHitRatio: Number.isNaN(run.hotHitRatio) ? null : round(run.hotHitRatio, 4),
      hotProbes: run.hotProbes,
      hotLagP50Ms: round(run.hotLagP50Ms, 1),
      hotLagP99Ms: round(run.hotLagP99Ms, 1),
      hotQueues: run.hotQueues,
      coldQueues: run.coldQueues,
      messagesWritten: run.messagesWritten,
      bytesWritten: run.bytesWritten,
      messagesRead: run.messagesRead,
      verifiedBytes: run.verifiedBytes,
      deviceReadBytes: run.deviceReadBytes,
      cacheDrop: run.cacheDrop,
      reopenSeconds: round(run.reopenSeconds, 3),
      killReopenSeconds: run.killReopen.seconds === null ? null : round(run.killReopen.seconds, 3),
      killReopenScannedBytes: run.killReopen.scannedBytes,
      killReopenAcknowledged: run.killReopen.acknowledgedBeforeKill,
      store: {
        syncs: run.stats.syncs,
        meanBatchMessages: round(run.stats.meanBatchMessages),
        syncLatencyMeanMs: round(run.stats.syncLatencyMeanMs, 3),
        syncLatencyP99Ms: round(run.stats.syncLatencyP99Ms, 3),
        memoryHitRatio: round(run.stats.cache.memory.hitRatio, 4),
        segments: run.stats.segments,
      },
      errors,
      errorSamples: [...run.errorSamples, ...peers.flatMap((p) => p.errorSamples)],
      peers: Object.fromEntries(peers.map((p) => [p.name, p.mibps === null ? 'skipped' : round(p.mibps)])),
      peerDetails: peers,
      bestPeer: best?.name ?? null,
      bestPeerMiBps: best?.mibps != null ? round(best.mibps) : null,
      // Against the best of all the peers asked for: with one of them skipped (not installed),
      // the ratio would be against a weaker field, so it is not given.
      ratioToBestPeer: best?.mibps && measured.length === peers.length ? round(run.appendMiBps / best.mibps, 2) : null,
      samples: run.samples,
    };
    const targets = checkTargets({
      producers: o.producers,
      ratioToCeiling: result.ratioToCeiling,
      ratioToBestPeer: result.ratioToBestPeer,
      totalSeconds: result.totalSeconds,
      idealSeconds: result.idealSeconds,
      p99AppendMs: result.p99AppendMs,
      hotHitRatio: result.hotHitRatio,
      peakRssMiB: result.peakRssMiB,
      memoryBudgetBytes: o.memoryCacheBytes ?? DEFAULT_MEMORY_CACHE_BYTES,
      messagesWritten: result.messagesWritten,
      killReopenSeconds: result.killReopenSeconds,
    });
    const withTargets = { ...result, targets };

    // Quick runs (CI's) go beside the real results, in a folder git ignores.
    const outDir = o.out ?? (o.mode === 'quick' ? join(defaultResultsDir(), 'quick') : defaultResultsDir());
    mkdirSync(outDir, { recursive: true });
    const stamp = result.date.replace(/[:.]/g, '-').replace(/-\d+Z$/, 'Z');
    const stem = join(outDir, `store-${o.mode}-p${o.producers}-${stamp}`);
    writeFileSync(`${stem}.json`, JSON.stringify(withTargets, null, 2) + '\n');
    writeFileSync(
      `${stem}.svg`,
      throughputSvg(run.samples, `Cirrus store, ${o.producers} producers, ${result.workload.phase1GiB}+${result.workload.phase2GiB} GiB`, ceilingMiBps),
    );
    log(`results: ${stem}.json and ${stem}.svg`);

    const pct = (x: number | null): string => (x === null ? 'n/a' : `${(x * 100).toFixed(1)} %`);
    const rows: [string, string][] = [
      ['ceiling (best cell)', `${result.ceilingMiBps} MiB/s (${result.ceilingCell})`],
      ['closed-loop reference', `${result.closedLoopMiBps} MiB/s (1 file x ${result.closedLoopRoundKiB} KiB rounds, ${result.closedLoopIo}: what ${o.producers} producers keep in flight) = ${round(result.closedLoopMiBps / result.ceilingMiBps, 3)} x ceiling`],
      ['append, phase 1', `${result.appendMiBps} MiB/s = ${result.ratioToCeiling} x ceiling = ${result.ratioToClosedLoop} x closed-loop reference`],
      ['append latency p50/p99/p99.9', `${result.p50AppendMs} / ${result.p99AppendMs} / ${result.p999AppendMs} ms`],
      ['total time (phases 1-3)', `${result.totalSeconds} s (ideal ${result.idealSeconds} s; phases ${result.phaseSeconds.join(' / ')} s)`],
      ['written', `${(result.bytesWritten / GiB).toFixed(2)} GiB in ${result.messagesWritten} messages`],
      ['read and verified', `${(result.verifiedBytes / GiB).toFixed(2)} GiB in ${result.messagesRead} messages`],
      ['hot hit ratio (memory tier)', `${pct(result.hotHitRatio)} over ${result.hotProbes} probes`],
      ['hot read lag p50/p99', `${result.hotLagP50Ms} / ${result.hotLagP99Ms} ms behind the acknowledgement`],
      ['device bytes read (phases 2-3)', result.deviceReadBytes === null ? 'n/a' : `${(result.deviceReadBytes / MiB).toFixed(0)} MiB`],
      ['page cache', result.cacheDrop],
      ['peak RSS', `${result.peakRssMiB} MiB`],
      ...(result.peakMemory
        ? [['  at the highest sample', `rss ${result.peakMemory.rssMiB} = heap ${result.peakMemory.heapTotalMiB} (used ${result.peakMemory.heapUsedMiB}, young ${result.peakMemory.newSpaceMiB}) + buffers ${result.peakMemory.arrayBuffersMiB} + mapped ${result.peakMemory.mappedMiB} (store cache ${result.peakMemory.storeCacheMiB}) + rest MiB, ${result.peakMemory.phase}`] as [string, string]]
        : []),
      ['reopen after clean close', `${result.reopenSeconds} s`],
      ['reopen after kill -9', result.killReopenSeconds === null ? run.killReopen.note : `${result.killReopenSeconds} s (scanned ${((result.killReopenScannedBytes ?? 0) / MiB).toFixed(1)} MiB of log past the checkpoint)`],
      ['group commit', `${result.store.syncs} syncs, ${result.store.meanBatchMessages} msgs/sync, sync p99 ${result.store.syncLatencyP99Ms} ms`],
      ...peers.map((p): [string, string] => [`peer ${p.name}`, p.mibps === null ? `skipped: ${p.skipped}` : `${round(p.mibps)} MiB/s (p99 ${round(p.p99AppendMs ?? 0, 2)} ms)`]),
      ['store / best peer', result.ratioToBestPeer === null ? 'n/a' : `${result.ratioToBestPeer} x (${result.bestPeer})`],
      ['verification errors', String(errors)],
      ...targets.map((t): [string, string] => [
        `target: ${t.name}`,
        `${t.met === null ? 'not measured' : t.met ? 'met' : 'MISSED'}: ${t.value === null ? 'n/a' : round(t.value, 3)}, target ${t.direction} ${t.bound}`,
      ]),
    ];
    process.stdout.write(`\nCirrus store benchmark (${o.mode})\n${table(rows)}\n`);
    for (const e of result.errorSamples) process.stdout.write(`  error: ${e}\n`);
    const { samples: _samples, peerDetails: _details, ceilingGrid: _grid, ...summary } = result;
    const targetsMet = Object.fromEntries(targets.map((t) => [t.name, t.met]));
    process.stdout.write(JSON.stringify({ ...summary, targetsMet }) + '\n');
    if (errors > 0) exitCode = 1;
    if (o.mode === 'quick' && run.stats.cache.memory.misses === 0) {
      // The run is there to check every path of the read side byte for byte, the log's included.
      process.stderr.write('[bench:store] --quick read nothing from the log files (every read hit memory): the cold read path went unchecked\n');
      exitCode = 1;
    }
    // A broken kill -9 measurement is a broken pipeline (the appender failed), not a slow run.
    if (run.killReopen.seconds === null) {
      process.stderr.write(`[bench:store] reopen after kill -9 not measured: ${run.killReopen.note}\n`);
      exitCode = 1;
    }
  } finally {
    if (!o.keep) rmSync(base, { recursive: true, force: true });
  }
  return exitCode;
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    process.stderr.write(`[bench:store] failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(1);
  },
);
