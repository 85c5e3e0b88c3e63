import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MessageStore, StoreOffsetTruncatedError } from '../../src/store/index.js';
import { SPARE_SEGMENT_FILE } from '../../src/store/format.js';
import { FaultyIo, closeAndRemove, crashSnapshot, descriptorsUnder, payload, removeDir, segmentFiles, tempDir } from './helpers.js';

const opts = (dir: string) => ({ dir, segmentBytes: 64 * 1024, maxMessageBytes: 2048 });

test('retention by total size: whole old segments go; reads below the first offset say where data starts', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ ...opts(dir), retention: { maxTotalBytes: 256 * 1024 } });
  try {
    for (let i = 0; i < 1500; i++) await s.append('t', i % 2, payload('t', i % 2, Math.floor(i / 2), 1000));
    await s.applyRetention();
    const st = s.stats();
    assert.ok(st.segments <= 6, `old segments deleted (${st.segments} left)`);
    assert.equal(segmentFiles(dir).length, st.segments);
    const [q0] = s.queues('t');
    assert.ok(q0.startOffset > 0, 'queue start moved up');
    assert.equal(q0.endOffset, 750);
    await assert.rejects(
      s.getRange('t', 0, 0, 10),
      (e: unknown) => e instanceof StoreOffsetTruncatedError && e.code === 'CIRRUS_STORE_OFFSET_TRUNCATED' && e.firstAvailableOffset === q0.startOffset,
    );
    const got = await s.getRange('t', 0, q0.startOffset, 100);
    got.forEach((b, k) => assert.deepEqual(b, payload('t', 0, q0.startOffset + k, 1000)));
    assert.equal(await s.append('t', 0, payload('t', 0, 750, 1000)), 750);
  } finally {
    await s.close();
  }
  // The retained start survives a reopen, with or without the checkpoint's help.
  const again = await MessageStore.open(opts(dir));
  try {
    const [q0] = again.queues('t');
    assert.ok(q0.startOffset > 0);
    assert.deepEqual((await again.getRange('t', 0, q0.startOffset, 1))[0], payload('t', 0, q0.startOffset, 1000));
    await assert.rejects(again.getRange('t', 0, q0.startOffset - 1, 1), StoreOffsetTruncatedError);
  } finally {
    await again.close();
    removeDir(dir);
  }
});

