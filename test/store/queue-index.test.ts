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
    | { kind: 'bulk'; q: number; count: number; len: number }
    | { kind: 'reserve'; q: number; count: number; len: number }
    | { kind: 'pop'; q: number } | { kind: 'advance'; q: number; by: number } | { kind: 'trim'; below: number }
    | { kind: 'reset'; q: number; to: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    { weight: 6, arbitrary: fc.record({ kind: fc.constant('push' as const), q: fc.nat({ max: 4 }), len: fc.integer({ min: 36, max: 2000 }) }) },
    // Long enough to move a block list through every slab class and out to a list of its own.
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('bulk' as const), q: fc.nat({ max: 4 }), count: fc.nat({ max: 700 }), len: fc.integer({ min: 36, max: 2000 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('reserve' as const), q: fc.nat({ max: 4 }), count: fc.nat({ max: 30 }), len: fc.integer({ min: 36, max: 2000 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('pop' as const), q: fc.nat({ max: 4 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('advance' as const), q: fc.nat({ max: 4 }), by: fc.nat({ max: 600 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('trim' as const), below: fc.nat({ max: 4_000_000 }) }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('reset' as const), q: fc.nat({ max: 4 }), to: fc.nat({ max: 1000 }) }) },
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 400 }), (ops) => {
      const index = new QueueIndex();
      const model = new Map<number, { start: number; entries: [number, number][] }>();
      let pos = 0;
      /** Appends `count` entries of `len` bytes to queue `qid` of topic 1, in the index and the model. */
      const append = (qid: number, count: number, len: number, reserveFirst: boolean): void => {
        const q = index.getOrCreate(1, qid);
        const m = model.get(qid) ?? { start: 0, entries: [] };
        model.set(qid, m);
        if (reserveFirst) index.reserve(q, count);
        for (let k = 0; k < count; k++) {
          index.push(q, pos, len);
          m.entries.push([pos, len]);
          pos += len;
        }
      };
      for (const o of ops) {
        if (o.kind === 'push') {
          append(o.q, 1, o.len, false);
        } else if (o.kind === 'bulk') {
          append(o.q, o.count, o.len, false);
        } else if (o.kind === 'reset') {
          // Retention emptied the queue; it begins again further on (resetEmpty's contract).
          const q = index.find(1, o.q);
          const m = model.get(o.q);
          if (q === undefined || !m) continue;
          index.advanceStart(q, index.endOf(q));
          const from = index.endOf(q) + o.to;
          index.resetEmpty(q, from);
          m.entries = [];
          m.start = from;
        } else if (o.kind === 'reserve') {
          // What a checkpoint load does: room for `count` entries, then exactly that many pushes.
          append(o.q, o.count, o.len, true);
        } else if (o.kind === 'pop') {
          const q = index.find(1, o.q);
          const m = model.get(o.q);
          if (q === undefined || !m || index.endOf(q) === index.startOf(q)) continue;
          index.pop(q);
          m.entries.pop();
        } else if (o.kind === 'advance') {
          const q = index.find(1, o.q);
          const m = model.get(o.q);
          if (q === undefined || !m) continue;
          const to = Math.min(index.endOf(q), index.startOf(q) + o.by);
          m.entries.splice(0, to - index.startOf(q));
          m.start = to;
          index.advanceStart(q, to);
        } else {
          index.trimBelow(o.below);
          // The trim deleted segments below `below`, so the log's end (the next push) is past it.
          pos = Math.max(pos, o.below);
          for (const m of model.values()) {
            let drop = 0;
            while (drop < m.entries.length && m.entries[drop][0] < o.below) drop++;
            m.entries.splice(0, drop);
            m.start += drop;
          }
        }
      }
      for (const [qid, m] of model) {
        const q = index.find(1, qid);
        assert.ok(q !== undefined);
        assert.equal(index.startOf(q), m.start);
        assert.equal(index.endOf(q), m.start + m.entries.length);
        assert.equal(index.bytesOf(q), m.entries.reduce((n, e) => n + e[1], 0));
        // The first block begins at the multiple of INDEX_BLOCK_ENTRIES at or below start; an
        // emptied queue holds at most the block its next entry goes to.
        const used = Math.ceil((index.endOf(q) - (m.start - (m.start % INDEX_BLOCK_ENTRIES))) / INDEX_BLOCK_ENTRIES);
        if (m.entries.length > 0) assert.equal(index.blockCountOf(q), used, 'blocks held = blocks used');
        else assert.ok(index.blockCountOf(q) <= used, 'an empty queue holds no more than its next block');
        m.entries.forEach(([p, l], k) => {
          assert.equal(index.positionOf(q, m.start + k), p);
          assert.equal(index.lengthOf(q, m.start + k), l);
        });
        if (m.entries.length > 0) assert.equal(index.lastPositionOf(q), m.entries[m.entries.length - 1][0], 'the row keeps its last position');
        // What a checkpoint asks: how far the entries below a position go (the row answers most).
        for (const at of [0, pos, pos + 1, ...m.entries.flatMap(([p]) => [p, p + 1])]) {
          const below = m.entries.filter(([p]) => p < at).length;
          assert.equal(index.countBelow(q, at), m.start + below, `countBelow ${at}`);
        }
      }
    }),
    { numRuns: 200 },
  );
  assert.equal(DAMAGED_LENGTH, 0);
});

