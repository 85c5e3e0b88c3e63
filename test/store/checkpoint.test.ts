import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, rmSync, writeSync, closeSync, statSync, truncateSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { MessageStore, StoreNoSpaceError } from '../../src/store/index.js';
import { FaultyIo, closeAndRemove, crashSnapshot, payload, removeDir, tempDir } from './helpers.js';
import { QueueIndex } from '../../src/store/queue-index.js';
import { CHECKPOINT_CHUNK_BYTES, CHECKPOINT_ENCODE_SLICE_UNITS } from '../../src/store/constants.js';
import { CHECKPOINT_FILE, CHECKPOINT_TMP_FILE } from '../../src/store/format.js';
import { CheckpointLoader, assembleCheckpoint, checkCheckpoint, checkpointChunks, deltaEncoder, encodeCheckpoint, encodeNow, loadCheckpoint, runEncoder } from '../../src/store/checkpoint.js';

async function contents(s: MessageStore): Promise<string[]> {
  const out: string[] = [];
  for (const q of s.queues().sort((a, b) => a.topic.localeCompare(b.topic) || a.queueId - b.queueId)) {
    out.push(`${q.topic}/${q.queueId} ${q.startOffset}..${q.endOffset} ${q.bytes}`);
    for (let o = q.startOffset; o < q.endOffset; o += 100) {
      for (const b of await s.getRange(q.topic, q.queueId, o, 100)) out.push(b.toString('base64'));
    }
  }
  return out;
}

/**
 * A full checkpoint streamed as the store writes it (sliced, chunks handed over one by one),
 * collected in memory; null when `changed` voided it.
 */
async function streamedFull(index: QueueIndex, logPosition: number, topics: number, nowMs: number, changed: () => boolean, chunkBytes?: number): Promise<Buffer | null> {
  const file: Buffer[] = [];
  let written = 0;
  const end = await runEncoder(checkpointChunks(index, logPosition, topics, nowMs, chunkBytes), true, changed, (chunk, position) => {
    assert.equal(position, written, 'chunks arrive in file order');
    if (chunkBytes !== undefined) assert.ok(chunk.length > 0 && chunk.length <= chunkBytes, `a chunk of ${chunk.length} bytes`);
    written += chunk.length;
    file.push(Buffer.from(chunk));
  });
  return end === null ? null : assembleCheckpoint(file, end);
}

/**
 * Reopens a crash snapshot of `dir` (added to `copies`, for cleanup): it must load its
 * checkpoint, scan `scanned` records after it, and hold what `live` holds.
 */
async function expectCrashReopen(dir: string, copies: string[], live: MessageStore, scanned: number): Promise<void> {
  const copy = crashSnapshot(dir);
  copies.push(copy);
  const reopened = await MessageStore.open({ dir: copy });
  try {
    assert.equal(reopened.recovery.checkpoint.used, true);
    assert.equal(reopened.recovery.scannedRecords, scanned);
    assert.deepEqual(await contents(reopened), await contents(live));
  } finally {
    await reopened.close();
  }
}

test('checkpoint: reopen after a crash loads the checkpoint, scans only the log after it, and sees the same store as a full scan', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir });
  let copy = '';
  try {
    for (let i = 0; i < 600; i++) await s.append(`t${i % 4}`, i % 7, payload(`t${i % 4}`, i % 7, i, 100 + (i % 500)));
    await s.checkpoint();
    const afterCkpt = 250;
    for (let i = 600; i < 600 + afterCkpt; i++) await s.append(`t${i % 4}`, i % 7, payload(`t${i % 4}`, i % 7, i, 100 + (i % 500)));
    copy = crashSnapshot(dir);
    const fromCheckpoint = await MessageStore.open({ dir: copy });
    let viaCheckpoint: string[];
    try {
      assert.equal(fromCheckpoint.recovery.cleanShutdown, false);
      assert.equal(fromCheckpoint.recovery.checkpoint.used, true);
      assert.equal(fromCheckpoint.recovery.scannedRecords, afterCkpt);
      viaCheckpoint = await contents(fromCheckpoint);
    } finally {
      await fromCheckpoint.close();
    }
    const full = crashSnapshot(dir);
    rmSync(join(full, 'index.ckpt'));
    const fromScan = await MessageStore.open({ dir: full });
    try {
      assert.equal(fromScan.recovery.checkpoint.used, false);
      assert.equal(fromScan.recovery.scannedRecords, 850);
      assert.deepEqual(await contents(fromScan), viaCheckpoint);
      assert.deepEqual(await contents(s), viaCheckpoint, 'and the same as the live store');
    } finally {
      await fromScan.close();
      removeDir(full);
    }
  } finally {
    await s.close();
    removeDir(dir);
    if (copy) removeDir(copy);
  }
});

