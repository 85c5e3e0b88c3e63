import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageStore, nodeIo, type StoreFile, type StoreIo } from '../../src/store/index.js';
import { FaultyIo, closeAndRemove, crashSnapshot, payload, removeDir, tempDir } from './helpers.js';

test('group commit: concurrent appends to one queue get offsets in call order', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir });
  try {
    const calls: Promise<number>[] = [];
    for (let i = 0; i < 2000; i++) calls.push(s.append('orders', 7, payload('orders', 7, i, 50 + (i % 300))));
    const offsets = await Promise.all(calls);
    assert.deepEqual(offsets, offsets.map((_, i) => i));
    assert.equal(s.endOffset('orders', 7), 2000);
    for (let o = 0; o < 2000; o += 100) {
      const got = await s.getRange('orders', 7, o, 100);
      assert.equal(got.length, 100);
      got.forEach((b, k) => assert.deepEqual(b, payload('orders', 7, o + k, 50 + ((o + k) % 300))));
    }
    const st = s.stats();
    assert.equal(st.messagesWritten, 2000);
    assert.ok(st.meanBatchMessages > 1, `appends issued together share flushes (mean ${st.meanBatchMessages})`);
    assert.ok(st.syncs < 2000, `fewer syncs than appends (${st.syncs})`);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('group commit: many producers on many queues, across segment roll-overs: every queue contiguous and byte-exact', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir, segmentBytes: 256 * 1024, maxMessageBytes: 32 * 1024 });
  const expected = new Map<string, number>();
  try {
    // Offsets are only known at call time, so producers record (topic, queue, offset, size) as they go.
    const log: { topic: string; q: number; offset: number; size: number }[] = [];
    const run = async (p: number): Promise<void> => {
      for (let i = 0; i < 150; i++) {
        const topic = `t${(p + i) % 3}`;
        const q = (p * 7 + i) % 11;
        const key = `${topic}/${q}`;
        const next = expected.get(key) ?? 0;
        expected.set(key, next + 1);
        const size = 100 + ((p * 131 + i * 17) % 9000);
        const offset = await s.append(topic, q, payload(topic, q, next, size));
        assert.equal(offset, next, 'offset is the one due at call time');
        log.push({ topic, q, offset, size });
      }
    };
    await Promise.all(Array.from({ length: 40 }, (_, p) => run(p)));
    assert.ok(s.stats().segments > 3, 'the log rolled over several segments');
    for (const { topic, q, offset, size } of log) {
      const [got] = await s.getRange(topic, q, offset, 1);
      assert.deepEqual(got, payload(topic, q, offset, size), `${topic}/${q}@${offset}`);
    }
    for (const [key, n] of expected) {
      const [topic, q] = key.split('/');
      assert.equal(s.endOffset(topic, Number(q)), n);
    }
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('group commit: an append is invisible to readers until durable, then visible', async () => {
  const dir = tempDir();
  const io = new FaultyIo();
  const s = await MessageStore.open({ dir, io });
  try {
    await s.append('t', 0, Buffer.from('a'));
    let release!: () => void;
    io.datasyncGate = new Promise<void>((r) => (release = r));
    let done = false;
    const p = s.append('t', 0, Buffer.from('b')).then((o) => {
      done = true;
      return o;
    });
    // Give the flush time to write and reach the (held) fdatasync.
    for (let i = 0; i < 20 && io.calls.writev < 2; i++) await new Promise((r) => setTimeout(r, 10));
    assert.equal(done, false, 'not acknowledged before its sync');
    assert.equal(s.endOffset('t', 0), 2, 'its offset is taken');
    assert.deepEqual(await s.getRange('t', 0, 0, 10), [Buffer.from('a')], 'readers see only durable records');
    io.datasyncGate = null;
    release();
    assert.equal(await p, 1);
    assert.deepEqual(await s.getRange('t', 0, 0, 10), [Buffer.from('a'), Buffer.from('b')]);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test("group commit: sync 'interval' acknowledges on write, syncs on a timer and at close", async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir, sync: { mode: 'interval', intervalMs: 20 } });
  try {
    const offsets = await Promise.all(Array.from({ length: 300 }, (_, i) => s.append('t', i % 3, payload('t', i % 3, Math.floor(i / 3), 200))));
    assert.deepEqual(offsets, offsets.map((_, i) => Math.floor(i / 3)));
    // The timer fires every 20 ms; give a loaded machine plenty of time for the sync itself.
    for (let i = 0; i < 500 && s.stats().syncs === 0; i++) await new Promise((r) => setTimeout(r, 20));
    assert.ok(s.stats().syncs >= 1, 'the timer synced');
  } finally {
    await s.close();
  }
  const again = await MessageStore.open({ dir });
  try {
    for (let q = 0; q < 3; q++) {
      const got = await again.getRange('t', q, 0, 100);
      assert.equal(got.length, 100);
      got.forEach((b, k) => assert.deepEqual(b, payload('t', q, k, 200)));
    }
  } finally {
    await again.close();
    removeDir(dir);
  }
});

test('group commit: data is copied before append returns, so the caller may reuse its buffer at once', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir });
  try {
    const scratch = Buffer.alloc(64);
    const pending: Promise<number>[] = [];
    for (let i = 0; i < 50; i++) {
      scratch.fill(i);
      pending.push(s.append('t', 0, scratch));
    }
    scratch.fill(0xff);
    await Promise.all(pending);
    const got = await s.getRange('t', 0, 0, 100);
    got.forEach((b, i) => assert.deepEqual(b, Buffer.alloc(64, i)));
  } finally {
    await s.close();
    removeDir(dir);
  }
});

