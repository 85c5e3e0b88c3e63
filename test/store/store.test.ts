import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { MAX_OPEN_READ_FILES, MAX_READ_BATCH_SEGMENTS, MessageStore, StoreClosedError, createNodeIo, nodeIo, verifyStore } from '../../src/store/index.js';
import { payload, removeDir, tempDir } from './helpers.js';

test('store: reads past the end and of unknown queues are empty; listing and stats', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir });
  try {
    assert.deepEqual(await s.getRange('nope', 0, 0, 10), []);
    assert.equal(s.endOffset('nope', 0), 0);
    for (let i = 0; i < 5; i++) await s.append('a', 1, payload('a', 1, i, 100));
    await s.append('b', 2, payload('b', 2, 0, 10));
    assert.deepEqual(await s.getRange('a', 1, 5, 10), []);
    assert.deepEqual(await s.getRange('a', 1, 1000, 1), []);
    assert.deepEqual(await s.getRange('a', 9, 0, 1), []);
    const got = await s.getRange('a', 1, 3, 100);
    assert.deepEqual(got, [payload('a', 1, 3, 100), payload('a', 1, 4, 100)]);
    assert.deepEqual(s.topics(), ['a', 'b']);
    assert.deepEqual(
      s.queues().map((q) => [q.topic, q.queueId, q.startOffset, q.endOffset]),
      [
        ['a', 1, 0, 5],
        ['b', 2, 0, 1],
      ],
    );
    assert.deepEqual(s.queues('b').map((q) => q.queueId), [2]);
    assert.deepEqual(s.queues('zzz'), []);
    const st = s.stats();
    assert.equal(st.messagesWritten, 6);
    assert.equal(st.bytesWritten, 6 * 36 + 510);
    assert.equal(st.topics, 2);
    assert.equal(st.queues, 2);
    assert.equal(st.segments, 1);
    assert.equal(st.messagesRead, 2);
    assert.equal(st.bytesRead, 200);
    assert.ok(st.syncs >= 1 && st.syncLatencyMeanMs > 0 && st.syncLatencyP99Ms > 0);
    assert.equal(st.cache.memory.hits, 2);
    assert.equal(st.cache.fastTier, null);
    // Returned buffers are copies: changing one does not change the store.
    got[0].fill(0);
    assert.deepEqual((await s.getRange('a', 1, 3, 1))[0], payload('a', 1, 3, 100));
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('store: close flushes pending appends, then every call rejects with CIRRUS_STORE_CLOSED', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir });
  const pending = Array.from({ length: 100 }, (_, i) => s.append('t', 0, payload('t', 0, i, 1000)));
  const closing = s.close();
  await assert.rejects(s.append('t', 0, Buffer.from('late')), (e: unknown) => e instanceof StoreClosedError && e.code === 'CIRRUS_STORE_CLOSED');
  await closing;
  assert.deepEqual(await Promise.all(pending), pending.map((_, i) => i));
  await s.close(); // idempotent
  const isClosed = (e: unknown): boolean => e instanceof StoreClosedError;
  await assert.rejects(s.append('t', 0, Buffer.from('x')), isClosed);
  await assert.rejects(s.getRange('t', 0, 0, 1), isClosed);
  assert.throws(() => s.endOffset('t', 0), isClosed);
  assert.throws(() => s.topics(), isClosed);
  assert.throws(() => s.queues(), isClosed);
  assert.throws(() => s.stats(), isClosed);
  const again = await MessageStore.open({ dir });
  try {
    assert.equal(again.recovery.cleanShutdown, true);
    assert.equal(again.recovery.scannedBytes, 0, 'a clean close leaves nothing to scan');
    assert.equal(again.endOffset('t', 0), 100);
    const got = await again.getRange('t', 0, 0, 100);
    got.forEach((b, i) => assert.deepEqual(b, payload('t', 0, i, 1000)));
    assert.equal(await again.append('t', 0, Buffer.from('next')), 100);
  } finally {
    await again.close();
    removeDir(dir);
  }
});