test('checkpoint: a corrupt checkpoint is ignored and the log is scanned instead', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir });
  for (let i = 0; i < 200; i++) await s.append('t', i % 3, payload('t', i % 3, i, 300));
  await s.close();
  const path = join(dir, 'index.ckpt');
  const fd = openSync(path, 'r+');
  writeSync(fd, Buffer.from([0xff, 0xff]), 0, 2, statSync(path).size - 2);
  closeSync(fd);
  const again = await MessageStore.open({ dir });
  try {
    assert.equal(again.recovery.checkpoint.used, false);
    assert.match(again.recovery.checkpoint.reason, /CRC/);
    assert.equal(again.recovery.scannedRecords, 200);
    for (let q = 0; q < 3; q++) assert.equal(again.endOffset('t', q), [67, 67, 66][q]);
  } finally {
    await again.close();
    removeDir(dir);
  }
});

test('checkpoint: deltas chain on the full checkpoint; a torn delta ends the chain and the scan covers the rest', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir });
  const copies: string[] = [];
  try {
    const write = async (from: number, to: number): Promise<void> => {
      for (let i = from; i < to; i++) await s.append(`t${i % 3}`, i % 5, payload(`t${i % 3}`, i % 5, i, 50 + (i % 300)));
    };
    await write(0, 200);
    await s.checkpoint({ full: true });
    await write(200, 300);
    await s.checkpoint(); // delta 1
    await write(300, 420);
    await s.checkpoint(); // delta 2
    await write(420, 450);
    const live = await contents(s);

    const a = crashSnapshot(dir);
    copies.push(a);
    const viaDeltas = await MessageStore.open({ dir: a });
    try {
      assert.equal(viaDeltas.recovery.checkpoint.used, true);
      assert.equal(viaDeltas.recovery.checkpoint.deltas, 2);
      assert.equal(viaDeltas.recovery.scannedRecords, 30);
      assert.deepEqual(await contents(viaDeltas), live);
    } finally {
      await viaDeltas.close();
    }

    // Tear the last delta record: the chain stops after delta 1, the scan covers the rest.
    const b = crashSnapshot(dir);
    copies.push(b);
    const deltaPath = join(b, 'index.delta');
    truncateSync(deltaPath, statSync(deltaPath).size - 5);
    const viaOne = await MessageStore.open({ dir: b });
    try {
      assert.equal(viaOne.recovery.checkpoint.deltas, 1);
      assert.equal(viaOne.recovery.scannedRecords, 150);
      assert.deepEqual(await contents(viaOne), live);
      // Appends and checkpoints go on from the cut chain.
      await viaOne.append('t0', 0, Buffer.from('more'));
      await viaOne.checkpoint();
    } finally {
      await viaOne.close();
    }
    const reopened = await MessageStore.open({ dir: b });
    try {
      assert.equal(reopened.recovery.scannedRecords, 0);
      assert.equal(reopened.endOffset('t0', 0), s.endOffset('t0', 0) + 1);
    } finally {
      await reopened.close();
    }
  } finally {
    await closeAndRemove(s, dir, copies);
  }
});

