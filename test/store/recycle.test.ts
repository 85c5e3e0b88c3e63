import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, renameSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { MessageStore, scanStore } from '../../src/store/index.js';
import { crc32c } from '../../src/store/crc.js';
import { RECORD_HEADER_BYTES, RECORD_VERSION_UNSEEDED, SPARE_SEGMENT_FILE, parseSegmentFileName, segmentFileName } from '../../src/store/format.js';
import { FaultyIo, closeAndRemove, crashSnapshot, payload, removeDir, segmentFiles, tempDir } from './helpers.js';

// Segments larger than the unflushed window (4 MiB with these messages: recovery.ts), so that a
// recycled file's previous life lies outside it and recovery must tell it from the data by CRC.
const SEGMENT_BYTES = 8 << 20;
/**
 * 100 B to 8 KB by (queue, offset): segments end anywhere in their last 8 KB, so a recycled file is
 * often longer than its new data even past the last write's padding to 4 KiB.
 */
const sizeOf = (q: number, o: number): number => 100 + ((q * 7919 + o * 104_729) % 7_900);
/** A record's mean size, header included. */
const RECORD_BYTES = 4_050 + RECORD_HEADER_BYTES;
const MAX_RECORD_BYTES = 8_000 + RECORD_HEADER_BYTES;
const opts = (dir: string) => ({ dir, segmentBytes: SEGMENT_BYTES, maxMessageBytes: 8192, memoryCacheBytes: 1 << 20, retention: { maxTotalBytes: 12 << 20 } });

/** Appends `n` records over `queues` queues of topic t from their current ends, 100 at a time; checks the offsets. */
async function appendMany(s: MessageStore, n: number, queues = 3): Promise<void> {
  const next = new Map(s.queues('t').map((q) => [q.queueId, q.endOffset]));
  for (let done = 0; done < n; ) {
    const batch: Promise<void>[] = [];
    for (; batch.length < 100 && done < n; done++) {
      const q = done % queues;
      const offset = next.get(q) ?? 0;
      next.set(q, offset + 1);
      batch.push(s.append('t', q, payload('t', q, offset, sizeOf(q, offset))).then((got) => assert.equal(got, offset)));
    }
    await Promise.all(batch);
  }
}

/** Appends until the log has rolled into a recycled file (retention runs at every roll-over). */
async function rollIntoRecycled(s: MessageStore): Promise<void> {
  await appendMany(s, 3 * Math.ceil(SEGMENT_BYTES / RECORD_BYTES));
  for (let rounds = 0; s.stats().recycledSegments === 0 && rounds < 100; rounds++) await appendMany(s, 100);
  assert.ok(s.stats().recycledSegments > 0, 'the log rolled into a recycled file');
}

/** Appends `step` records at a time until a spare file waits (the next roll-over would take it). */
async function untilSpare(s: MessageStore, step = 100): Promise<void> {
  for (let rounds = 0; !s.stats().spareSegment && rounds < 200; rounds++) await appendMany(s, step);
  assert.equal(s.stats().spareSegment, true, 'a spare file waits');
}

/** Every retained record of every queue of t reads back as written. */
async function checkAll(s: MessageStore): Promise<number> {
  let n = 0;
  for (const q of s.queues('t')) {
    for (let o = q.startOffset; o < q.endOffset; o += 100) {
      const got = await s.getRange('t', q.queueId, o, 100);
      assert.equal(got.length, Math.min(100, q.endOffset - o));
      got.forEach((b, k) => assert.ok(b.equals(payload('t', q.queueId, o + k, sizeOf(q.queueId, o + k))), `t/${q.queueId}@${o + k}`));
      n += got.length;
    }
  }
  return n;
}

/** The last segment file's path and its data's end inside it, as the live store counts it. */
function lastSegment(dir: string): { path: string; start: number; fileBytes: number } {
  const files = segmentFiles(dir);
  const path = files[files.length - 1];
  return { path, start: parseSegmentFileName(path.slice(path.lastIndexOf('/') + 1)) as number, fileBytes: statSync(path).size };
}