test('store: a cold getRange whose records lie in more segments than one read batch spans (MAX_READ_BATCH_SEGMENTS) returns them all, in order, native and fallback alike', async () => {
  const dir = tempDir();
  try {
    // 4 queues interleaved, 600-byte records, 8 KiB segments: 100 records of a queue lie in
    // about 30 segments, so one getRange (and its read-ahead) is several batches.
    const perQueue = 250;
    const s = await MessageStore.open({ dir, segmentBytes: 8 * 1024, maxMessageBytes: 1024, memoryCacheBytes: 0 });
    for (let o = 0; o < perQueue; o++) await Promise.all([0, 1, 2, 3].map((q) => s.append('t', q, payload('t', q, o, 600))));
    await s.close();
    // memoryCacheBytes 0: every read is history (one slot each); 1 MiB: the whole log is recent
    // (within 4 x the budget of its end, no slots), and after a reopen none of it is in memory, so
    // 64 getRanges spread over the log hold their batches' files at once: more than
    // MAX_OPEN_READ_FILES in use (a handle opened then was once closed under its reader).
    for (const [io, memoryCacheBytes] of [
      [nodeIo, 0],
      [createNodeIo({ nativeReads: false }), 0],
      [nodeIo, 1 << 20],
    ] as const) {
      const r = await MessageStore.open({ dir, io, segmentBytes: 8 * 1024, maxMessageBytes: 1024, memoryCacheBytes, coldReadConcurrency: 1 });
      try {
        assert.ok(r.stats().segments > MAX_READ_BATCH_SEGMENTS * 3, `${r.stats().segments} segments`);
        await Promise.all(
          Array.from({ length: 64 }, (_, k) => [k % 4, (k * 37) % (perQueue - 10)] as const).map(async ([q, first]) => {
            for (let o = first; o < perQueue; o += 100) {
              const got = await r.getRange('t', q, o, 100);
              assert.equal(got.length, Math.min(100, perQueue - o), `t/${q}@${o}: records`);
              got.forEach((b, k) => assert.deepEqual(b, payload('t', q, o + k, 600), `t/${q}@${o + k} (native reads: ${io.nativeReads}, memory ${memoryCacheBytes})`));
            }
          }),
        );
        const { inFlight, waiting, batches, jobs } = r.stats().historyReads;
        assert.deepEqual([inFlight, waiting], [0, 0]);
        // All history, from 64 readers at once through a few slots: batches that waited together
        // went as one job (history-reads.ts).
        if (memoryCacheBytes === 0) assert.ok(jobs > 0 && jobs < batches, `${batches} batches in ${jobs} jobs`);
      } finally {
        await r.close();
      }
    }
  } finally {
    removeDir(dir);
  }
});

test('store: reading across many more segments than MAX_OPEN_READ_FILES keeps file descriptors bounded', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir, segmentBytes: 8 * 1024, maxMessageBytes: 1024, memoryCacheBytes: 0 });
  try {
    const n = 1200; // about 100 segments of 8 KiB
    for (let i = 0; i < n; i += 100) {
      await Promise.all(Array.from({ length: 100 }, (_, k) => s.append('t', (i + k) % 4, payload('t', (i + k) % 4, Math.floor((i + k) / 4), 600))));
    }
    assert.ok(s.stats().segments > MAX_OPEN_READ_FILES * 2);
    const fdsBefore = readdirSync('/proc/self/fd').length;
    // Four readers at once, each walking its queue through every segment.
    await Promise.all(
      [0, 1, 2, 3].map(async (q) => {
        for (let o = 0; o < n / 4; o += 7) {
          const got = await s.getRange('t', q, o, 7);
          got.forEach((b, k) => assert.deepEqual(b, payload('t', q, o + k, 600)));
        }
      }),
    );
    const fdsAfter = readdirSync('/proc/self/fd').length;
    assert.ok(fdsAfter - fdsBefore <= MAX_OPEN_READ_FILES + 2, `fds ${fdsBefore} -> ${fdsAfter}`);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('store: segments whose size is not a multiple of 4 KiB read back whole after a reopen, in fetches across their boundaries (direct writes pad each file past the next one\'s start)', async () => {
  const dir = tempDir();
  const opts = { dir, segmentBytes: 5_000, maxMessageBytes: 1024, memoryCacheBytes: 0 };
  let s = await MessageStore.open(opts);
  for (let i = 0; i < 40; i++) await s.append('t', 0, payload('t', 0, i, 1000));
  await s.close();
  s = await MessageStore.open(opts);
  try {
    for (let from = 0; from < 40; from += 3) {
      const got = await s.getRange('t', 0, from, 10);
      assert.equal(got.length, Math.min(10, 40 - from));
      got.forEach((b, k) => assert.ok(b.equals(payload('t', 0, from + k, 1000)), `offset ${from + k}`));
    }
  } finally {
    await s.close();
  }
  try {
    const report = await verifyStore(dir, { maxMessageBytes: 1024 });
    assert.equal(report.ok, true, JSON.stringify(report.damage));
  } finally {
    removeDir(dir);
  }
});