/**
 * Closed-loop producers: `producers` appends go together in one flush (round 1); once
 * acknowledged, `rejoin` of them append again at once (round 2). Returns what the seam saw from
 * round 1's fdatasync completing on, with 'macrotask' marking a setImmediate queued at that
 * completion (so before the store's own), and round 2's writes and syncs.
 */
async function secondRound(producers: number, rejoin: number): Promise<{ events: string[]; writes: number; flushes: number }> {
  const dir = tempDir();
  const io = new FaultyIo();
  const s = await MessageStore.open({ dir, io });
  try {
    await s.append('t', 0, Buffer.from('warm-up')); // topic id durable, segment open
    // Round 1 waits behind a held flush, so its appends all go in one flush.
    let release!: () => void;
    io.datasyncGate = new Promise<void>((r) => (release = r));
    // Counted before the append, so the wait below holds whether or not its write starts within the call.
    const w0 = io.calls.writev;
    const held = s.append('t', 0, Buffer.from('held'));
    const events: string[] = [];
    let done = 0;
    io.trace = (e) => {
      // The first completion is the held flush; the second is round 1's.
      if (e === 'datasync-done' && ++done === 2) setImmediate(() => events.push('macrotask'));
      if (done >= 2) events.push(e);
    };
    while (io.calls.writev === w0) await new Promise((r) => setImmediate(r)); // held flush written
    const round = Promise.all(
      Array.from({ length: producers }, async (_, p) => {
        const o = await s.append('t', p, payload('t', p, 0, 100));
        assert.equal(o, p === 0 ? 2 : 0);
        if (p < rejoin) await s.append('t', p, payload('t', p, 1, 100));
      }),
    );
    release();
    await held;
    await round;
    // Round 2's flushes: the writes seen after round 1's sync completed.
    return { events, writes: events.filter((e) => e === 'writev').length, flushes: events.filter((e) => e === 'datasync-done').length - 1 };
  } finally {
    await s.close();
    removeDir(dir);
  }
}

test('group commit: once every producer of the last commit has appended again, their flush starts at once', async () => {
  const { events, writes, flushes } = await secondRound(6, 6);
  assert.equal(writes, 1, 'round 2 is one flush');
  assert.equal(flushes, 1);
  // The second round's write starts in the same turn as the acknowledgements, before any
  // callback that was already waiting (a reader's completed pread, here a setImmediate).
  assert.deepEqual(events.slice(0, 3), ['datasync-done', 'writev', 'macrotask'], events.join(' '));
});

