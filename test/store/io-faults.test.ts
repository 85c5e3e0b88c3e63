import { test } from 'node:test';
import assert from 'node:assert/strict';
import { statSync } from 'node:fs';
import { MessageStore, StoreIoError, StoreNoSpaceError, verifyStore } from '../../src/store/index.js';
import { FaultyIo, crashSnapshot, descriptorsUnder, payload, removeDir, segmentFiles, tempDir } from './helpers.js';

const isNoSpace = (e: unknown): boolean => e instanceof StoreNoSpaceError && e.code === 'CIRRUS_STORE_NO_SPACE';
const isIo = (e: unknown): boolean => e instanceof StoreIoError && e.code === 'CIRRUS_STORE_IO';

async function readAll(s: MessageStore, topic: string, q: number): Promise<Buffer[]> {
  const out: Buffer[] = [];
  for (;;) {
    const got = await s.getRange(topic, q, out.length, 100);
    if (got.length === 0) return out;
    out.push(...got);
  }
}

// Both ways a flush reaches the segment file: the store's durable write (O_DIRECT write and
// fdatasync in one native call, io.ts) and, without it, writev then fdatasync.
for (const durableWrites of [true, false]) {
  const via = durableWrites ? '' : ' (writes through the page cache)';
  for (const torn of [0, 700]) {
    test(`io faults: ENOSPC on write${torn ? ' after a torn partial write' : ''} rejects the batch typed, rolls it back, and later appends succeed${via}`, async () => {
      const dir = tempDir();
      const io = new FaultyIo({ durableWrites });
      const s = await MessageStore.open({ dir, io });
      try {
        for (let i = 0; i < 10; i++) await s.append('t', 0, payload('t', 0, i, 300));
        io.inject({ op: 'writev', code: 'ENOSPC', pathIncludes: '.seg', tornBytes: torn });
        const batch = Array.from({ length: 20 }, (_, i) => s.append('t', i % 2, payload('t', i % 2, 100 + i, 300)));
        const results = await Promise.allSettled(batch);
        assert.ok(results.some((r) => r.status === 'rejected'), 'the failed flush rejects');
        for (const r of results) if (r.status === 'rejected') assert.ok(isNoSpace(r.reason), String(r.reason));
        const accepted = results.filter((r) => r.status === 'fulfilled').length;
        // Offsets given to rejected appends are taken back; nothing half-written is visible.
        const q0 = await readAll(s, 't', 0);
        assert.equal(s.endOffset('t', 0), q0.length);
        assert.deepEqual(q0.slice(0, 10), Array.from({ length: 10 }, (_, i) => payload('t', 0, i, 300)));
        assert.equal(s.endOffset('t', 0) + s.endOffset('t', 1), 10 + accepted);
        // The rollback cuts the file where the last accepted record ends (no padding after a cut).
        assert.equal(statSync(segmentFiles(dir)[0]).size, (10 + accepted) * 336, 'the torn bytes were cut');
        assert.ok(s.writeError() instanceof StoreNoSpaceError, 'the error is remembered');
        // Space is back: the next append succeeds, offsets contiguous.
        const next = s.endOffset('t', 0);
        assert.equal(await s.append('t', 0, payload('t', 0, 999, 300)), next);
        assert.equal(s.writeError(), null);
        assert.deepEqual((await s.getRange('t', 0, next, 1))[0], payload('t', 0, 999, 300));
      } finally {
        await s.close();
      }
      const again = await MessageStore.open({ dir });
      try {
        assert.deepEqual(again.recovery.damage, []);
        assert.equal((await readAll(again, 't', 0)).length, again.endOffset('t', 0));
      } finally {
        await again.close();
      }
      assert.equal((await verifyStore(dir)).ok, true);
      removeDir(dir);
    });
  }

  test(`io faults: EIO on fdatasync rejects typed and is sticky until reopen; reads stay available${via}`, async () => {
    const dir = tempDir();
    const io = new FaultyIo({ durableWrites });
    const s = await MessageStore.open({ dir, io });
    try {
      for (let i = 0; i < 5; i++) await s.append('t', 0, payload('t', 0, i, 100));
      io.inject({ op: 'datasync', code: 'EIO', pathIncludes: '.seg' });
      await assert.rejects(s.append('t', 0, payload('t', 0, 5, 100)), isIo);
      assert.equal(s.endOffset('t', 0), 5);
      await assert.rejects(s.append('t', 0, payload('t', 0, 5, 100)), isIo, 'later appends fail with the remembered error');
      await assert.rejects(s.append('other', 1, Buffer.from('x')), isIo);
      assert.equal((await readAll(s, 't', 0)).length, 5);
    } finally {
      await s.close();
    }
    const again = await MessageStore.open({ dir });
    try {
      assert.equal(again.endOffset('t', 0), 5);
      assert.equal(await again.append('t', 0, payload('t', 0, 5, 100)), 5);
      const all = await readAll(again, 't', 0);
      all.forEach((b, i) => assert.deepEqual(b, payload('t', 0, i, 100)));
    } finally {
      await again.close();
      removeDir(dir);
    }
  });

  test(`io faults: ENOSPC while rolling into a new segment removes the new segment and rolls back${via}`, async () => {
    const dir = tempDir();
    const io = new FaultyIo({ durableWrites });
    const s = await MessageStore.open({ dir, io, segmentBytes: 16 * 1024, maxMessageBytes: 2048 });
    try {
      // Fill the first segment to near its end.
      let n = 0;
      while (s.stats().segments === 1 && n < 13) await s.append('t', 0, payload('t', 0, n++, 1200));
      const segsBefore = segmentFiles(dir).length;
      io.inject({ op: 'writev', code: 'ENOSPC', pathIncludes: '.seg', times: 5 });
      const results = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => s.append('t', 0, payload('t', 0, n + i, 1200))));
      assert.ok(results.every((r) => r.status === 'rejected' && isNoSpace(r.reason)));
      assert.equal(s.endOffset('t', 0), n);
      assert.equal(segmentFiles(dir).length, segsBefore);
      io.clear();
      const more = await Promise.all(Array.from({ length: 6 }, (_, i) => s.append('t', 0, payload('t', 0, n + i, 1200))));
      assert.deepEqual(more, [n, n + 1, n + 2, n + 3, n + 4, n + 5]);
      const all = await readAll(s, 't', 0);
      all.forEach((b, i) => assert.deepEqual(b, payload('t', 0, i, 1200)));
    } finally {
      await s.close();
    }
    assert.equal((await verifyStore(dir, { maxMessageBytes: 2048 })).ok, true);
    removeDir(dir);
  });
}