test('recycleSegments: a segment retention removes becomes a later segment (the same file), and every record reads back, before and after reopen', async () => {
  const dir = tempDir();
  const s = await MessageStore.open(opts(dir));
  try {
    // Retention runs at every roll: once the log passes 12 MiB, each roll-over frees a file.
    await appendMany(s, 6 * Math.ceil(SEGMENT_BYTES / RECORD_BYTES));
    await s.applyRetention();
    const st = s.stats();
    assert.ok(st.recycledSegments >= 2, `segments made from the spare (${st.recycledSegments})`);
    assert.ok(st.segments <= 3, `retention kept the log near its bound (${st.segments} segments)`);
    assert.equal(existsSync(join(dir, SPARE_SEGMENT_FILE)), st.spareSegment);
    assert.ok((await checkAll(s)) > (12 << 20) / RECORD_BYTES / 2);
  } finally {
    await s.close();
  }
  // A clean close keeps a recycled active segment's file whole and names where its data ends
  // in the CLEAN marker: the log verifies whole, the rest of the file is not read as damage.
  const scan = await scanStore(dir);
  assert.deepEqual(scan.damage, []);
  assert.equal(scan.tail, null);
  const active = lastSegment(dir);
  assert.ok(scan.segments[scan.segments.length - 1].bytes <= active.fileBytes);
  assert.equal(scan.spareSegmentBytes, existsSync(join(dir, SPARE_SEGMENT_FILE)) ? statSync(join(dir, SPARE_SEGMENT_FILE)).size : null);
  const again = await MessageStore.open(opts(dir));
  try {
    assert.equal(again.recovery.truncatedBytes, 0);
    assert.deepEqual(again.recovery.damage, []);
    assert.equal(again.stats().spareSegment, existsSync(join(dir, SPARE_SEGMENT_FILE)), 'the spare survives a reopen');
    await appendMany(again, 500);
    await checkAll(again);
  } finally {
    await again.close();
    removeDir(dir);
  }
});

test('recycleSegments: kill -9 with a recycled active segment: its previous life\'s records past the data read as the end, every acknowledged record is kept', async () => {
  const dir = tempDir();
  const s = await MessageStore.open(opts(dir));
  const copies: string[] = [];
  try {
    // Roll into the spare, then write a part of the new segment only (1 MiB of its 8).
    await rollIntoRecycled(s);
    await appendMany(s, 250);
    const last = lastSegment(dir);
    assert.ok(last.fileBytes >= SEGMENT_BYTES - 2 * MAX_RECORD_BYTES, `the active file keeps its previous size (${last.fileBytes} bytes)`);
    const acked = new Map(s.queues('t').map((q) => [q.queueId, q.endOffset]));
    const copy = crashSnapshot(dir);
    copies.push(copy);
    // verify reads the snapshot as a log with a torn tail, nothing damaged in the middle.
    const scan = await scanStore(copy);
    assert.deepEqual(scan.damage.filter((d) => d.kind === 'middle'), []);
    assert.ok(scan.tail !== null && scan.tail.from > last.start, 'the stale records are a tail past the new data');
    const re = await MessageStore.open(opts(copy));
    try {
      assert.ok(re.recovery.truncatedBytes > 0, 'the previous life was cut');
      assert.ok(re.recovery.damage.every((d) => d.kind === 'tail'));
      assert.equal(re.recovery.damagedOffsets, 0);
      for (const q of re.queues('t')) assert.equal(q.endOffset, acked.get(q.queueId), `t/${q.queueId} ends where the acknowledged appends did`);
      assert.equal(statSync(lastSegment(copy).path).size, last.fileBytes, 'the file keeps its length: only the window after the cut was zeroed');
      await checkAll(re);
      // The store goes on from there, and a second crash finds the log whole.
      await appendMany(re, 500);
      const second = crashSnapshot(copy);
      copies.push(second);
      const re2 = await MessageStore.open(opts(second));
      try {
        assert.equal(re2.recovery.damagedOffsets, 0);
        assert.ok(re2.recovery.damage.every((d) => d.kind === 'tail'));
        for (const q of re.queues('t')) assert.equal(re2.queues('t').find((x) => x.queueId === q.queueId)?.endOffset, q.endOffset);
        await checkAll(re2);
      } finally {
        await re2.close();
      }
    } finally {
      await re.close();
    }
  } finally {
    await closeAndRemove(s, dir, copies);
  }
});