test('checkpoint: sliced encoding, with appends between the slices, gives the same bytes as encoding at once; a trim meanwhile voids it', async () => {
  const index = new QueueIndex();
  const queues = Array.from({ length: 5 }, (_, i) => index.getOrCreate(i % 2, i));
  let pos = 0;
  const total = CHECKPOINT_ENCODE_SLICE_UNITS * 3 + 17;
  for (let i = 0; i < total; i++) {
    index.push(queues[i % queues.length], pos, 100 + (i % 50));
    pos += 100 + (i % 50);
  }
  const at = pos;
  const base = Math.floor(at / 2);
  const fullNow = encodeCheckpoint(index, at, 2, 1234);
  const deltaNow = encodeNow(deltaEncoder(index, base, at));
  // Appends (and a new queue) arrive between the slices; entries below `at` must not change.
  let slices = 0;
  const appendMeanwhile = (): boolean => {
    slices++;
    index.push(queues[slices % queues.length], pos, 77);
    pos += 77;
    index.push(index.getOrCreate(9, 9 + slices), pos, 55);
    pos += 55;
    return false;
  };
  const fullSliced = await streamedFull(index, at, 2, 1234, appendMeanwhile);
  assert.ok(slices >= 3, `encoding yielded ${slices} times`);
  assert.ok(fullSliced !== null);
  assert.ok(fullSliced.equals(fullNow));
  const deltaSliced = await runEncoder(deltaEncoder(index, base, at), true, appendMeanwhile);
  assert.ok(deltaSliced !== null);
  assert.ok(deltaSliced.equals(deltaNow));

  const trims = index.trims;
  const voided = await streamedFull(index, at, 2, 1234, () => {
    index.trimBelow(1000);
    return index.trims !== trims;
  });
  assert.equal(voided, null);
});

test('checkpoint: walking the queues is sliced too, not only writing entries: many queues and few new entries still yield', async () => {
  const index = new QueueIndex();
  const queues = CHECKPOINT_ENCODE_SLICE_UNITS * 6 + 5;
  let pos = 0;
  // Every queue has one entry below `base`; three queues get one entry each after it.
  for (let i = 0; i < queues; i++) {
    index.push(index.getOrCreate(i % 100, Math.floor(i / 100)), pos, 40);
    pos += 40;
  }
  const base = pos;
  for (const i of [7, 5000, queues - 1]) {
    index.push(index.getOrCreate(i % 100, Math.floor(i / 100)), pos, 40);
    pos += 40;
  }
  let yields = 0;
  const count = (): boolean => {
    yields++;
    return false;
  };
  const delta = await runEncoder(deltaEncoder(index, base, pos), true, count);
  // Three entries to write: before, the walk over every queue ran in one piece and never yielded.
  assert.ok(yields >= 6, `a delta over ${queues} queues yielded ${yields} times`);
  assert.ok(delta !== null && delta.equals(encodeNow(deltaEncoder(index, base, pos))));
  assert.equal(delta.readUInt32LE(32), 3, 'the delta names the three queues with new entries');

  const empty = new QueueIndex();
  for (let i = 0; i < queues; i++) empty.getOrCreate(i % 100, Math.floor(i / 100));
  yields = 0;
  const full = await streamedFull(empty, 0, 100, 1, count);
  // No entries at all: every slice boundary comes from visiting queues (or writing a chunk).
  assert.ok(yields >= 6, `a full checkpoint of ${queues} empty queues yielded ${yields} times`);
  assert.ok(full !== null && full.equals(encodeCheckpoint(empty, 0, 100, 1)));
  assert.equal(checkCheckpoint(full)?.queueCount, queues);
});