test('io faults: a failed topic-dictionary write rejects the appends naming the new topic; they succeed later', async () => {
  const dir = tempDir();
  const io = new FaultyIo();
  const s = await MessageStore.open({ dir, io });
  try {
    await s.append('old', 0, Buffer.from('a'));
    io.inject({ op: 'writev', code: 'ENOSPC', pathIncludes: 'topics.dict' });
    await assert.rejects(s.append('fresh', 0, Buffer.from('b')), isNoSpace);
    assert.equal(s.endOffset('fresh', 0), 0);
    assert.equal(await s.append('fresh', 0, Buffer.from('c')), 0);
    assert.equal(await s.append('old', 0, Buffer.from('d')), 1);
  } finally {
    await s.close();
  }
  const again = await MessageStore.open({ dir });
  try {
    assert.deepEqual(await again.getRange('fresh', 0, 0, 10), [Buffer.from('c')]);
    assert.deepEqual(await again.getRange('old', 0, 0, 10), [Buffer.from('a'), Buffer.from('d')]);
  } finally {
    await again.close();
    removeDir(dir);
  }
});

test('io faults: a rejected append to a new topic lists nothing, and a full checkpoint taken meanwhile names only durable topics, so the reopen uses it (a queue retention emptied keeps its end)', async () => {
  const dir = tempDir();
  const io = new FaultyIo();
  const opts = { segmentBytes: 16 * 1024, maxMessageBytes: 1024, retention: { maxTotalBytes: 48 * 1024 } };
  const s = await MessageStore.open({ dir, io, ...opts });
  try {
    for (let i = 0; i < 5; i++) await s.append('x', 0, payload('x', 0, i, 100));
    // Retention deletes every record of x: only the checkpoints remember where x ends.
    for (let n = 0; s.queues('x')[0].startOffset < 5 && n < 5000; n++) await s.append('f', 0, Buffer.alloc(900));
    assert.deepEqual(s.queues('x').map((q) => [q.startOffset, q.endOffset]), [[5, 5]]);
    const topicsBefore = s.topics();
    const queuesBefore = s.queues();
    const counts = () => {
      const st = s.stats();
      return { topics: st.topics, queues: st.queues, messagesWritten: st.messagesWritten, bytesWritten: st.bytesWritten };
    };
    const countsBefore = counts();
    assert.deepEqual([countsBefore.topics, countsBefore.queues], [topicsBefore.length, queuesBefore.length]);
    io.inject({ op: 'writev', code: 'ENOSPC', pathIncludes: '.seg' });
    await assert.rejects(s.append('x', 7, Buffer.from('hello')), isNoSpace);
    io.inject({ op: 'writev', code: 'ENOSPC', pathIncludes: 'topics.dict' });
    await assert.rejects(s.append('new-topic', 0, Buffer.from('hello')), isNoSpace);
    // The rejected appends changed nothing a caller sees (new-topic's entry waits to be retried).
    assert.deepEqual(s.topics(), topicsBefore);
    assert.deepEqual(s.queues(), queuesBefore);
    assert.deepEqual(s.queues('new-topic'), []);
    assert.deepEqual(counts(), countsBefore);
    await s.checkpoint({ full: true });
  } finally {
    await s.close();
  }
  const again = await MessageStore.open({ dir, ...opts });
  try {
    assert.equal(again.recovery.checkpoint.used, true, again.recovery.checkpoint.reason);
    assert.equal(again.endOffset('x', 0), 5);
    assert.equal(await again.append('x', 0, Buffer.from('next')), 5, 'no offset of x is handed out twice');
    assert.deepEqual(again.topics().sort(), ['f', 'x']);
  } finally {
    await again.close();
    removeDir(dir);
  }
});