test('recycleSegments: bit rot in a recycled active segment\'s data, then kill -9: the rotten records are damage in the middle, the previous life a tail past the data', async () => {
  const dir = tempDir();
  const copies: string[] = [];
  const s = await MessageStore.open(opts(dir));
  try {
    await rollIntoRecycled(s);
    // 6 MiB into the recycled 8 MiB file: more than the window (4 MiB) after the rot below.
    await appendMany(s, Math.ceil((6 << 20) / RECORD_BYTES));
    const ends = new Map(s.queues('t').map((q) => [q.queueId, q.endOffset]));
    const copy = crashSnapshot(dir);
    copies.push(copy);
    const last = lastSegment(copy);
    const bytes = readFileSync(last.path);
    // Two records rot, 1 MiB apart: neither may pass for the start of the previous life.
    bytes[1 << 20] ^= 0x08;
    bytes[2 << 20] ^= 0x08;
    writeFileSync(last.path, bytes);
    const re = await MessageStore.open(opts(copy));
    try {
      assert.deepEqual(re.recovery.damage.map((d) => d.kind), ['middle', 'middle', 'tail'], JSON.stringify(re.recovery.damage));
      assert.equal(re.recovery.damagedOffsets, 2);
      for (const q of re.queues('t')) assert.equal(q.endOffset, ends.get(q.queueId));
    } finally {
      await re.close();
    }
  } finally {
    await closeAndRemove(s, dir, copies);
  }
});

test('recycleSegments: a crash between the spare becoming the next segment and its first durable write loses nothing, and a hole before it is still a torn tail', async () => {
  const dir = tempDir();
  const s = await MessageStore.open(opts(dir));
  let acked: Map<number, number>;
  try {
    await appendMany(s, 3 * Math.ceil(SEGMENT_BYTES / RECORD_BYTES));
    // Past the next roll-over the spare would be taken: stop with one waiting.
    await untilSpare(s, 50);
    acked = new Map(s.queues('t').map((q) => [q.queueId, q.endOffset]));
  } finally {
    await s.close();
  }
  // What the files look like at that moment: the spare renamed to the next segment's name, the
  // CLEAN marker gone (a crash, not a close).
  const last = lastSegment(dir);
  const nextStart = last.start + SEGMENT_BYTES;
  renameSync(join(dir, SPARE_SEGMENT_FILE), join(dir, segmentFileName(nextStart)));
  unlinkSync(join(dir, 'CLEAN'));
  const withHole = crashSnapshot(dir);
  // Without the clean close's checkpoint, which would vouch for the bytes the hole is put in below.
  for (const f of ['index.ckpt', 'index.delta']) if (existsSync(join(withHole, f))) unlinkSync(join(withHole, f));
  try {
    const re = await MessageStore.open(opts(dir));
    try {
      assert.equal(re.recovery.damagedOffsets, 0);
      assert.ok(re.recovery.damage.every((d) => d.kind === 'tail'));
      for (const q of re.queues('t')) assert.equal(q.endOffset, acked.get(q.queueId));
      assert.ok(re.recovery.truncatedBytes >= SEGMENT_BYTES - 2 * MAX_RECORD_BYTES, 'the stale next segment was cut from its start');
      await checkAll(re);
      // The log goes on in it, and a clean close leaves a log that verifies whole.
      await appendMany(re, 200);
      await checkAll(re);
    } finally {
      await re.close();
    }
    const scan = await scanStore(dir);
    assert.deepEqual(scan.damage, []);
    assert.equal(scan.tail, null);
    // The same with the previous segment's last record never written (zeros: a flush in flight):
    // the next segment holds no data of its own, so the hole is the log's end, not damage in the
    // middle that the stale file's size would have put outside the unflushed window.
    const prev = lastSegment(withHole);
    assert.equal(prev.start, nextStart);
    const prevPath = join(withHole, segmentFileName(last.start));
    const bytes = readFileSync(prevPath);
    bytes.fill(0, bytes.length - 10);
    writeFileSync(prevPath, bytes);
    const re2 = await MessageStore.open(opts(withHole));
    try {
      assert.equal(re2.recovery.damagedOffsets, 0);
      assert.ok(re2.recovery.damage.length > 0 && re2.recovery.damage.every((d) => d.kind === 'tail'), JSON.stringify(re2.recovery.damage));
      const ends = re2.queues('t').map((q) => q.endOffset);
      const before = [...acked.values()];
      assert.equal(ends.reduce((a, b) => a + b, 0), before.reduce((a, b) => a + b, 0) - 1, 'only the torn record is gone');
      await checkAll(re2);
    } finally {
      await re2.close();
    }
  } finally {
    removeDir(dir);
    removeDir(withHole);
  }
});