test('group commit: while producers of the last commit are still missing, the next flush waits one macrotask for them', async () => {
  const { events, writes, flushes } = await secondRound(6, 4);
  assert.deepEqual(events.slice(0, 3), ['datasync-done', 'macrotask', 'writev'], events.join(' '));
  assert.equal(writes, 1, 'the 4 that came back share one flush');
  assert.equal(flushes, 1);
});

test('group commit: segments smaller than a flush: one flush needing two new segments and the next flush behind it create them in log order, every append succeeds', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir, segmentBytes: 16 * 1024, maxMessageBytes: 2000 });
  try {
    const results = await Promise.allSettled(Array.from({ length: 300 }, (_, i) => s.append('t', 0, payload('t', 0, i, 1000))));
    assert.deepEqual(results.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)).slice(0, 3), []);
    assert.equal(s.writeError(), null);
    for (let o = 0; o < 300; o += 100) {
      const got = await s.getRange('t', 0, o, 100);
      got.forEach((b, k) => assert.ok(b.equals(payload('t', 0, o + k, 1000)), `offset ${o + k}`));
    }
    assert.equal(await s.append('t', 0, Buffer.from('next')), 300);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('group commit: kill -9 while the flush of a segment\'s tail is in flight and the next one starts a new segment: the new segment is written only after, so no hole and no unacknowledged record behind one', async () => {
  const dir = tempDir();
  let holdFirst: Promise<void> | null = null;
  const firstSegment = '00000000000000000000.seg';
  // The real files, with the first segment's durable writes held while holdFirst is pending.
  const io: StoreIo = {
    ...nodeIo,
    nativeReads: nodeIo.nativeReads,
    directWrites: nodeIo.directWrites,
    async open(path, mode) {
      const inner = await nodeIo.open(path, mode);
      if (!path.endsWith(firstSegment)) return inner;
      const held = async (write: () => Promise<void>): Promise<void> => {
        if (holdFirst) await holdFirst;
        return write();
      };
      const file: StoreFile = {
        writev: (bufs, position) => held(() => inner.writev(bufs, position)),
        read: (buf, offset, length, position) => inner.read(buf, offset, length, position),
        readBatch: (bufs, positions, options) => inner.readBatch(bufs, positions, options),
        datasync: () => inner.datasync(),
        truncate: (length) => inner.truncate(length),
        size: () => inner.size(),
        close: () => inner.close(),
      };
      if (inner.writeDurable) {
        const durable = inner.writeDurable.bind(inner);
        file.writeDurable = (bufs, position) => held(() => durable(bufs, position));
      }
      return file;
    },
  };
  const SEGMENT = 1 << 20;
  const s = await MessageStore.open({ dir, io, segmentBytes: SEGMENT, maxMessageBytes: 4000 });
  const copies: string[] = [];
  let release: () => void = () => {};
  try {
    for (let i = 0; i < 5; i++) await s.append('t', 1, payload('t', 1, i, 1000));
    for (let n = 0; 5 * 1036 + (n + 1) * 1036 <= SEGMENT - 2200; n++) await s.append('t', 0, payload('t', 0, n, 1000));
    holdFirst = new Promise<void>((r) => (release = r));
    // t/1 offset 5 fits the first segment's tail (held); offset 6 does not, nor do t/2's, which
    // are enough for a second flush to launch into the new segment meanwhile.
    const pending = [s.append('t', 1, payload('t', 1, 5, 1000)), s.append('t', 1, payload('t', 1, 6, 2000))];
    for (let i = 0; i < 140; i++) pending.push(s.append('t', 2, payload('t', 2, i, 1000)));
    for (const p of pending) p.catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
    copies.push(crashSnapshot(dir)); // kill -9 now
    release();
    await Promise.allSettled(pending);
    const re = await MessageStore.open({ dir: copies[0] });
    try {
      assert.equal(re.recovery.damagedOffsets, 0, JSON.stringify(re.recovery.damage));
      assert.equal(re.endOffset('t', 1), 5, 'nothing of t/1 past what was acknowledged');
      assert.equal(re.endOffset('t', 2), 0, 't/2 was never acknowledged: none of it is behind a hole');
      assert.equal((await re.getRange('t', 1, 0, 10)).length, 5);
    } finally {
      await re.close();
    }
  } finally {
    release();
    await closeAndRemove(s, dir, copies);
  }
});