// A full checkpoint is renamed into place before the delta file is emptied: that last step
// failing must not leave later deltas chained to the old checkpoint (recovery would drop them,
// and with them the ends of queues whose records retention deleted on their strength).
for (const op of ['truncate', 'datasync', 'open'] as const) {
  test(`io faults: a full checkpoint whose delta file cannot be emptied (${op} fails) rejects, and the checkpoints after it still cover what retention deletes, after a crash and after a clean close`, async () => {
    const dir = tempDir();
    const io = new FaultyIo({ durableWrites: false });
    const opts = { segmentBytes: 16 * 1024, maxMessageBytes: 1024, retention: { maxTotalBytes: 64 * 1024 }, recycleSegments: false };
    const s = await MessageStore.open({ dir, io, ...opts });
    const copies: string[] = [];
    try {
      // Many queues, so the full checkpoint is larger than the deltas and the next one is a delta.
      for (let i = 0; i < 300; i++) await s.append('f', i % 50, Buffer.alloc(10));
      for (let i = 0; i < 3; i++) await s.append('x', 0, payload('x', 0, i, 100));
      await s.checkpoint({ full: true });
      await s.append('y', 0, Buffer.alloc(10));
      await s.checkpoint();
      for (let i = 3; i < 6; i++) await s.append('x', 0, payload('x', 0, i, 100));
      io.inject({ op, code: 'EIO', pathIncludes: 'index.delta' });
      await assert.rejects(s.checkpoint({ full: true }), isIo);
      for (let i = 6; i < 9; i++) await s.append('x', 0, payload('x', 0, i, 100));
      // Retention deletes every segment holding x's records; only the checkpoints keep its end.
      for (let n = 0; s.queues('x')[0].startOffset < 9 && n < 5000; n++) await s.append('f', 0, Buffer.alloc(900));
      assert.deepEqual(s.queues('x').map((q) => [q.startOffset, q.endOffset]), [[9, 9]]);
      // Retention runs in the background after a roll-over: let it finish, so that the copy below
      // (file by file, not at one instant) is a state a kill -9 could leave.
      await s.applyRetention();
      copies.push(crashSnapshot(dir));
    } finally {
      await s.close();
    }
    try {
      for (const at of [copies[0], dir]) {
        const again = await MessageStore.open({ dir: at, ...opts });
        try {
          assert.equal(again.recovery.checkpoint.used, true, again.recovery.checkpoint.reason);
          assert.equal(again.endOffset('x', 0), 9, `${at === dir ? 'clean close' : 'crash'}: x keeps its end`);
          assert.equal(await again.append('x', 0, Buffer.from('next')), 9, 'no offset of x is handed out twice');
        } finally {
          await again.close();
        }
      }
    } finally {
      removeDir(dir);
      for (const c of copies) removeDir(c);
    }
  });
}