test('queue index (property): long queues (block lists of their own, past the slabs) keep every entry through drops at the front', () => {
  // The property above mostly builds short queues; a list leaves the slabs past 64 blocks (512
  // entries), and its front drops shift it in place. Checked after every step.
  type Op = { kind: 'bulk'; count: number } | { kind: 'advance'; by: number } | { kind: 'pop'; count: number } | { kind: 'reserve'; count: number };
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant('bulk' as const), count: fc.integer({ min: 100, max: 1500 }) }),
    fc.record({ kind: fc.constant('reserve' as const), count: fc.integer({ min: 100, max: 1500 }) }),
    fc.record({ kind: fc.constant('advance' as const), by: fc.integer({ min: 1, max: 900 }) }),
    fc.record({ kind: fc.constant('pop' as const), count: fc.integer({ min: 1, max: 20 }) }),
  );
  fc.assert(
    fc.property(fc.array(op, { minLength: 2, maxLength: 12 }), (ops) => {
      const index = new QueueIndex();
      const other = index.getOrCreate(0, 0); // a neighbour whose list must not change
      index.push(other, 0, 40);
      const q = index.getOrCreate(0, 1);
      let model: number[] = [];
      let start = 0;
      let pos = 100;
      for (const o of ops) {
        if (o.kind === 'bulk' || o.kind === 'reserve') {
          if (o.kind === 'reserve') index.reserve(q, o.count);
          for (let k = 0; k < o.count; k++) {
            index.push(q, pos, 36 + (k % 7));
            model.push(pos);
            pos += 36 + (k % 7);
          }
        } else if (o.kind === 'advance') {
          const by = Math.min(o.by, model.length);
          index.advanceStart(q, start + by);
          model = model.slice(by);
          start += by;
        } else {
          const n = Math.min(o.count, model.length);
          for (let k = 0; k < n; k++) index.pop(q);
          model.length -= n;
        }
        assert.equal(index.startOf(q), start);
        assert.equal(index.endOf(q), start + model.length);
        model.forEach((p, k) => assert.equal(index.positionOf(q, start + k), p));
        if (model.length > 0) {
          assert.equal(index.lastPositionOf(q), model[model.length - 1]);
          const mid = model[model.length >> 1];
          assert.equal(index.countBelow(q, mid), start + (model.length >> 1));
        }
        assert.equal(index.positionOf(other, 0), 0);
      }
    }),
    { numRuns: 60 },
  );
});

test('queue index: about 13 bytes per message in typed arrays (entries and block lists), no per-message objects', () => {
  const index = new QueueIndex();
  const queues = Array.from({ length: 1000 }, (_, q) => index.getOrCreate(3, q));
  const before = process.memoryUsage().arrayBuffers;
  const n = 1_000_000;
  for (let i = 0; i < n; i++) index.push(queues[i % 1000], i * 100, 100);
  const typedBytes = process.memoryUsage().arrayBuffers - before;
  assert.equal(index.entryCount, n);
  // 12 bytes an entry (entry pages of 65,536: 12.58 for 1 M), half a byte of block list (1,000
  // lists of 125 blocks in 128 slots), the slab pages of the smaller lists they grew through.
  assert.ok(typedBytes / n <= 14, `typed-array bytes per message: ${(typedBytes / n).toFixed(2)}`);
  // Per queue only a list of block numbers: one number per 8 messages.
  const blockNumbers = queues.reduce((k, q) => k + index.blockCountOf(q), 0);
  assert.equal(blockNumbers, n / 8);
  assert.equal(index.positionOf(queues[7], 999), 999_007 * 100);
  assert.equal(index.lengthOf(queues[7], 999), 100);
});