test('checkpoint: an explicit checkpoint() runs in slices and streams the file in bounded chunks (appends are acknowledged meanwhile); a reopen reads it back in bounded chunks', { timeout: 120_000 }, async () => {
  const dir = tempDir();
  const events: string[] = [];
  const writes: number[] = [];
  const io = new FaultyIo();
  io.trace = (e, path, bytes) => {
    if (e === 'writev' && path.endsWith(CHECKPOINT_TMP_FILE)) writes.push(bytes);
    if (e === 'rename' && path.endsWith(CHECKPOINT_FILE)) events.push('checkpoint file');
  };
  const s = await MessageStore.open({ dir, io });
  const entries = CHECKPOINT_ENCODE_SLICE_UNITS * 16;
  const BATCH = 8192;
  for (let i = 0; i < entries; i += BATCH) {
    await Promise.all(Array.from({ length: BATCH }, (_, k) => s.append(`t${(i + k) % 7}`, (i + k) % 1000, Buffer.from([k & 0xff]))));
  }
  let stop = false;
  let acked = 0;
  const producer = (async () => {
    while (!stop) {
      await s.append('live', 0, Buffer.from(`m${acked}`));
      acked++;
      events.push('ack');
    }
  })();
  while (acked === 0) await new Promise((r) => setImmediate(r));
  events.push('checkpoint()');
  await s.checkpoint({ full: true });
  stop = true;
  await producer;
  const from = events.indexOf('checkpoint()');
  const to = events.indexOf('checkpoint file', from);
  assert.ok(to > from, 'the full checkpoint was written');
  const during = events.slice(from, to).filter((e) => e === 'ack').length;
  // Encoded at once (before), the call ran the whole encoding before any append could complete.
  assert.ok(during > 0, `appends acknowledged while ${entries} entries were encoded: ${during}`);
  // The file (12 bytes an entry) went out in pieces of at most one chunk, never built whole.
  const fileBytes = writes.reduce((n, w) => n + w, 0);
  assert.ok(fileBytes > entries * 12, `checkpoint bytes written: ${fileBytes}`);
  assert.ok(writes.length > Math.ceil((entries * 12) / CHECKPOINT_CHUNK_BYTES), `writes: ${writes.length}`);
  assert.ok(Math.max(...writes) <= CHECKPOINT_CHUNK_BYTES, `largest write: ${Math.max(...writes)} bytes`);
  const before = await contents(s);
  await s.close();
  // Reopening reads the checkpoint a chunk at a time too, never the whole file at once.
  const reads: number[] = [];
  const wholeFiles: string[] = [];
  const reopenIo = new FaultyIo();
  reopenIo.trace = (e, path, bytes) => {
    if (e === 'read' && path.endsWith(CHECKPOINT_FILE)) reads.push(bytes);
    if (e === 'readFile') wholeFiles.push(path);
  };
  const reopened = await MessageStore.open({ dir, io: reopenIo });
  try {
    assert.equal(reopened.recovery.checkpoint.used, true);
    // Once to check its CRC, once to load it.
    assert.ok(reads.length >= 2 * Math.ceil(fileBytes / CHECKPOINT_CHUNK_BYTES), `checkpoint reads: ${reads.length}`);
    assert.ok(Math.max(...reads) <= CHECKPOINT_CHUNK_BYTES, `largest checkpoint read: ${Math.max(...reads)} bytes`);
    assert.deepEqual(wholeFiles.filter((f) => f.includes('index.')), [], 'no checkpoint file read whole');
    assert.equal(reopened.endOffset('live', 0), acked);
    assert.deepEqual(await contents(reopened), before);
  } finally {
    await reopened.close();
    removeDir(dir);
  }
});

/** Every queue's (topicId, queueId, start, entries below `position`) in row order. */
function entriesBelow(index: QueueIndex, position: number): string[] {
  const out: string[] = [];
  for (let row = 0; row < index.queueCount; row++) {
    const q = index.queueAt(row);
    const start = index.startOf(q);
    const parts = [`${index.topicIdOf(q)}/${index.queueIdOf(q)}@${start}`];
    index.forEachEntry(q, start, index.countBelow(q, position), (at, length) => parts.push(`${at}+${length}`));
    out.push(parts.join(' '));
  }
  return out;
}

test('checkpoint: a full checkpoint streamed in chunks of any size is the same file, passes its CRC, and loads back (fed whole or in pieces of any size) the index below its position', async () => {
  const arbitrary = fc.record({
    appends: fc.array(fc.record({ queue: fc.nat(11), bytes: fc.integer({ min: 1, max: 900 }) }), { maxLength: 400 }),
    // Where the checkpoint is cut and where retention trimmed, as fractions of the log.
    cut: fc.double({ min: 0, max: 1, noNaN: true }),
    trim: fc.option(fc.double({ min: 0, max: 1, noNaN: true })),
    chunkBytes: fc.integer({ min: 60, max: 2000 }),
    pieceBytes: fc.array(fc.integer({ min: 1, max: 200 }), { minLength: 1, maxLength: 8 }),
  });
  await fc.assert(
    fc.asyncProperty(arbitrary, async ({ appends, cut, trim, chunkBytes, pieceBytes }) => {
      const index = new QueueIndex();
      let pos = 0;
      const starts: number[] = [];
      for (const a of appends) {
        starts.push(pos);
        index.push(index.getOrCreate(a.queue % 3, a.queue), pos, a.bytes);
        pos += a.bytes;
      }
      const at = (f: number): number => (starts.length === 0 ? 0 : starts[Math.min(starts.length - 1, Math.floor(f * starts.length))]);
      if (trim !== null) index.trimBelow(at(trim));
      const logPosition = Math.max(at(cut), trim === null ? 0 : at(trim));
      const whole = encodeCheckpoint(index, logPosition, 3, 77, 1 << 24);
      assert.ok(encodeCheckpoint(index, logPosition, 3, 77, chunkBytes).equals(whole));
      const streamed = await streamedFull(index, logPosition, 3, 77, () => false, chunkBytes);
      assert.ok(streamed !== null && streamed.equals(whole));
      assert.deepEqual(checkCheckpoint(whole), { logPosition, createdMs: 77, topicCount: 3, queueCount: index.queueCount });
      const loaded = new QueueIndex();
      loadCheckpoint(whole, loaded);
      assert.deepEqual(entriesBelow(loaded, Number.MAX_SAFE_INTEGER), entriesBelow(index, logPosition));
      // Fed in pieces of any size (a file read a chunk at a time), the loader builds the same index.
      const pieced = new QueueIndex();
      const loader = new CheckpointLoader(pieced);
      for (let at = 0, k = 0; at < whole.length; k++) {
        const size = pieceBytes[k % pieceBytes.length];
        loader.feed(whole.subarray(at, at + size));
        at += size;
      }
      loader.finish();
      assert.deepEqual(entriesBelow(pieced, Number.MAX_SAFE_INTEGER), entriesBelow(index, logPosition));
    }),
    { numRuns: 200 },
  );
});