for (const recycleSegments of [false, true]) {
  test(`io faults: ENOSPC creating a new segment in a burst across several roll-overs rejects those appends only; later appends, the segment files and a reopen are whole (recycleSegments ${recycleSegments})`, async () => {
    const dir = tempDir();
    const io = new FaultyIo();
    const options = { dir, segmentBytes: 32 * 1024, maxMessageBytes: 24576, retention: { maxTotalBytes: 768 * 1024 }, recycleSegments };
    const s = await MessageStore.open({ ...options, io });
    const acked = new Map<number, Buffer>();
    const burst = async (n: number): Promise<PromiseSettledResult<number>[]> => {
      const bodies = Array.from({ length: n }, (_, i) => Buffer.alloc(3000, acked.size + i));
      const out = await Promise.allSettled(bodies.map((b) => s.append('t', 0, b)));
      out.forEach((r, i) => {
        if (r.status === 'fulfilled') acked.set(r.value, bodies[i]);
      });
      return out;
    };
    try {
      await burst(20);
      // The first new segment's file cannot be created; the burst spans several roll-overs, so
      // the creations of later segments are already chained behind it.
      io.inject({ op: 'open', code: 'ENOSPC', pathIncludes: '.seg' });
      const faulted = await burst(40);
      const rejected = faulted.filter((r) => r.status === 'rejected');
      assert.ok(rejected.length > 0, 'the appends for the missing segment were rejected');
      for (const r of rejected) assert.equal((r as PromiseRejectedResult).reason.code, 'CIRRUS_STORE_NO_SPACE');
      for (let round = 0; round < 3; round++) {
        const later = await burst(40);
        assert.deepEqual(later.filter((r) => r.status === 'rejected').map((r) => String((r as PromiseRejectedResult).reason)), [], `round ${round}`);
      }
      assert.equal(s.writeError(), null);
      // The files on disk are the segment set (no stray segment past a hole).
      assert.equal(segmentFiles(dir).length, s.stats().segments);
    } finally {
      await s.close();
    }
    const again = await MessageStore.open(options);
    try {
      assert.deepEqual(again.recovery.damage, []);
      const q = again.queues('t')[0];
      assert.equal(q.endOffset, Math.max(...acked.keys()) + 1);
      for (let o = q.startOffset; o < q.endOffset; o += 100) {
        const got = await again.getRange('t', 0, o, 100);
        got.forEach((b, k) => assert.ok(b.equals(acked.get(o + k) as Buffer), `offset ${o + k}`));
      }
    } finally {
      await again.close();
      removeDir(dir);
    }
  });
}

test('io faults: an I/O error during open rejects typed, releases the lock, and a later open works', async () => {
  const dir = tempDir();
  const first = await MessageStore.open({ dir });
  await first.append('t', 0, Buffer.from('kept'));
  await first.close();
  const io = new FaultyIo();
  io.inject({ op: 'open', code: 'EIO', pathIncludes: '.seg' });
  await assert.rejects(MessageStore.open({ dir, io }), isIo);
  const again = await MessageStore.open({ dir });
  try {
    assert.deepEqual(await again.getRange('t', 0, 0, 1), [Buffer.from('kept')]);
  } finally {
    await again.close();
    removeDir(dir);
  }
});

test('io faults: an open that fails after recovery (its retention pass cannot move a segment to the spare) leaves nothing running: no file of the store stays open, and a later open works', async () => {
  const dir = tempDir();
  const opts = { segmentBytes: 16 * 1024, maxMessageBytes: 1024 };
  const first = await MessageStore.open({ dir, ...opts });
  for (let i = 0; i < 200; i++) await first.append('x', i % 4, Buffer.alloc(500));
  await first.close();
  class SpareRenameFails extends FaultyIo {
    override rename(from: string, to: string): Promise<void> {
      if (to.endsWith('segment.spare')) return Promise.reject(Object.assign(new Error('EIO: injected rename failure'), { code: 'EIO' }));
      return super.rename(from, to);
    }
  }
  // What this process holds open inside the store directory (Linux: /proc/self/fd).
  const held = (): string[] => descriptorsUnder(dir);
  assert.deepEqual(held(), []);
  await assert.rejects(MessageStore.open({ dir, io: new SpareRenameFails(), ...opts, retention: { maxTotalBytes: 40 * 1024 } }), isIo);
  // Before, the half-opened store kept its segment and dictionary files, and its retention timer,
  // which went on deleting segments under the next store opened here.
  assert.deepEqual(held(), [], 'the failed open closed every file it opened');
  const again = await MessageStore.open({ dir, ...opts });
  try {
    assert.equal(again.endOffset('x', 0), 50);
    assert.equal((await again.getRange('x', 0, 0, 100)).length, 50);
  } finally {
    await again.close();
    removeDir(dir);
  }
});