test('recycleSegments: false, no retention, or a store of version-1 records: files are deleted, never recycled; a leftover spare is removed', async () => {
  const dir = tempDir();
  try {
    const off = await MessageStore.open({ ...opts(dir), recycleSegments: false });
    try {
      await appendMany(off, 3 * Math.ceil(SEGMENT_BYTES / RECORD_BYTES));
      await off.applyRetention();
      assert.equal(off.stats().spareSegment, false);
      assert.equal(off.stats().recycledSegments, 0);
      assert.equal(existsSync(join(dir, SPARE_SEGMENT_FILE)), false);
    } finally {
      await off.close();
    }
    await assert.rejects(MessageStore.open({ ...opts(dir), recycleSegments: 'yes' as unknown as boolean }), { code: 'CIRRUS_STORE_INVALID_ARGUMENT', argument: 'recycleSegments' });
    // A spare left by a run that recycled is removed by one that does not.
    const on = await MessageStore.open(opts(dir));
    try {
      await untilSpare(on);
    } finally {
      await on.close();
    }
    const noRetention = await MessageStore.open({ dir, segmentBytes: SEGMENT_BYTES, maxMessageBytes: 8192 });
    try {
      assert.equal(noRetention.stats().spareSegment, false);
      assert.equal(existsSync(join(dir, SPARE_SEGMENT_FILE)), false);
      await checkAll(noRetention);
    } finally {
      await noRetention.close();
    }
  } finally {
    removeDir(dir);
  }
});