test('checkpoint: a full checkpoint that fails mid-file (ENOSPC on a later chunk) rejects typed, keeps the old checkpoint, shows in stats(), and the next one succeeds', { timeout: 120_000 }, async () => {
  const dir = tempDir();
  const io = new FaultyIo();
  const s = await MessageStore.open({ dir, io });
  const copies: string[] = [];
  try {
    // Enough entries for a full checkpoint of more than two chunks (12 bytes an entry).
    const entries = Math.ceil((2.5 * CHECKPOINT_CHUNK_BYTES) / 12);
    const BATCH = 8192;
    for (let i = 0; i < entries; i += BATCH) {
      await Promise.all(Array.from({ length: Math.min(BATCH, entries - i) }, (_, k) => s.append(`t${(i + k) % 5}`, (i + k) % 300, Buffer.from([k & 0xff]))));
    }
    await s.checkpoint({ full: true });
    const first = s.stats().checkpoints;
    assert.equal(first.full, 1);
    assert.equal(first.failed, 0);
    assert.equal(first.lastErrorCode, null);
    assert.equal(first.logBytesSince, 0);
    assert.ok(first.fullBytes > 2 * CHECKPOINT_CHUNK_BYTES, `full checkpoint of ${first.fullBytes} bytes`);
    for (let i = 0; i < 50; i++) await s.append('later', i % 3, Buffer.from(`l${i}`));
    io.inject({ op: 'writev', code: 'ENOSPC', pathIncludes: CHECKPOINT_TMP_FILE, skip: 1, tornBytes: 100 });
    const failed = await s.checkpoint({ full: true }).then(
      () => null,
      (e: unknown) => e,
    );
    assert.ok(failed instanceof StoreNoSpaceError && failed.code === 'CIRRUS_STORE_NO_SPACE', String(failed));
    // stats() tells an operator, as it would for a background checkpoint that failed unseen.
    const afterFail = s.stats().checkpoints;
    assert.deepEqual({ full: afterFail.full, failed: afterFail.failed, code: afterFail.lastErrorCode, bytes: afterFail.fullBytes }, { full: 1, failed: 1, code: 'CIRRUS_STORE_NO_SPACE', bytes: first.fullBytes });
    assert.ok(afterFail.logBytesSince > 0, 'the 50 records since the last checkpoint are not covered');
    // The old checkpoint is what a crash now finds: it loads, and the log after it is scanned.
    await expectCrashReopen(dir, copies, s, 50);
    // The store goes on: appends succeed, and the next full checkpoint covers them.
    for (let i = 0; i < 10; i++) await s.append('later', 0, Buffer.from(`m${i}`));
    await s.checkpoint({ full: true });
    await s.append('later', 1, Buffer.from('after the full one'));
    await s.checkpoint();
    const retried = s.stats().checkpoints;
    assert.deepEqual({ full: retried.full, deltas: retried.deltas, failed: retried.failed, since: retried.logBytesSince }, { full: 2, deltas: 1, failed: 1, since: 0 });
    assert.ok(retried.deltaBytes > 0, 'the delta chain after the new full checkpoint');
    await expectCrashReopen(dir, copies, s, 0);
  } finally {
    await closeAndRemove(s, dir, copies);
  }
});