test('retention by age: segments whose newest write is older than maxAgeMs go, the active one stays', async () => {
  const dir = tempDir();
  const io = new FaultyIo();
  io.setClock(1_000_000);
  const s = await MessageStore.open({ ...opts(dir), io, retention: { maxAgeMs: 60_000 } });
  try {
    for (let i = 0; i < 300; i++) await s.append('t', 0, payload('t', 0, i, 1000));
    const before = s.stats().segments;
    assert.ok(before >= 4);
    await s.applyRetention();
    assert.equal(s.stats().segments, before, 'nothing is old yet');
    io.setClock(1_000_000 + 120_000);
    await s.applyRetention();
    assert.equal(s.stats().segments, 1, 'only the active segment is left');
    const [q] = s.queues('t');
    assert.ok(q.startOffset > 0 && q.endOffset === 300);
    await assert.rejects(s.getRange('t', 0, 0, 1), StoreOffsetTruncatedError);
    assert.equal((await s.getRange('t', 0, q.startOffset, 100)).length, 300 - q.startOffset);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('retention past the full checkpoint, then a delta checkpoint: a reopen keeps every retained record (the delta starts queues past the ends the full checkpoint gave them)', async () => {
  const dir = tempDir();
  try {
    // A first run ends with a full checkpoint.
    const first = await MessageStore.open(opts(dir));
    try {
      for (let i = 0; i < 300; i++) await first.append('t', i % 2, payload('t', i % 2, Math.floor(i / 2), 1000));
    } finally {
      await first.close();
    }
    // A second run with retention deletes the segments that checkpoint's records lie in, then
    // closes with a delta: each queue now starts past where the full checkpoint ended it.
    const second = await MessageStore.open({ ...opts(dir), retention: { maxTotalBytes: 256 * 1024 } });
    let ends: number[];
    let starts: number[];
    try {
      for (let i = 300; i < 1500; i++) await second.append('t', i % 2, payload('t', i % 2, Math.floor(i / 2), 1000));
      await second.applyRetention();
      const qs = second.queues('t');
      starts = qs.map((q) => q.startOffset);
      ends = qs.map((q) => q.endOffset);
      assert.ok(starts.every((s) => s > 150), `retention deleted past the first run's records (${starts.join(', ')})`);
    } finally {
      await second.close();
    }
    const third = await MessageStore.open(opts(dir));
    try {
      assert.equal(third.recovery.checkpoint.used, true);
      assert.ok(third.recovery.checkpoint.deltas >= 1, 'the delta was applied');
      assert.equal(third.recovery.ignoredRecords, 0);
      const qs = third.queues('t');
      assert.deepEqual(qs.map((q) => q.startOffset), starts);
      assert.deepEqual(qs.map((q) => q.endOffset), ends);
      for (const q of qs) {
        const got = await third.getRange('t', q.queueId, q.startOffset, 100);
        got.forEach((b, k) => assert.deepEqual(b, payload('t', q.queueId, q.startOffset + k, 1000)));
      }
    } finally {
      await third.close();
    }
  } finally {
    removeDir(dir);
  }
});

test('retention never hands out an offset twice: a queue whose records it deleted keeps its end offset through kill -9 (segments go only once a checkpoint covers them)', async () => {
  const dir = tempDir();
  const copies: string[] = [];
  const s = await MessageStore.open({ ...opts(dir), retention: { maxTotalBytes: 256 * 1024 } });
  try {
    // Queue "early" is written only at the start, then the log moves on without it.
    for (let i = 0; i < 40; i++) await s.append('early', 0, payload('early', 0, i, 1000));
    for (let i = 0; i < 1200; i++) await s.append('t', 0, payload('t', 0, i, 1000));
    const checkpointsBefore = s.stats().checkpoints.deltas + s.stats().checkpoints.full;
    await s.applyRetention();
    const [early] = s.queues('early');
    assert.equal(early.startOffset, 40, 'every record of "early" was deleted');
    assert.equal(early.endOffset, 40);
    assert.ok(s.stats().checkpoints.deltas + s.stats().checkpoints.full > checkpointsBefore, 'retention checkpointed before deleting');
    // kill -9 now: no close, no checkpoint of its own after the deletion.
    const copy = crashSnapshot(dir);
    copies.push(copy);
    const re = await MessageStore.open({ ...opts(copy), retention: { maxTotalBytes: 256 * 1024 } });
    try {
      const [q] = re.queues('early');
      assert.equal(q?.endOffset, 40, 'the end offset survives the crash');
      assert.equal(await re.append('early', 0, payload('early', 0, 40, 1000)), 40, 'the next append gets the next offset, not a reused one');
      await assert.rejects(re.getRange('early', 0, 39, 1), StoreOffsetTruncatedError);
    } finally {
      await re.close();
    }
  } finally {
    await closeAndRemove(s, dir, copies);
  }
});

test('retention: a read under way when retention deletes its records rejects CIRRUS_STORE_OFFSET_TRUNCATED with the first available offset, not a corrupt or missing segment', async () => {
  const dir = tempDir();
  const io = new FaultyIo();
  let clock = 1_000_000;
  io.setClock(clock);
  // Small segments, so that one getRange spans more than one read batch (MAX_READ_BATCH_SEGMENTS).
  const s = await MessageStore.open({ dir, io, segmentBytes: 4096, maxMessageBytes: 2048, memoryCacheBytes: 0, retention: { maxAgeMs: 1000 }, recycleSegments: false });
  try {
    for (let i = 0; i < 100; i++) await s.append('t', 0, payload('t', 0, i, 1000));
    await s.append('other', 0, Buffer.from('keeps the log going'));
    let ran = false;
    io.readGate = async (path) => {
      if (ran || !path.endsWith('.seg')) return;
      ran = true;
      // Every segment of t ages out while the read waits for the disk.
      clock += 5000;
      io.setClock(clock);
      await s.applyRetention();
    };
    await assert.rejects(s.getRange('t', 0, 0, 100), (e: unknown) => {
      assert.ok(e instanceof StoreOffsetTruncatedError, String(e));
      assert.equal(e.code, 'CIRRUS_STORE_OFFSET_TRUNCATED');
      assert.equal(e.firstAvailableOffset, s.queues('t')[0].startOffset);
      return true;
    });
    assert.ok(ran, 'retention ran while the read was under way');
  } finally {
    await s.close();
    removeDir(dir);
  }
});

for (const recycleSegments of [false, true]) {
  test(`retention: a read opening a segment while retention removes it keeps no descriptor of the removed file and answers CIRRUS_STORE_OFFSET_TRUNCATED (recycleSegments ${recycleSegments})`, async () => {
    const dir = tempDir();
    const options = { dir, segmentBytes: 64 * 1024, maxMessageBytes: 2048, memoryCacheBytes: 0, recycleSegments };
    const writer = await MessageStore.open(options);
    for (let i = 0; i < 200; i++) await writer.append('t', 0, payload('t', 0, i, 1000));
    await writer.close();
    // Reopened, so that no segment file is open yet (the writer's handles would serve the read).
    const io = new FaultyIo();
    let clock = Date.now();
    io.setClock(clock);
    const s = await MessageStore.open({ ...options, io, retention: { maxAgeMs: 1000 } });
    try {
      const first = segmentFiles(dir)[0];
      let ran = false;
      io.openGate = async (path, mode) => {
        if (ran || mode !== 'read' || !path.endsWith(first)) return;
        ran = true;
        // Every sealed segment ages out while the read's open of the oldest is under way.
        clock += 5000;
        io.setClock(clock);
        await s.applyRetention();
      };
      await assert.rejects(s.getRange('t', 0, 0, 10), (e: unknown) => {
        assert.ok(e instanceof StoreOffsetTruncatedError, String(e));
        assert.equal(e.firstAvailableOffset, s.queues('t')[0].startOffset);
        return true;
      });
      assert.ok(ran, 'retention ran while the read opened the segment');
      assert.ok(!segmentFiles(dir).includes(first), 'the segment is gone');
      // Past its handles' LRU: the read's descriptor of the removed file was closed, not kept.
      await new Promise((r) => setTimeout(r, 50));
      const held = descriptorsUnder(dir).filter((target) => target.includes(first) || target.includes(SPARE_SEGMENT_FILE));
      assert.deepEqual(held, [], 'no descriptor of the removed segment stays open');
      const q = s.queues('t')[0];
      const got = await s.getRange('t', 0, q.startOffset, 10);
      got.forEach((b, k) => assert.ok(b.equals(payload('t', 0, q.startOffset + k, 1000)), `offset ${q.startOffset + k}`));
    } finally {
      await s.close();
      removeDir(dir);
    }
  });
}

for (const variant of ['succeeds', 'fails with ENOSPC'] as const) {
  test(`retention: a sealed segment whose last flush is still in flight is not deleted (the flush ${variant})`, async () => {
    const dir = tempDir();
    const io = new FaultyIo();
    const s = await MessageStore.open({ dir, io, segmentBytes: 64 * 1024, maxMessageBytes: 2000, retention: { maxTotalBytes: 1 } });
    let release: () => void = () => {};
    try {
      for (let i = 0; i < 20; i++) await s.append('t', 0, payload('t', 0, i, 1000));
      await s.checkpoint();
      io.datasyncGate = new Promise<void>((r) => (release = r));
      if (variant !== 'succeeds') io.inject({ op: 'writev', code: 'ENOSPC', pathIncludes: '00000000000000000000.seg' });
      const pending = Array.from({ length: 200 }, (_, k) => s.append('t', 0, payload('t', 0, 20 + k, 1000)));
      for (const p of pending) p.catch(() => undefined);
      // Flushes held in flight across a roll-over or two; then retention runs.
      for (let k = 0; k < 200 && s.stats().segments < 3; k++) await new Promise((r) => setTimeout(r, 5));
      await s.applyRetention();
      assert.ok(segmentFiles(dir).some((f) => f.endsWith('00000000000000000000.seg')), 'the segment being written is still there');
      release();
      io.datasyncGate = null;
      const outcomes = await Promise.allSettled(pending);
      const acked = outcomes.filter((o) => o.status === 'fulfilled').length;
      if (variant === 'succeeds') assert.equal(acked, 200);
      else assert.ok(outcomes.some((o) => o.status === 'rejected'), 'the failed flush rejected its appends');
      // Every acknowledged append reads back (or retention deleted it afterwards, properly: TRUNCATED).
      const q = s.queues('t')[0];
      assert.equal(q.endOffset, 20 + acked);
      for (let o = q.startOffset; o < q.endOffset; o += 100) {
        const got = await s.getRange('t', 0, o, 100);
        got.forEach((b, k) => assert.ok(b.equals(payload('t', 0, o + k, 1000)), `offset ${o + k}`));
      }
    } finally {
      release();
      await s.close();
      removeDir(dir);
    }
  });
}