test('recycleSegments: a spare file someone removed leaves the next segment a new file, and appends go on', async () => {
  const dir = tempDir();
  const s = await MessageStore.open(opts(dir));
  try {
    await untilSpare(s);
    const recycled = s.stats().recycledSegments;
    const active = lastSegment(dir).start;
    unlinkSync(join(dir, SPARE_SEGMENT_FILE));
    // Past the next roll-over.
    let rounds = 0;
    while (lastSegment(dir).start === active && rounds++ < 200) await appendMany(s, 100);
    assert.ok(lastSegment(dir).start > active, 'the log rolled over');
    assert.equal(s.stats().recycledSegments, recycled, 'nothing was recycled from the missing spare');
    assert.equal(s.writeError(), null);
    await checkAll(s);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('recycleSegments: the spare renamed into a new segment that then cannot be opened (ENOSPC) goes back to being the spare: no file stays behind that no segment owns, and appends go on', async () => {
  const dir = tempDir();
  const io = new FaultyIo();
  const s = await MessageStore.open({ ...opts(dir), io });
  try {
    await untilSpare(s);
    const active = lastSegment(dir).start;
    // The next roll-over renames the spare to the new segment's name, then opens it: that fails.
    io.inject({ op: 'open', code: 'ENOSPC', pathIncludes: '.seg' });
    let rounds = 0;
    let rejected = 0;
    while (lastSegment(dir).start === active && rounds++ < 200) {
      try {
        await appendMany(s, 100);
      } catch (e) {
        assert.equal((e as { code?: string }).code, 'CIRRUS_STORE_NO_SPACE', String(e));
        rejected++;
      }
    }
    assert.ok(rejected > 0, 'the roll-over failed once');
    assert.ok(lastSegment(dir).start > active, 'then the log rolled over');
    assert.equal(s.writeError(), null);
    assert.equal(segmentFiles(dir).length, s.stats().segments, 'every segment file is a segment of the set');
    await checkAll(s);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('retention on a full device: when no checkpoint can be written, the spare goes first, then the segments anyway, and appends go on', async () => {
  const dir = tempDir();
  const io = new FaultyIo();
  const s = await MessageStore.open({ ...opts(dir), io });
  try {
    await untilSpare(s);
    // Every checkpoint write fails as on a full device; segment writes still go through.
    io.inject({ op: 'writev', code: 'ENOSPC', pathIncludes: 'index.', times: 1_000_000 });
    await appendMany(s, 2 * Math.ceil(SEGMENT_BYTES / RECORD_BYTES));
    await s.applyRetention();
    const st = s.stats();
    assert.ok(st.checkpoints.failed > 0, 'checkpoints failed');
    assert.equal(st.checkpoints.lastErrorCode, 'CIRRUS_STORE_NO_SPACE');
    assert.equal(existsSync(join(dir, SPARE_SEGMENT_FILE)), false, 'the spare was deleted to free its space');
    assert.ok(st.segments <= 3, `retention still deleted (${st.segments} segments)`);
    assert.equal(s.writeError(), null);
    await checkAll(s);
  } finally {
    io.clear();
    await s.close();
  }
  const again = await MessageStore.open(opts(dir));
  try {
    await checkAll(again);
  } finally {
    await again.close();
    removeDir(dir);
  }
});

/** Rewrites every record of a segment file as version 1 (CRC from 0): a store written before 2026-11-29. */
function downgradeToVersion1(path: string): number {
  const buf = readFileSync(path);
  let at = 0;
  let n = 0;
  while (at + RECORD_HEADER_BYTES <= buf.length && buf.readUInt16LE(at) === 0xc1a5) {
    const end = at + RECORD_HEADER_BYTES + buf.readUInt32LE(at + 8);
    buf[at + 2] = RECORD_VERSION_UNSEEDED;
    buf.writeUInt32LE(crc32c(buf.subarray(at + 8, end)), at + 4);
    at = end;
    n++;
  }
  writeFileSync(path, buf);
  return n;
}

test('format: a store of version-1 records (written before position-seeded CRCs) opens, reads, verifies, and retention deletes its files instead of recycling them', async () => {
  const dir = tempDir();
  try {
    const old = await MessageStore.open({ dir, segmentBytes: SEGMENT_BYTES, maxMessageBytes: 8192 });
    try {
      await appendMany(old, 3 * Math.ceil(SEGMENT_BYTES / RECORD_BYTES));
    } finally {
      await old.close();
    }
    let records = 0;
    for (const p of segmentFiles(dir)) records += downgradeToVersion1(p);
    const written = 3 * Math.ceil(SEGMENT_BYTES / RECORD_BYTES);
    assert.equal(records, written);
    unlinkSync(join(dir, 'CLEAN')); // scan the log, do not trust the checkpoint alone
    const scan = await scanStore(dir);
    assert.deepEqual(scan.damage, []);
    assert.equal(scan.records, written);
    const plain = await MessageStore.open({ dir, segmentBytes: SEGMENT_BYTES, maxMessageBytes: 8192 });
    try {
      assert.deepEqual(plain.recovery.damage, []);
      assert.equal(await checkAll(plain), written);
    } finally {
      await plain.close();
    }
    const s = await MessageStore.open(opts(dir));
    try {
      assert.ok(s.stats().segments < 4, 'retention at open removed version-1 segments');
      assert.equal(s.stats().spareSegment, false, 'version-1 files are not recycled: a later life could not tell them apart');
      await checkAll(s);
      // New appends are version 2, and their segments are recycled once retention takes them.
      await appendMany(s, 4 * Math.ceil(SEGMENT_BYTES / RECORD_BYTES));
      await s.applyRetention();
      assert.ok(s.stats().spareSegment || s.stats().recycledSegments > 0);
      await checkAll(s);
    } finally {
      await s.close();
    }
  } finally {
    removeDir(dir);
  }
});

test('recovery: bit rot in a large last segment, more than the unflushed window before its end, is damage in the middle, not a torn tail (the last segment\'s rule)', async () => {
  const dir = tempDir();
  const copies: string[] = [];
  // No retention, no checkpoint yet: only the rule stands between the rot and a cut.
  const s = await MessageStore.open({ dir, segmentBytes: 64 << 20, maxMessageBytes: 8192 });
  try {
    await appendMany(s, Math.ceil((12 << 20) / RECORD_BYTES));
    const ends = new Map(s.queues('t').map((q) => [q.queueId, q.endOffset]));
    for (const kind of ['middle', 'tail'] as const) {
      const copy = crashSnapshot(dir);
      copies.push(copy);
      const [path] = segmentFiles(copy);
      const bytes = readFileSync(path);
      assert.ok(bytes.length > 10 << 20);
      // 2 MiB in: more than the window (4 MiB here) before the end; 1 MiB before the end: inside it.
      const at = kind === 'middle' ? 2 << 20 : bytes.length - (1 << 20);
      bytes[at] ^= 0x40;
      writeFileSync(path, bytes);
      const re = await MessageStore.open({ dir: copy, segmentBytes: 64 << 20, maxMessageBytes: 8192 });
      try {
        assert.equal(re.recovery.checkpoint.used, false);
        assert.deepEqual(re.recovery.damage.map((d) => d.kind), [kind], JSON.stringify(re.recovery.damage));
        if (kind === 'middle') {
          assert.equal(re.recovery.damagedOffsets, 1, 'one record lost to the rot, the rest of the log kept');
          for (const q of re.queues('t')) assert.equal(q.endOffset, ends.get(q.queueId));
        } else {
          assert.ok(re.recovery.truncatedBytes > 0 && re.recovery.truncatedBytes < 2 << 20, 'cut at the rot, inside the last window');
        }
      } finally {
        await re.close();
      }
    }
  } finally {
    await closeAndRemove(s, dir, copies);
  }
});

test('recycleSegments: a recycled active segment closed cleanly is still known as recycled after reopen: rolling past it cuts its previous life, so a crash then keeps every acknowledged record', async () => {
  const dir = tempDir();
  const copies: string[] = [];
  // Through the page cache: a direct write's zero padding to 4 KiB would hide part of the stale bytes.
  const first = await MessageStore.open({ ...opts(dir), directWrites: false });
  try {
    await rollIntoRecycled(first);
    await appendMany(first, 250);
  } finally {
    await first.close();
  }
  assert.ok(lastSegment(dir).fileBytes >= SEGMENT_BYTES - 2 * MAX_RECORD_BYTES, 'the clean close kept the recycled file whole');
  // The second run deletes nothing at its roll-over (no size bound), so no checkpoint hides the
  // sealed segment's end from recovery.
  const { retention: _bound, ...unbounded } = opts(dir);
  const s = await MessageStore.open({ ...unbounded, directWrites: false });
  try {
    const rolledFrom = lastSegment(dir).start;
    for (let rounds = 0; lastSegment(dir).start === rolledFrom && rounds < 200; rounds++) await appendMany(s, 100);
    assert.notEqual(lastSegment(dir).start, rolledFrom, 'the log rolled past the recycled segment');
    await appendMany(s, 100);
    const acked = new Map(s.queues('t').map((q) => [q.queueId, q.endOffset]));
    const copy = crashSnapshot(dir);
    copies.push(copy);
    const scan = await scanStore(copy);
    assert.deepEqual(scan.damage.filter((d) => d.kind === 'middle'), [], 'no previous life left behind the sealed segment\'s data');
    const re = await MessageStore.open({ ...unbounded, dir: copy, directWrites: false });
    try {
      assert.equal(re.recovery.damagedOffsets, 0);
      for (const q of re.queues('t')) assert.equal(q.endOffset, acked.get(q.queueId), `t/${q.queueId} ends where the acknowledged appends did`);
      await checkAll(re);
    } finally {
      await re.close();
    }
  } finally {
    await closeAndRemove(s, dir, copies);
  }
});