test("io faults: sync 'interval' — appends waiting behind a flush when the periodic sync fails are rejected, not left pending forever", async () => {
  const dir = tempDir();
  const io = new FaultyIo();
  const s = await MessageStore.open({ dir, io, sync: { mode: 'interval', intervalMs: 20 } });
  try {
    assert.equal(await s.append('t', 0, Buffer.from('first')), 0);
    let release: () => void = () => {};
    io.datasyncGate = new Promise<void>((r) => (release = r));
    io.inject({ op: 'datasync', code: 'EIO', pathIncludes: '.seg' });
    // After three periods the sync of 'first' waits at the gate; B launches at once, C waits behind it.
    await new Promise((r) => setTimeout(r, 60));
    const settled = (p: Promise<number>) => p.then((o) => `resolved ${o}`, (e: unknown) => `rejected ${(e as { code?: string }).code}`);
    const b = settled(s.append('t', 0, Buffer.from('B')));
    const c = settled(s.append('t', 0, Buffer.from('C')));
    release();
    io.datasyncGate = null;
    const outcomes = await Promise.all([b, c]);
    assert.ok(s.writeError() instanceof StoreIoError, 'the periodic sync failed');
    assert.ok(outcomes.every((o) => o === 'resolved 1' || o === 'resolved 2' || o === 'rejected CIRRUS_STORE_IO'), outcomes.join(', '));
    // What resolved reads back; what was rejected left nothing behind.
    const resolved = outcomes.filter((o) => o.startsWith('resolved')).length;
    assert.equal(s.endOffset('t', 0), 1 + resolved);
    assert.deepEqual(await s.getRange('t', 0, 0, 10), [Buffer.from('first'), Buffer.from('B'), Buffer.from('C')].slice(0, 1 + resolved));
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test("io faults: sync 'interval' — ENOSPC on a flush across a roll-over removes the new segment, and the next periodic syncs and appends go on", async () => {
  const dir = tempDir();
  const io = new FaultyIo();
  const s = await MessageStore.open({ dir, io, segmentBytes: 4096, maxMessageBytes: 1024, sync: { mode: 'interval', intervalMs: 10 } });
  try {
    // Flight 1: the first record alone; flight 2: the rest of segment 0 and the start of segment 1,
    // whose write to segment 0 fails after segment 1's went through.
    io.inject({ op: 'writev', code: 'ENOSPC', pathIncludes: '00000000000000000000.seg', skip: 1 });
    const outcomes = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => s.append('t', 0, Buffer.alloc(1000, i))));
    assert.ok(outcomes.some((o) => o.status === 'rejected' && isNoSpace(o.reason)), 'the flush across the roll-over failed');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(s.writeError() instanceof StoreIoError, false, `no sticky error after periodic syncs: ${String(s.writeError())}`);
    const end = s.endOffset('t', 0);
    assert.equal(await s.append('t', 0, Buffer.from('after')), end);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test("io faults: sync 'interval' — a failed periodic sync is sticky, since it covered acknowledged appends", async () => {
  const dir = tempDir();
  const io = new FaultyIo();
  const s = await MessageStore.open({ dir, io, sync: { mode: 'interval', intervalMs: 10 } });
  try {
    assert.equal(await s.append('t', 0, Buffer.from('a')), 0);
    io.inject({ op: 'datasync', code: 'EIO', pathIncludes: '.seg' });
    assert.equal(await s.append('t', 0, Buffer.from('b')), 1, 'acknowledged once written');
    for (let i = 0; i < 1000 && s.writeError() === null; i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(s.writeError() instanceof StoreIoError, 'the periodic sync failed');
    await assert.rejects(s.append('t', 0, Buffer.from('c')), isIo);
    assert.deepEqual(await s.getRange('t', 0, 0, 10), [Buffer.from('a'), Buffer.from('b')]);
  } finally {
    await s.close();
    removeDir(dir);
  }
});
