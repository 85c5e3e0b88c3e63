import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { MessageStore } from '../../src/store/index.js';
import { INDEX_BLOCK_ENTRIES } from '../../src/store/constants.js';
import { DAMAGED_LENGTH, QueueIndex } from '../../src/store/queue-index.js';
import { removeDir, tempDir } from './helpers.js';

test('queue index (property): push, reserve, pop, trim and advance agree with a plain array model', () => {
  type Op =
    | { kind: 'push'; q: number; len: number }
    | { kind: 'reserve'; q: number; count: number; len: number }
    | { kind: 'pop'; q: number } | { kind: 'advance'; q: number; by: number } | { kind: 'trim'; below: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('push' as const), q: fc.nat({ max: 4 }), len: fc.integer({ min: 36, max: 2000 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('reserve' as const), q: fc.nat({ max: 4 }), count: fc.nat({ max: 30 }), len: fc.integer({ min: 36, max: 2000 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('pop' as const), q: fc.nat({ max: 4 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), q: fc.nat({ max: 4 }), by: fc.nat({ max: 20 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('trim' as const), below: fc.nat({ max: 400_000 }) }) },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
      const index = new QueueIndex();
      const model = new Map<number, { start: number; entries: [number, number][] }>();
      let pos = 0;
      for (const o of ops) {
        if (o.kind === 'push') {
          const q = index.getOrCreate(1, o.q);
          const m = model.get(o.q) ?? { start: 0, entries: [] };
          model.set(o.q, m);
          index.push(q, pos, o.len);
          m.entries.push([pos, o.len]);
          pos += o.len;
        } else if (o.kind === 'reserve') {
          // What a checkpoint load does: room for `count` entries, then exactly that many pushes.
          const q = index.getOrCreate(1, o.q);
          const m = model.get(o.q) ?? { start: 0, entries: [] };
          model.set(o.q, m);
          index.reserve(q, o.count);
          for (let k = 0; k < o.count; k++) {
            index.push(q, pos, o.len);
            m.entries.push([pos, o.len]);
            pos += o.len;
          }
        } else if (o.kind === 'pop') {
          const q = index.get(1, o.q);
          const m = model.get(o.q);
          if (!q || !m || q.end === q.start) continue;
          index.pop(q);
          m.entries.pop();
          pos = Math.max(pos, 0);
        } else if (o.kind === 'advance') {
          const q = index.get(1, o.q);
          const m = model.get(o.q);
          if (!q || !m) continue;
          const to = Math.min(q.end, q.start + o.by);
          m.entries.splice(0, to - q.start);
          m.start = to;
          index.advanceStart(q, to);
        } else {
          index.trimBelow(o.below);
          for (const m of model.values()) {
            let drop = 0;
            while (drop < m.entries.length && m.entries[drop][0] < o.below) drop++;
            m.entries.splice(0, drop);
            m.start += drop;
          }
        }
      }
      for (const [qid, m] of model) {
        const q = index.get(1, qid);
        assert.ok(q);
        assert.equal(q.start, m.start);
        assert.equal(q.end, m.start + m.entries.length);
        assert.equal(q.bytes, m.entries.reduce((n, e) => n + e[1], 0));
        assert.equal(q.blocks.length, Math.ceil((q.end - q.base) / INDEX_BLOCK_ENTRIES), 'blocks held = blocks used');
        m.entries.forEach(([p, l], k) => {
          assert.equal(index.positionOf(q, m.start + k), p);
          assert.equal(index.lengthOf(q, m.start + k), l);
        });
      }
    }),
    { numRuns: 200 },
  );
  assert.equal(DAMAGED_LENGTH, 0);
});

test('queue index: about 12.5 bytes per message in typed arrays, no per-message objects', () => {
  const index = new QueueIndex();
  const queues = Array.from({ length: 1000 }, (_, q) => index.getOrCreate(3, q));
  const before = process.memoryUsage().arrayBuffers;
  const n = 1_000_000;
  for (let i = 0; i < n; i++) index.push(queues[i % 1000], i * 100, 100);
  const typedBytes = process.memoryUsage().arrayBuffers - before;
  assert.equal(index.entryCount, n);
  assert.ok(typedBytes / n <= 13, `typed-array bytes per message: ${(typedBytes / n).toFixed(2)}`);
  // Per queue only a list of block numbers: one number per 8 messages.
  const blockNumbers = queues.reduce((k, q) => k + q.blocks.length, 0);
  assert.equal(blockNumbers, n / 8);
  assert.equal(index.positionOf(queues[7], 999), 999_007 * 100);
  assert.equal(index.lengthOf(queues[7], 999), 100);
});

test('queue index: a queue of a few messages costs under 250 bytes of heap (block lists sized exactly)', () => {
  // 500,000 queues of 1-8 messages is the challenge's shape (the benchmark's --full has about 20
  // per queue): per-queue overhead is what counts.
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  for (const [messages, load] of [[4, 'appends'], [20, 'appends'], [20, 'checkpoint']] as const) {
    gc();
    const before = process.memoryUsage().heapUsed;
    const index = new QueueIndex();
    const n = 100_000;
    const states = Array.from({ length: n }, (_, q) => index.getOrCreate(q % 100, q));
    if (load === 'appends') {
      // Round-robin, as a log interleaves its queues: every queue's block list grows step by step.
      for (let k = 0; k < messages; k++) for (let q = 0; q < n; q++) index.push(states[q], (k * n + q) * 100, 100);
    } else {
      // Queue by queue, each count known first, as a checkpoint loads.
      for (let q = 0; q < n; q++) {
        index.reserve(states[q], messages);
        for (let k = 0; k < messages; k++) index.push(states[q], (k * n + q) * 100, 100);
      }
    }
    states.length = 0;
    gc();
    const perQueue = (process.memoryUsage().heapUsed - before) / n;
    assert.equal(index.queueCount, n);
    assert.equal(index.entryCount, n * messages);
    // Measured: about 197 bytes with 4 messages (object, one-element block list, map entry) and
    // 213 with 20 (three blocks); 342 with 20 when push() grows the block list (17 slots).
    assert.ok(perQueue < 250, `${messages} messages per queue (${load}): heap bytes per queue ${perQueue.toFixed(0)}`);
    const last = index.get(7, 99_907);
    assert.ok(last);
    assert.equal(index.positionOf(last, messages - 1), ((messages - 1) * n + 99_907) * 100);
  }
});

test('scale: 100 topics x 5,000 queues (500,000 queues) in one log, bounded file descriptors', { timeout: 120_000 }, async () => {
  const dir = tempDir();
  const fdsBefore = readdirSync('/proc/self/fd').length;
  const s = await MessageStore.open({ dir });
  const TOPICS = 100;
  const QUEUES = 5000;
  const PER_QUEUE = 2;
  try {
    const body = Buffer.alloc(16);
    for (let round = 0; round < PER_QUEUE; round++) {
      for (let t = 0; t < TOPICS; t++) {
        const topic = `topic-${t}`;
        const calls: Promise<number>[] = new Array(QUEUES);
        for (let q = 0; q < QUEUES; q++) {
          body.writeUInt32LE(t, 0);
          body.writeUInt32LE(q, 4);
          body.writeUInt32LE(round, 8);
          calls[q] = s.append(topic, q, body);
        }
        const offsets = await Promise.all(calls);
        for (const o of offsets) assert.equal(o, round);
      }
    }
    const fdsDuring = readdirSync('/proc/self/fd').length;
    assert.ok(fdsDuring - fdsBefore < 10, `no file per queue (fds ${fdsBefore} -> ${fdsDuring})`);
    const st = s.stats();
    assert.equal(st.queues, TOPICS * QUEUES);
    assert.equal(st.topics, TOPICS);
    assert.equal(st.messagesWritten, TOPICS * QUEUES * PER_QUEUE);
    // Spot checks across the key space.
    for (const [t, q] of [
      [0, 0],
      [99, 4999],
      [42, 1234],
      [7, 4000],
    ]) {
      const got = await s.getRange(`topic-${t}`, q, 0, 100);
      assert.equal(got.length, PER_QUEUE);
      got.forEach((b, round) => assert.deepEqual([b.readUInt32LE(0), b.readUInt32LE(4), b.readUInt32LE(8)], [t, q, round]));
    }
  } finally {
    await s.close();
  }
  const again = await MessageStore.open({ dir });
  try {
    assert.equal(again.recovery.checkpoint.used, true);
    assert.equal(again.stats().queues, TOPICS * QUEUES);
    assert.equal(again.endOffset('topic-99', 4999), PER_QUEUE);
  } finally {
    await again.close();
    removeDir(dir);
  }
});