/**
 * Bytes per queue of a QueueIndex built in a fresh process (`--expose-gc`): JS heap plus typed
 * arrays, minus the entry pages (12 bytes per message, counted apart). A fresh process, because
 * one that has run other code measures that history too (in the object-per-queue index, a field
 * once given a non-small-integer value was boxed in every queue after: 16 bytes per field).
 */
function bytesPerQueue(c: { messages: number; load: 'appends' | 'checkpoint'; ids: 'dense' | 'sparse' }): { heap: number; typed: number } {
  const code = `
    const { QueueIndex } = await import(${JSON.stringify(new URL('../../src/store/queue-index.js', import.meta.url).href)});
    const { INDEX_BLOCK_ENTRIES, INDEX_PAGE_BLOCKS } = await import(${JSON.stringify(new URL('../../src/store/constants.js', import.meta.url).href)});
    const c = ${JSON.stringify(c)};
    // Enough queues that what else the process allocates meanwhile is a byte or two per queue.
    const n = 300_000;
    const idOf = (q) => (c.ids === 'dense' ? Math.floor(q / 100) : q);
    gc();
    const before = process.memoryUsage();
    const index = new QueueIndex();
    let refs = Array.from({ length: n }, (_, q) => index.getOrCreate(q % 100, idOf(q)));
    if (c.load === 'appends') {
      // Round-robin, as a log interleaves its queues: every queue's block list grows step by step.
      for (let k = 0; k < c.messages; k++) for (let q = 0; q < n; q++) index.push(refs[q], (k * n + q) * 100, 100);
    } else {
      // Queue by queue, each count known first, as a checkpoint loads.
      for (let q = 0; q < n; q++) {
        index.reserve(refs[q], c.messages);
        for (let k = 0; k < c.messages; k++) index.push(refs[q], (k * n + q) * 100, 100);
      }
    }
    let blocks = 0;
    for (const q of refs) blocks += index.blockCountOf(q);
    refs = null;
    // Typed arrays given up (columns and lists that grew) are freed by a sweeper after the GC.
    for (let i = 0; i < 3; i++) {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const after = process.memoryUsage();
    const entryPageBytes = Math.ceil(blocks / INDEX_PAGE_BLOCKS) * INDEX_PAGE_BLOCKS * INDEX_BLOCK_ENTRIES * 12;
    const heap = (after.heapUsed - before.heapUsed) / n;
    const typed = (after.arrayBuffers - before.arrayBuffers - entryPageBytes) / n;
    const last = index.find(7, idOf(299_907));
    const ok = index.queueCount === n && index.entryCount === n * c.messages &&
      index.positionOf(last, c.messages - 1) === ((c.messages - 1) * n + 299_907) * 100;
    process.stdout.write(JSON.stringify({ heap, typed, ok }));
  `;
  const r = spawnSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', code], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const out = JSON.parse(r.stdout) as { heap: number; typed: number; ok: boolean };
  assert.ok(out.ok, `${JSON.stringify(c)}: the index built holds what was pushed`);
  return out;
}

