import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@node-rs/crc32';
import { MessageStore } from '../../src/store/index.js';
import { CRASH_MAGIC, CRASH_MIN_BYTES, CRASH_QUEUES_PER_TOPIC, CRASH_TOPICS, crashStoreOptions } from './crash-harness.js';

/** At least 20 kill points (issue 2); a few more so early (mid-recovery) kills are among them. */
const ITERATIONS = 24;
/** Fixed, so a failure reruns with the same kill plan: node dist/test/store/crash-harness.js --seed 20261126. */
const SEED = 20261126;

/** The retention run: 16 MiB segments, 16 MiB kept, so most iterations delete and recycle segments. */
const RETENTION_ITERATIONS = 20;
const RETAIN_MIB = 16;

/**
 * The interval run: appends acknowledged once written (through the page cache), fdatasync every
 * SYNC_INTERVAL_MS. A kill -9 leaves the OS running, so it too may lose nothing acknowledged.
 */
const INTERVAL_ITERATIONS = 12;
const SYNC_INTERVAL_MS = 20;

/** The large-record run: 3 % of records 0.5-2.5 MiB, past the write chunk and the flush cap. */
const LARGE_ITERATIONS = 12;
const LARGE_PERCENT = 3;

/**
 * The varied run: each iteration draws retention on or off, direct writes or the page cache, sync
 * 'always' or 'interval', its own checkpoints or none, so stores reopen with other options.
 */
const VARY_ITERATIONS = 24;

test('acknowledged appends survive kill -9 at random moments, recovery after recovery', { timeout: 600_000 }, async () => {
  await runHarness(['--iterations', String(ITERATIONS)], ITERATIONS);
});

test('with retention and recycled segments: acknowledged appends survive kill -9, and no end offset goes back (retention deleted records are counted apart)', { timeout: 600_000 }, async () => {
  await runHarness(['--iterations', String(RETENTION_ITERATIONS), '--retain-mib', String(RETAIN_MIB)], RETENTION_ITERATIONS);
});

test("with sync 'interval': a process crash loses nothing acknowledged either (the writes reached the OS)", { timeout: 600_000 }, async () => {
  await runHarness(['--iterations', String(INTERVAL_ITERATIONS), '--sync-interval-ms', String(SYNC_INTERVAL_MS)], INTERVAL_ITERATIONS);
});

test('with large records (past the write chunk and the flush cap): acknowledged appends survive kill -9', { timeout: 600_000 }, async () => {
  await runHarness(['--iterations', String(LARGE_ITERATIONS), '--large-percent', String(LARGE_PERCENT)], LARGE_ITERATIONS);
});

test('with options changing from run to run (retention, direct writes, sync mode, checkpoints): acknowledged appends survive kill -9', { timeout: 600_000 }, async () => {
  await runHarness(['--iterations', String(VARY_ITERATIONS), '--vary'], VARY_ITERATIONS);
});

test('the harness itself: records no child wrote where they were found (another queue, twice, a later iteration) count as corrupt', { timeout: 120_000 }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'cirrus-crash-foreign-'));
  try {
    // Before the harness runs: in each queue, the same record twice, claiming iteration 999 and
    // to belong to topic 0 queue 0.
    const shape = { retainMib: null, syncIntervalMs: null, largePercent: 0, directWrites: true, largeSegments: false, checkpoints: true };
    const s = await MessageStore.open({ dir, ...crashStoreOptions(shape) });
    const rec = Buffer.alloc(CRASH_MIN_BYTES, 7);
    rec.writeUInt32LE(CRASH_MAGIC, 0);
    rec.writeUInt32LE(rec.length, 4);
    rec.writeUInt32LE(999, 12);
    rec.writeUInt32LE(0, 24);
    rec.writeUInt32LE(0, 28);
    rec.writeUInt32LE(crc32c(rec.subarray(12)), 8);
    for (const t of CRASH_TOPICS) for (let q = 0; q < CRASH_QUEUES_PER_TOPIC; q++) for (let k = 0; k < 2; k++) await s.append(t, q, rec);
    await s.close();
    const r = await harness(['--iterations', '1', '--dir', dir]);
    assert.notEqual(r.code, 0);
    const per = CRASH_TOPICS.length * CRASH_QUEUES_PER_TOPIC * 2;
    assert.equal(r.summary.corrupt, per, r.stderr.slice(0, 2000));
    assert.match(r.stderr, /from iteration 999, which has not run/);
    assert.match(r.stderr, /written to 0\/0, found in 0\/1/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function runHarness(args: string[], iterations: number): Promise<void> {
  const { code, summary, stderr, last } = await harness(args);
  assert.deepEqual(Object.keys(summary), ['iterations', 'acknowledged', 'lost', 'corrupt'], `last line: ${last}`);
  assert.equal(summary.lost, 0, stderr);
  assert.equal(summary.corrupt, 0, stderr);
  assert.equal(summary.iterations, iterations, stderr);
  assert.ok(summary.acknowledged > 0, `nothing was acknowledged:\n${stderr}`);
  assert.equal(code, 0, `harness exit status ${code}:\n${stderr}`);
}

interface HarnessRun {
  code: number | null;
  summary: { iterations: number; acknowledged: number; lost: number; corrupt: number };
  stderr: string;
  last: string;
}

async function harness(args: string[]): Promise<HarnessRun> {
  const harness = fileURLToPath(new URL('./crash-harness.js', import.meta.url));
  const env = { ...process.env };
  delete env.NODE_TEST_CONTEXT;
  const child = spawn(process.execPath, [harness, ...args, '--seed', String(SEED), '--json'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));

  const lines = stdout.trim().split('\n');
  const last = lines[lines.length - 1] ?? '';
  const summary = JSON.parse(last) as HarnessRun['summary'];
  return { code, summary, stderr, last };
}
