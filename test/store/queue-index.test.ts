import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import fc from 'fast-check';
import { InvariantError } from '../../src/common/index.js';
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

/**
 * Heap bytes per queue of a QueueIndex built in a fresh process (`--expose-gc`): in a process
 * that has run other code V8 may already keep some QueueState fields as boxed doubles (a field
 * once given a non-small-integer value, e.g. a queue id above 2^30 or a queue of more than 1 GiB,
 * is boxed in every queue after: about 16 bytes per field), which would measure that history
 * rather than the index.
 */
function heapPerQueue(c: { messages: number; load: 'appends' | 'checkpoint'; ids: 'dense' | 'sparse' }): number {
  const code = `
    const { QueueIndex } = await import(${JSON.stringify(new URL('../../src/store/queue-index.js', import.meta.url).href)});
    const c = ${JSON.stringify(c)};
    // Enough queues that what else the process allocates meanwhile is a byte or two per queue.
    const n = 300_000;
    const idOf = (q) => (c.ids === 'dense' ? Math.floor(q / 100) : q);
    gc();
    const before = process.memoryUsage().heapUsed;
    const index = new QueueIndex();
    let states = Array.from({ length: n }, (_, q) => index.getOrCreate(q % 100, idOf(q)));
    if (c.load === 'appends') {
      // Round-robin, as a log interleaves its queues: every queue's block list grows step by step.
      for (let k = 0; k < c.messages; k++) for (let q = 0; q < n; q++) index.push(states[q], (k * n + q) * 100, 100);
    } else {
      // Queue by queue, each count known first, as a checkpoint loads.
      for (let q = 0; q < n; q++) {
        index.reserve(states[q], c.messages);
        for (let k = 0; k < c.messages; k++) index.push(states[q], (k * n + q) * 100, 100);
      }
    }
    states = null;
    gc();
    const perQueue = (process.memoryUsage().heapUsed - before) / n;
    const last = index.get(7, idOf(299_907));
    const ok = index.queueCount === n && index.entryCount === n * c.messages &&
      index.positionOf(last, c.messages - 1) === ((c.messages - 1) * n + 299_907) * 100;
    process.stdout.write(JSON.stringify({ perQueue, ok }));
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { perQueue: number; ok: boolean };
  assert.ok(out.ok, `${JSON.stringify(c)}: the index built holds what was pushed`);
  return out.perQueue;
}

test('queue index: a queue of a few messages costs under 190 bytes of heap (block lists sized exactly, queues in arrays)', () => {
  // 500,000 queues of 1-8 messages is the challenge's shape (the benchmark's --full has about 20
  // per queue): per-queue overhead is what counts. Measured: with a broker's numbering (each
  // topic's queues 0..n-1) 156 bytes with 4 messages (object, one-element block list, array
  // slot) and 172 with 20 (three blocks); in a Map per topic, as before, 183 and 199; push()
  // growing the block list to 17 slots added 130 more.
  const cases = [
    { messages: 4, load: 'appends', ids: 'dense', bound: 190 },
    { messages: 20, load: 'appends', ids: 'dense', bound: 190 },
    { messages: 20, load: 'checkpoint', ids: 'dense', bound: 190 },
    // Ids 100 apart within a topic: they go to the topic's Map.
    { messages: 20, load: 'appends', ids: 'sparse', bound: 250 },
  ] as const;
  for (const c of cases) {
    const perQueue = heapPerQueue(c);
    assert.ok(perQueue < c.bound, `${c.messages} messages per queue, ${c.load}, ${c.ids} ids: heap bytes per queue ${perQueue.toFixed(0)}`);
  }
});

test('queue index (property): queues found by topic and id wherever they are kept, each listed once', () => {
  const id = fc.oneof(fc.nat({ max: 300 }), fc.integer({ min: 0, max: 0xffff_ffff }), fc.constant(0xffff_ffff));
  fc.assert(
    fc.property(fc.array(fc.tuple(fc.nat({ max: 5 }), id), { maxLength: 300 }), (keys) => {
      const index = new QueueIndex();
      const model = new Map<string, { topicId: number; queueId: number }>();
      for (const [topicId, queueId] of keys) {
        const q = index.getOrCreate(topicId, queueId);
        assert.equal(q.topicId, topicId);
        assert.equal(q.queueId, queueId);
        assert.equal(index.getOrCreate(topicId, queueId), q, 'the same state on a second call');
        model.set(`${topicId}/${queueId}`, { topicId, queueId });
      }
      assert.equal(index.queueCount, model.size);
      const listed = [...index.all()].map((q) => `${q.topicId}/${q.queueId}`);
      assert.equal(listed.length, model.size, 'each queue listed once');
      assert.deepEqual(new Set(listed), new Set(model.keys()));
      for (const { topicId, queueId } of model.values()) assert.equal(index.get(topicId, queueId)?.queueId, queueId);
      assert.equal(index.get(6, 0), undefined);
      for (const [topicId, queueId] of keys) assert.equal(index.get(topicId, queueId + 1)?.queueId ?? queueId + 1, queueId + 1);
    }),
    { numRuns: 300 },
  );
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

test('queue index: a position below the queue\'s last one stops loudly and changes nothing', () => {
  const index = new QueueIndex();
  const q = index.getOrCreate(0, 0);
  // Inside a block (entries 0..4) and at a block's first slot (entry 8).
  for (const count of [5, INDEX_BLOCK_ENTRIES]) {
    for (let i = q.end; i < count; i++) index.push(q, 1000 * (i + 1), 100);
    const before = { end: q.end, bytes: q.bytes, blocks: q.blocks.slice(), entries: index.entryCount };
    assert.throws(() => index.push(q, 1000 * count - 1, 100), (e: unknown) => e instanceof InvariantError && /positions grow/.test(e.message));
    assert.deepEqual({ end: q.end, bytes: q.bytes, blocks: q.blocks.slice(), entries: index.entryCount }, before);
    index.push(q, 1000 * count, 100); // equal to the last is allowed (damaged entries share a position)
  }
  assert.equal(q.end, INDEX_BLOCK_ENTRIES + 1);
});