test('queue index: a queue of a few messages costs under 120 bytes, heap and typed arrays together (queues are rows of a typed array)', () => {
  // 500,000 queues of 1-8 messages is the challenge's shape (the benchmark's --full has about 20
  // per queue): per-queue overhead is what counts. Measured, heap + typed arrays: 13 + 95 bytes
  // with 4 or 20 messages (a 64-byte row, plus rows allocated ahead: 371,712 for 300,000 queues,
  // which the OS backs only once written; a 4-slot block list 16; the topic array's slot 8),
  // 23 + 128 with 60 (an 8-slot list, and the 4-slot one it left for the next queue that
  // grows), 39 + 95 with sparse ids (a Map entry each). An object and a JS block list per
  // queue, as before, cost 156-172 bytes of heap, 183-199 in a Map.
  const cases = [
    { messages: 4, load: 'appends', ids: 'dense', bound: 120 },
    { messages: 20, load: 'appends', ids: 'dense', bound: 120 },
    { messages: 20, load: 'checkpoint', ids: 'dense', bound: 120 },
    { messages: 60, load: 'appends', ids: 'dense', bound: 165 },
    // Ids 100 apart within a topic: they go to the topic's Map.
    { messages: 20, load: 'appends', ids: 'sparse', bound: 150 },
  ] as const;
  for (const c of cases) {
    const m = bytesPerQueue(c);
    assert.ok(m.heap + m.typed < c.bound, `${c.messages} messages per queue, ${c.load}, ${c.ids} ids: bytes per queue ${m.heap.toFixed(0)} of heap + ${m.typed.toFixed(0)} typed`);
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
        assert.equal(index.topicIdOf(q), topicId);
        assert.equal(index.queueIdOf(q), queueId);
        assert.equal(index.getOrCreate(topicId, queueId), q, 'the same queue on a second call');
        model.set(`${topicId}/${queueId}`, { topicId, queueId });
      }
      assert.equal(index.queueCount, model.size);
      const listed = [...index.all()].map((q) => `${index.topicIdOf(q)}/${index.queueIdOf(q)}`);
      assert.equal(listed.length, model.size, 'each queue listed once');
      assert.deepEqual(new Set(listed), new Set(model.keys()));
      const idOf = (topicId: number, queueId: number): number | undefined => {
        const q = index.find(topicId, queueId);
        return q === undefined ? undefined : index.queueIdOf(q);
      };
      for (const { topicId, queueId } of model.values()) assert.equal(idOf(topicId, queueId), queueId);
      assert.equal(index.find(6, 0), undefined);
      for (const [topicId, queueId] of keys) assert.equal(idOf(topicId, queueId + 1) ?? queueId + 1, queueId + 1);
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
    for (let i = index.endOf(q); i < count; i++) index.push(q, 1000 * (i + 1), 100);
    const state = (): object => ({ end: index.endOf(q), bytes: index.bytesOf(q), blocks: index.blockCountOf(q), entries: index.entryCount });
    const before = state();
    assert.throws(() => index.push(q, 1000 * count - 1, 100), (e: unknown) => e instanceof InvariantError && /positions grow/.test(e.message));
    assert.deepEqual(state(), before);
    index.push(q, 1000 * count, 100); // equal to the last is allowed (damaged entries share a position)
  }
  assert.equal(index.endOf(q), INDEX_BLOCK_ENTRIES + 1);

  // Below the last trim (a deleted segment's range) on any queue, a new one included.
  index.trimBelow(50_000);
  const fresh = index.getOrCreate(0, 1);
  const before = index.entryCount;
  assert.throws(() => index.push(fresh, 49_999, 100), (e: unknown) => e instanceof InvariantError && /above the last trim/.test(e.message));
  assert.equal(index.entryCount, before);
  assert.equal(index.endOf(fresh), 0);
  index.push(fresh, 50_000, 100);
});

test('queue index: a trim at or below the last one walks no queue and changes nothing', () => {
  const index = new QueueIndex();
  const queues = Array.from({ length: 50 }, (_, i) => index.getOrCreate(i % 3, i));
  let pos = 0;
  for (let k = 0; k < 20; k++) for (const q of queues) index.push(q, (pos += 100), 100);
  index.trimBelow(40_000);
  const trims = index.trims;
  const starts = queues.map((q) => index.startOf(q));
  assert.ok(starts.some((s) => s > 0), 'the first trim dropped entries');
  index.trimBelow(40_000);
  index.trimBelow(10);
  assert.equal(index.trims, trims, 'no queue was advanced');
  assert.deepEqual(queues.map((q) => index.startOf(q)), starts);
  index.trimBelow(60_000);
  assert.ok(index.trims > trims, 'a higher trim still drops entries');
  assert.ok(queues.every((q) => index.startOf(q) === index.endOf(q) || index.positionOf(q, index.startOf(q)) >= 60_000));
});
