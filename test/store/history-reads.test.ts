import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { HISTORY_MERGE_MAX_BYTES, MAX_READ_BATCH_SEGMENTS } from '../../src/store/constants.js';
import { HistoryReadQueue, type SpanBatch } from '../../src/store/history-reads.js';

/** What a fake read of one span returns: its segment, position and length, so misrouting shows. */
function spanBytes(seg: number, position: number, length: number): Buffer {
  return Buffer.from(`${seg}:${position}:${length}`);
}

/** A job log and a run function whose jobs finish when the test says (or fail on a poisoned span). */
function fakeRun(poison = -1): {
  run: (b: SpanBatch<number>) => Promise<Buffer[]>;
  jobs: SpanBatch<number>[];
  finishAll: () => void;
  running: () => number;
} {
  const jobs: SpanBatch<number>[] = [];
  const finishers: Array<() => void> = [];
  let running = 0;
  return {
    jobs,
    running: () => running,
    finishAll: () => finishers.splice(0).forEach((f) => f()),
    run: (b) => {
      jobs.push(b);
      running++;
      return new Promise<Buffer[]>((resolve, reject) => {
        finishers.push(() => {
          running--;
          if (b.positions.includes(poison)) reject(Object.assign(new Error('EIO'), { code: 'EIO' }));
          else resolve(b.positions.map((p, k) => spanBytes(b.segs[k], p, b.lengths[k])));
        });
      });
    },
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function batch(seg: number, positions: number[], length = 100): SpanBatch<number> {
  return { segs: positions.map(() => seg), positions, lengths: positions.map(() => length) };
}

test('history reads: batches waiting for a slot go to the device as one job when it frees, each getting its own spans', async () => {
  const f = fakeRun();
  const q = new HistoryReadQueue<number>(1, f.run);
  const a = q.read(batch(1, [0, 10]));
  const rest = [q.read(batch(2, [5])), q.read(batch(1, [20, 30])), q.read(batch(3, [7]))];
  assert.equal(f.jobs.length, 1, 'the first batch starts at once');
  assert.deepEqual([q.inFlight, q.pending], [1, 3]);
  f.finishAll();
  assert.deepEqual(await a, [spanBytes(1, 0, 100), spanBytes(1, 10, 100)]);
  await tick();
  assert.equal(f.jobs.length, 2, 'the three waiting batches are one job');
  assert.deepEqual(f.jobs[1].positions, [5, 20, 30, 7], 'in the order they came');
  f.finishAll();
  assert.deepEqual(await Promise.all(rest), [[spanBytes(2, 5, 100)], [spanBytes(1, 20, 100), spanBytes(1, 30, 100)], [spanBytes(3, 7, 100)]]);
  assert.deepEqual(q.counts, { batches: 4, jobs: 2 });
  assert.deepEqual([q.inFlight, q.pending], [0, 0]);
});

test('history reads: a merged job stops at MAX_READ_BATCH_SEGMENTS segments and at HISTORY_MERGE_MAX_BYTES, first come first served', async () => {
  const f = fakeRun();
  const q = new HistoryReadQueue<number>(1, f.run);
  void q.read(batch(0, [0]));
  // One segment each: the first MAX_READ_BATCH_SEGMENTS fit in a job, the next starts the one after.
  const bySegment = Array.from({ length: MAX_READ_BATCH_SEGMENTS + 1 }, (_, s) => q.read(batch(100 + s, [s])));
  f.finishAll();
  await tick();
  assert.equal(new Set(f.jobs[1].segs).size, MAX_READ_BATCH_SEGMENTS);
  f.finishAll();
  await tick();
  assert.deepEqual(f.jobs[2].segs, [100 + MAX_READ_BATCH_SEGMENTS]);
  f.finishAll();
  await Promise.all(bySegment);
  await tick();
  // By bytes: two batches of just over half the limit each are two jobs; a batch over the limit runs alone.
  const half = Math.floor(HISTORY_MERGE_MAX_BYTES / 2) + 1;
  void q.read(batch(0, [0]));
  const big = [q.read(batch(1, [1], half)), q.read(batch(1, [2], half)), q.read(batch(1, [3], HISTORY_MERGE_MAX_BYTES * 2))];
  const jobsBefore = f.jobs.length;
  for (let k = 0; k < 4; k++) {
    f.finishAll();
    await tick();
  }
  assert.deepEqual(
    f.jobs.slice(jobsBefore).map((j) => j.positions),
    [[1], [2], [3]],
  );
  assert.equal((await Promise.all(big)).length, 3);
});

test('history reads: when a merged job fails, each of its batches is read again on its own and only the one whose read fails rejects', async () => {
  const f = fakeRun(666);
  const q = new HistoryReadQueue<number>(1, f.run);
  void q.read(batch(0, [0]));
  const good = q.read(batch(1, [1, 2]));
  const bad = q.read(batch(2, [666])).then(
    () => 'read',
    (err: Error & { code?: string }) => err.code,
  );
  const alsoGood = q.read(batch(3, [3]));
  for (let k = 0; k < 5; k++) {
    f.finishAll();
    await tick();
  }
  assert.deepEqual(await good, [spanBytes(1, 1, 100), spanBytes(1, 2, 100)]);
  assert.equal(await bad, 'EIO');
  assert.deepEqual(await alsoGood, [spanBytes(3, 3, 100)]);
  assert.deepEqual(
    f.jobs.slice(1).map((j) => j.positions),
    [[1, 2, 666, 3], [1, 2], [666], [3]],
    'the merged job, then each batch alone',
  );
  assert.deepEqual([q.inFlight, q.pending], [0, 0]);
});

test('history reads: raising the limit starts waiting batches at once; a bad limit stops loudly', async () => {
  const f = fakeRun();
  const q = new HistoryReadQueue<number>(1, f.run);
  // Two segments' worth of bytes apiece: no two batches fit one job.
  const reads = Array.from({ length: 4 }, (_, k) => q.read(batch(k, [k], HISTORY_MERGE_MAX_BYTES)));
  assert.equal(f.running(), 1);
  q.limit = 3;
  assert.equal(f.running(), 3, 'two more started');
  assert.deepEqual([q.inFlight, q.pending], [3, 1]);
  for (let k = 0; k < 3; k++) {
    f.finishAll();
    await tick();
  }
  assert.equal((await Promise.all(reads)).length, 4);
  assert.throws(() => (q.limit = 0), /a slot at least/);
  assert.equal(q.limit, 3);
});

test('history reads: a batch read is no longer held by the queue, so its buffers can be collected while others still wait', async () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const f = fakeRun();
  const q = new HistoryReadQueue<number>(1, f.run);
  const collected: WeakRef<Buffer[]>[] = [];
  // A job at a time and one batch per job (each as large as a merged job may be): the queue
  // never empties while the first ten are read.
  const reads = Array.from({ length: 21 }, (_, k) =>
    q.read(batch(k, [k], HISTORY_MERGE_MAX_BYTES)).then((bufs) => {
      collected.push(new WeakRef(bufs));
    }),
  );
  for (let k = 0; k < 10; k++) {
    f.finishAll();
    await tick();
  }
  assert.ok(collected.length >= 9 && q.pending > 0, `${collected.length} read, ${q.pending} waiting`);
  gc();
  await tick();
  gc();
  assert.deepEqual(
    collected.map((r) => r.deref() === undefined),
    collected.map(() => true),
    'the buffers of every batch read are collected',
  );
  for (let k = 0; k < 12; k++) {
    f.finishAll();
    await tick();
  }
  await Promise.all(reads);
});

test('history reads: any mix of batches, limits and failures: every batch gets exactly its own spans or its own failure, and jobs never exceed the limit (property)', async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(
        fc.record({
          seg: fc.integer({ min: 0, max: 40 }),
          positions: fc.uniqueArray(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 6 }),
          length: fc.integer({ min: 1, max: HISTORY_MERGE_MAX_BYTES / 2 }),
          at: fc.integer({ min: 0, max: 3 }),
        }),
        { minLength: 1, maxLength: 40 },
      ),
      fc.integer({ min: 1, max: 4 }),
      fc.integer({ min: 0, max: 1000 }),
      async (specs, limit, poison) => {
        const f = fakeRun(poison);
        const q = new HistoryReadQueue<number>(limit, f.run);
        let maxRunning = 0;
        const outcomes: Promise<string>[] = [];
        for (let step = 0; step <= 3; step++) {
          for (const s of specs.filter((x) => x.at === step)) {
            const b = batch(s.seg, s.positions, s.length);
            outcomes.push(
              q.read(b).then(
                (bufs) => {
                  assert.deepEqual(bufs, s.positions.map((p) => spanBytes(s.seg, p, s.length)));
                  assert.ok(!s.positions.includes(poison), 'a batch with the failing span does not succeed');
                  return 'ok';
                },
                (err: Error & { code?: string }) => {
                  assert.equal(err.code, 'EIO');
                  assert.ok(s.positions.includes(poison), 'only a batch with the failing span fails');
                  return 'failed';
                },
              ),
            );
            maxRunning = Math.max(maxRunning, f.running());
          }
          f.finishAll();
          await tick();
        }
        for (let k = 0; k < 4 * specs.length + 4 && (q.inFlight > 0 || q.pending > 0); k++) {
          maxRunning = Math.max(maxRunning, f.running());
          f.finishAll();
          await tick();
        }
        await Promise.all(outcomes);
        assert.ok(maxRunning <= limit, `${maxRunning} jobs at once, limit ${limit}`);
        for (const j of f.jobs) assert.ok(new Set(j.segs).size <= MAX_READ_BATCH_SEGMENTS);
        assert.deepEqual([q.inFlight, q.pending], [0, 0]);
      },
    ),
    { numRuns: 150 },
  );
});
