import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync, openSync, writeSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { MessageStore, StoreCorruptError, StoreOffsetTruncatedError, nodeIo, verifyStore } from '../../src/store/index.js';
import { decodeDict, encodeDictEntry } from '../../src/store/format.js';
import { DIRECT_WRITE_ALIGN_BYTES } from '../../src/store/constants.js';
import { FaultyIo, crashSnapshot, payload, removeDir, segmentFiles, tempDir } from './helpers.js';

const SIZE = (i: number): number => 200 + ((i * 37) % 700);

/** A store with `n` records in queue t/0 (record i has SIZE(i) bytes), left open (not closed). */
async function writeStore(n: number, opts: { segmentBytes?: number; directWrites?: boolean } = {}): Promise<{ dir: string; store: MessageStore }> {
  const dir = tempDir();
  const store = await MessageStore.open({ dir, segmentBytes: opts.segmentBytes ?? 1 << 20, maxMessageBytes: 4096, directWrites: opts.directWrites });
  for (let i = 0; i < n; i++) await store.append('t', 0, payload('t', 0, i, SIZE(i)));
  return { dir, store };
}

/** Byte position of record `i` in the single segment (records are 36 + SIZE(i) each). */
function recordStart(i: number): number {
  let at = 0;
  for (let k = 0; k < i; k++) at += 36 + SIZE(k);
  return at;
}

function flipByte(path: string, at: number): void {
  const fd = openSync(path, 'r+');
  const b = Buffer.alloc(1);
  const cur = readFileSync(path).subarray(at, at + 1);
  b[0] = cur[0] ^ 0x5a;
  writeSync(fd, b, 0, 1, at);
  closeSync(fd);
}

async function expectIntact(s: MessageStore, n: number): Promise<void> {
  assert.equal(s.endOffset('t', 0), n);
  for (let o = 0; o < n; o += 100) {
    const got = await s.getRange('t', 0, o, 100);
    assert.equal(got.length, Math.min(100, n - o));
    got.forEach((b, k) => assert.deepEqual(b, payload('t', 0, o + k, SIZE(o + k)), `offset ${o + k}`));
  }
}

test('recovery: a crash snapshot reopens with every acknowledged record, not marked clean', async () => {
  const { dir, store } = await writeStore(300);
  const copy = crashSnapshot(dir);
  await store.close();
  const s = await MessageStore.open({ dir: copy, maxMessageBytes: 4096, segmentBytes: 1 << 20 });
  try {
    assert.equal(s.recovery.cleanShutdown, false);
    assert.equal(s.recovery.checkpoint.used, false);
    assert.equal(s.recovery.scannedRecords, 300);
    assert.deepEqual(s.recovery.damage, []);
    await expectIntact(s, 300);
  } finally {
    await s.close();
    removeDir(dir);
    removeDir(copy);
  }
});

// Direct writes (the default where the native writer is built) and writes through the page cache.
for (const directWrites of [true, false]) {
  const via = directWrites ? '' : ' (directWrites: false: no padding)';
  const direct = directWrites && nodeIo.directWrites === true;
  test(`recovery: the zeros direct writes leave after the last record of each segment file are its end, not damage${via}`, async () => {
    // 64 KiB segments: several of them, each ending in a partly written block.
    const { dir, store } = await writeStore(400, { segmentBytes: 64 * 1024, directWrites });
    const copy = crashSnapshot(dir);
    await store.close();
    try {
      const files = segmentFiles(copy);
      assert.ok(files.length >= 3, `several segments (${files.length})`);
      const padded = files.filter((f) => {
        const b = readFileSync(f);
        return b.length % DIRECT_WRITE_ALIGN_BYTES === 0 && b[b.length - 1] === 0;
      });
      assert.equal(padded.length > 0, direct, `segment files ending in padding: ${padded.length}`);
      const report = await verifyStore(copy, { maxMessageBytes: 4096 });
      assert.deepEqual([report.ok, report.damage, report.tail], [true, [], null]);
      const s = await MessageStore.open({ dir: copy, maxMessageBytes: 4096, segmentBytes: 64 * 1024, directWrites });
      try {
        assert.equal(s.recovery.cleanShutdown, false);
        assert.equal(s.stats().directWrites, direct);
        assert.deepEqual(s.recovery.damage, []);
        assert.equal(s.recovery.truncatedBytes, 0);
        assert.equal(s.recovery.scannedRecords, 400);
        await expectIntact(s, 400);
        // The log goes on over the padding of the last file.
        assert.equal(await s.append('t', 0, payload('t', 0, 400, SIZE(400))), 400);
        await expectIntact(s, 401);
      } finally {
        await s.close();
      }
      // A clean close cuts the padding of the last file: it ends where its last record does.
      const last = segmentFiles(copy).at(-1) as string;
      const again = await MessageStore.open({ dir: copy, maxMessageBytes: 4096, segmentBytes: 64 * 1024, directWrites });
      try {
        assert.equal(again.recovery.scannedBytes, 0, `a clean close leaves nothing to scan (${statSync(last).size} bytes in ${last})`);
        await expectIntact(again, 401);
      } finally {
        await again.close();
      }
    } finally {
      removeDir(dir);
      removeDir(copy);
    }
  });
}

for (const c of [
  { name: 'torn tail: the last record cut in its body', damage: (seg: string) => truncateSync(seg, recordStart(99) + 36 + 10), verdict: 'torn-body' },
  { name: 'truncated header: 10 bytes of the last header left', damage: (seg: string) => truncateSync(seg, recordStart(99) + 10), verdict: 'torn-header' },
  { name: 'flipped bit in the last record body', damage: (seg: string) => flipByte(seg, recordStart(99) + 36 + 5), verdict: 'bad-crc' },
  { name: 'flipped bit in the last record length', damage: (seg: string) => flipByte(seg, recordStart(99) + 11), verdict: 'bad-length' },
  { name: 'garbage appended after the last record', damage: (seg: string) => writeFileSync(seg, Buffer.alloc(77, 0xee), { flag: 'a' }), verdict: 'bad-magic' },
]) {
  test(`recovery: ${c.name} is cut on open; everything before it stays`, async () => {
    const { dir, store } = await writeStore(100);
    await store.close();
    rmSync(join(dir, 'index.ckpt')); // force a scan of the whole log
    const seg = segmentFiles(dir)[0];
    c.damage(seg);
    const whole = c.verdict === 'bad-magic'; // garbage after 100 whole records
    const s = await MessageStore.open({ dir, maxMessageBytes: 4096, segmentBytes: 1 << 20 });
    try {
      assert.equal(s.recovery.damage.length, 1);
      assert.equal(s.recovery.damage[0].kind, 'tail');
      assert.equal(s.recovery.damage[0].verdict, c.verdict);
      assert.ok(s.recovery.truncatedBytes > 0);
      assert.equal(statSync(seg).size, recordStart(whole ? 100 : 99));
      await expectIntact(s, whole ? 100 : 99);
      // The log goes on from the cut.
      assert.equal(await s.append('t', 0, payload('t', 0, whole ? 100 : 99, SIZE(99))), whole ? 100 : 99);
    } finally {
      await s.close();
    }
    const report = await verifyStore(dir, { maxMessageBytes: 4096 });
    assert.equal(report.ok, true);
    assert.equal(report.tail, null);
    removeDir(dir);
  });
}

test('recovery: damage in the middle of an older segment is reported, does not stop open, and reads of it reject CIRRUS_STORE_CORRUPT', async () => {
  // More than the unflushed window (16 MiB) of data, so the damaged record lies outside it.
  const dir = tempDir();
  const n = 2600;
  const body = 16_000;
  const rec = 36 + body;
  const opts = { dir, segmentBytes: 4 << 20, maxMessageBytes: 16 * 1024 };
  const store = await MessageStore.open(opts);
  for (let i = 0; i < n; i += 100) {
    await Promise.all(Array.from({ length: 100 }, (_, k) => store.append('t', 0, payload('t', 0, i + k, body))));
  }
  await store.close();
  const segs = segmentFiles(dir);
  assert.ok(segs.length >= 9);
  flipByte(segs[0], 10 * rec + 40); // a body byte of offset 10
  // With the checkpoint: open does not look at old data; the read finds the CRC mismatch.
  let s = await MessageStore.open(opts);
  try {
    assert.equal(s.recovery.checkpoint.used, true);
    await assert.rejects(s.getRange('t', 0, 10, 1), (e: unknown) => e instanceof StoreCorruptError && e.code === 'CIRRUS_STORE_CORRUPT' && /CRC/.test(e.message));
    await assert.rejects(s.getRange('t', 0, 5, 10), StoreCorruptError);
    assert.deepEqual(await s.getRange('t', 0, 11, 1), [payload('t', 0, 11, body)]);
  } finally {
    await s.close();
  }
  const report = await verifyStore(dir, { maxMessageBytes: 16 * 1024 });
  assert.equal(report.ok, false);
  assert.equal(report.damage.length, 1);
  assert.equal(report.damage[0].from, 10 * rec);
  assert.equal(report.damage[0].to, 11 * rec, 'resync finds the next record');
  assert.equal(report.offsetProblemCount, 1);
  // Without the checkpoint: the scan finds it, indexes offset 10 as damaged, keeps the rest.
  rmSync(join(dir, 'index.ckpt'));
  s = await MessageStore.open(opts);
  try {
    assert.equal(s.recovery.damage.length, 1);
    assert.equal(s.recovery.damage[0].kind, 'middle');
    assert.equal(s.recovery.damagedOffsets, 1);
    assert.equal(s.recovery.truncatedBytes, 0);
    assert.equal(s.endOffset('t', 0), n);
    await assert.rejects(s.getRange('t', 0, 10, 1), (e: unknown) => e instanceof StoreCorruptError && /damaged/.test(e.message));
    assert.deepEqual(await s.getRange('t', 0, 9, 1), [payload('t', 0, 9, body)]);
    const rest = await s.getRange('t', 0, 11, 100);
    rest.forEach((b, k) => assert.deepEqual(b, payload('t', 0, 11 + k, body)));
    assert.equal(await s.append('t', 0, Buffer.from('after')), n);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

/**
 * 400 records of 636 bytes over 64 KiB segments, closed, its checkpoint removed; then three
 * records zeroed from the `at`-th of the second-to-last segment, as an unfinished flush would
 * leave them. `kept`: the records before the hole.
 */
async function storeWithHole(at: number): Promise<{ dir: string; segs: string[]; kept: number }> {
  const dir = tempDir();
  const store = await MessageStore.open({ dir, segmentBytes: 64 * 1024, maxMessageBytes: 1024 });
  for (let i = 0; i < 400; i++) await store.append('t', 0, payload('t', 0, i, 600));
  await store.close();
  rmSync(join(dir, 'index.ckpt'));
  const segs = segmentFiles(dir);
  assert.ok(segs.length >= 3);
  const fd = openSync(segs[segs.length - 2], 'r+');
  writeSync(fd, Buffer.alloc(636 * 3), 0, 636 * 3, 636 * at);
  closeSync(fd);
  return { dir, segs, kept: Math.floor((64 * 1024) / 636) * (segs.length - 2) + at };
}

test('recovery: a hole inside the unflushed window cuts the log there, later segments included', async () => {
  // The head of the second-to-last segment.
  const { dir, segs, kept } = await storeWithHole(0);
  const s = await MessageStore.open({ dir, segmentBytes: 64 * 1024, maxMessageBytes: 1024 });
  try {
    assert.equal(s.recovery.damage[0].kind, 'tail');
    assert.equal(s.endOffset('t', 0), kept);
    assert.equal(segmentFiles(dir).length, segs.length - 1, 'the segment after the hole is removed');
    const got = await s.getRange('t', 0, kept - 3, 10);
    assert.equal(got.length, 3);
    assert.equal(await s.append('t', 0, payload('t', 0, kept, 600)), kept);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

// Cutting a torn tail that began in an earlier segment removes the later segments first, then
// cuts: a crash (here: a failed call stopping open) between the two steps must leave a log the
// next open cuts the same way, never a cut segment with later ones behind a hole.
for (const op of ['unlink', 'truncate'] as const) {
  test(`recovery: a torn tail cut across segments, interrupted (${op} fails), is cut the same way by the next open`, async () => {
    const opts = { segmentBytes: 64 * 1024, maxMessageBytes: 1024 };
    // Records in the middle of the second-to-last segment.
    const { dir, segs, kept } = await storeWithHole(20);
    const io = new FaultyIo();
    io.inject({ op, code: 'EIO', pathIncludes: '.seg' });
    await assert.rejects(MessageStore.open({ dir, io, ...opts }), new RegExp(`injected failure of ${op}`));
    const s = await MessageStore.open({ dir, ...opts });
    try {
      assert.ok(s.recovery.damage.length > 0 && s.recovery.damage.every((d) => d.kind === 'tail'), JSON.stringify(s.recovery.damage));
      assert.equal(s.recovery.damagedOffsets, 0);
      assert.equal(s.recovery.ignoredRecords, 0, 'no record behind the cut came back');
      assert.equal(s.endOffset('t', 0), kept);
      assert.equal(segmentFiles(dir).length, segs.length - 1, 'the segment after the cut is removed');
      for (let o = 0; o < kept; o += 100) {
        const got = await s.getRange('t', 0, o, 100);
        assert.equal(got.length, Math.min(100, kept - o));
        got.forEach((b, k) => assert.ok(b.equals(payload('t', 0, o + k, 600)), `offset ${o + k}`));
      }
      assert.equal(await s.append('t', 0, payload('t', 0, kept, 600)), kept);
    } finally {
      await s.close();
      removeDir(dir);
    }
  });
}

test('recovery: a torn or corrupt topic dictionary tail is cut', async () => {
  const { dir, store } = await writeStore(3);
  await store.close();
  writeFileSync(join(dir, 'topics.dict'), Buffer.from([1, 2, 3, 4, 5]), { flag: 'a' });
  const s = await MessageStore.open({ dir, maxMessageBytes: 4096, segmentBytes: 1 << 20 });
  try {
    assert.equal(s.recovery.dictionaryCutBytes, 5);
    await expectIntact(s, 3);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

/** Every file of `dir` with its bytes, to show that a refused open changed nothing. */
function filesOf(dir: string): Record<string, string> {
  return Object.fromEntries(readdirSync(dir).sort().map((f) => [f, createHash('sha256').update(readFileSync(join(dir, f))).digest('hex')]));
}

for (const where of ['its last entry', 'its first entry'] as const) {
  test(`recovery: a flipped bit in ${where} of the topic dictionary, whose topics the log uses, refuses open with CIRRUS_STORE_CORRUPT and changes nothing (no topic id or offset handed out twice)`, async () => {
    const dir = tempDir();
    const options = { dir, segmentBytes: 1 << 20, maxMessageBytes: 4096 };
    const s = await MessageStore.open(options);
    for (const t of ['alpha', 'beta', 'gamma']) for (let i = 0; i < 3; i++) await s.append(t, 0, payload(t, 0, i, 300));
    await s.close();
    const dict = join(dir, 'topics.dict');
    const bytes = readFileSync(dict);
    flipByte(dict, where === 'its last entry' ? bytes.length - 1 : 12);
    try {
      const before = filesOf(dir);
      await assert.rejects(MessageStore.open(options), (e: unknown) => {
        assert.ok(e instanceof StoreCorruptError, String(e));
        assert.match(e.message, /topic dictionary .* is damaged/);
        return true;
      });
      assert.deepEqual(filesOf(dir), before, 'the refused open changed no file (the dictionary is not cut, CLEAN stays)');
      const report = await verifyStore(dir, { maxMessageBytes: 4096 });
      assert.equal(report.ok, false, 'verify reports the damage');
      assert.ok(report.unknownTopicRecords > 0);
      // With the dictionary restored (from a backup), the store opens whole.
      writeFileSync(dict, bytes);
      const again = await MessageStore.open(options);
      try {
        for (const t of ['alpha', 'beta', 'gamma']) assert.deepEqual(await again.getRange(t, 0, 0, 10), [0, 1, 2].map((i) => payload(t, 0, i, 300)));
        assert.equal(await again.append('delta', 0, payload('delta', 0, 0, 300)), 0);
      } finally {
        await again.close();
      }
    } finally {
      removeDir(dir);
    }
  });
}

test('decodeDict: valid entries after bad bytes are damage in the middle; a torn last entry is not', () => {
  const entries = ['alpha', 'beta', 'gamma'].map((n, id) => encodeDictEntry(id, n));
  const all = Buffer.concat(entries);
  const flippedMiddle = Buffer.from(all);
  flippedMiddle[entries[0].length + 12] ^= 0x10; // a name byte of entry 1
  assert.deepEqual(decodeDict(flippedMiddle), { names: ['alpha'], validBytes: entries[0].length, damagedInMiddle: true });
  const flippedLength = Buffer.from(all);
  flippedLength[entries[0].length + 8] ^= 0x01; // entry 1's own length
  assert.equal(decodeDict(flippedLength).damagedInMiddle, true, 'found again past a length that rotted');
  for (let cut = 1; cut < entries[2].length; cut++) {
    const torn = all.subarray(0, all.length - cut);
    assert.deepEqual(decodeDict(torn), { names: ['alpha', 'beta'], validBytes: entries[0].length + entries[1].length, damagedInMiddle: false });
  }
});

for (const loss of ['the last segment file removed', 'the last segment cut short', 'the last segment cut short past the full checkpoint (its delta chain covers it)'] as const) {
  test(`recovery: ${loss} after a clean close: no acknowledged offset is handed out again, the lost ones read CIRRUS_STORE_CORRUPT, verify reports it`, async () => {
    const dir = tempDir();
    const options = { dir, segmentBytes: 64 * 1024, maxMessageBytes: 4096 };
    const s = await MessageStore.open(options);
    const deltaOnly = loss.includes('delta');
    for (let i = 0; i < 150; i++) {
      // With deltaOnly, the full checkpoint is taken early: what follows is covered by deltas only.
      if (deltaOnly && i === 20) await s.checkpoint({ full: true });
      await s.append('t', 0, payload('t', 0, i, 900));
    }
    await s.append('u', 0, payload('u', 0, 0, 900));
    await s.close();
    if (deltaOnly) assert.ok(statSync(join(dir, 'index.delta')).size > 0, 'the close wrote a delta');
    const segs = segmentFiles(dir);
    assert.ok(segs.length >= 2);
    const last = segs[segs.length - 1];
    if (loss === 'the last segment file removed') rmSync(last);
    else truncateSync(last, statSync(last).size - 100);
    try {
      const report = await verifyStore(dir, { maxMessageBytes: 4096 });
      assert.equal(report.ok, false);
      assert.ok(report.logShortOfCheckpoint !== null, 'the checkpoint covers more log than the files hold');
      const r = await MessageStore.open(options);
      try {
        assert.equal(r.endOffset('t', 0), 150, 't keeps its end');
        assert.equal(r.endOffset('u', 0), 1, 'u keeps its end, though its only record is gone');
        assert.ok(r.recovery.damagedOffsets > 0);
        assert.equal(await r.append('t', 0, payload('t', 0, 150, 900)), 150, 'the next offset is new');
        assert.equal(await r.append('u', 0, payload('u', 0, 1, 900)), 1);
        // Records still in the files read back; the lost ones answer CORRUPT or TRUNCATED, never other bytes.
        for (let o = 0; o <= 150; o++) {
          try {
            const [got] = await r.getRange('t', 0, o, 1);
            assert.deepEqual(got, payload('t', 0, o, 900), `t@${o}`);
          } catch (e) {
            assert.ok(e instanceof StoreCorruptError || e instanceof StoreOffsetTruncatedError, `t@${o}: ${String(e)}`);
          }
        }
        assert.deepEqual(await r.getRange('t', 0, 150, 1), [payload('t', 0, 150, 900)]);
        // Later appends, then kill -9: the reopen must not take the old checkpoint files' view
        // (their positions cover log the files lost, where the log now goes on).
        for (let i = 151; i < 200; i++) assert.equal(await r.append('t', 0, payload('t', 0, i, 900)), i);
        const copy = crashSnapshot(dir);
        try {
          const c = await MessageStore.open({ ...options, dir: copy });
          try {
            assert.equal(c.endOffset('t', 0), 200);
            assert.equal(c.endOffset('u', 0), 2);
            for (let o = 150; o < 200; o += 25) assert.deepEqual(await c.getRange('t', 0, o, 25), Array.from({ length: 25 }, (_, k) => payload('t', 0, o + k, 900)));
          } finally {
            await c.close();
          }
        } finally {
          removeDir(copy);
        }
      } finally {
        await r.close();
      }
      // And a clean reopen with nothing appended in between keeps the ends too (the damaged
      // entries are in the checkpoint the close wrote).
      for (let k = 0; k < 2; k++) {
        const again = await MessageStore.open(options);
        try {
          assert.deepEqual([again.endOffset('t', 0), again.endOffset('u', 0)], [200, 2]);
        } finally {
          await again.close();
        }
      }
    } finally {
      removeDir(dir);
    }
  });
}

test('recovery: a middle segment file lost, with the checkpoint inside it: the records after the hole stay indexed and no offset is handed out again', async () => {
  const dir = tempDir();
  const options = { dir, segmentBytes: 64 * 1024, maxMessageBytes: 4096 };
  const s = await MessageStore.open(options);
  for (let i = 0; i < 250; i++) {
    if (i === 100) await s.checkpoint({ full: true });
    await s.append('t', 0, payload('t', 0, i, 900));
    // Queue v ends inside the segment removed below: only the checkpoint knows its end.
    if (i === 10 || i === 80 || i === 90) await s.append('v', 0, payload('v', 0, s.endOffset('v', 0), 100));
  }
  // Kill -9: the last checkpoint is the one inside the segment removed below.
  const copy = crashSnapshot(dir);
  await s.close();
  try {
    const segs = segmentFiles(copy);
    assert.ok(segs.length >= 4, `${segs.length} segments`);
    rmSync(segs[1]);
    const r = await MessageStore.open({ ...options, dir: copy });
    try {
      assert.equal(r.endOffset('t', 0), 250);
      assert.equal(r.recovery.ignoredRecords, 0);
      // Killed right after that open: the checkpoint it wrote holds the ends (the damaged entries too).
      assert.equal(r.endOffset('v', 0), 3);
      const again = crashSnapshot(copy);
      try {
        const a = await MessageStore.open({ ...options, dir: again });
        try {
          assert.equal(a.endOffset('t', 0), 250);
          assert.equal(a.endOffset('v', 0), 3);
        } finally {
          await a.close();
        }
      } finally {
        removeDir(again);
      }
      let ok = 0;
      for (let o = 0; o < 250; o++) {
        try {
          const [got] = await r.getRange('t', 0, o, 1);
          assert.deepEqual(got, payload('t', 0, o, 900), `t@${o}`);
          ok++;
        } catch (e) {
          assert.ok(e instanceof StoreCorruptError, `t@${o}: ${String(e)}`);
        }
      }
      assert.ok(ok > 150, `records outside the lost file read back (${ok})`);
      assert.equal(await r.append('t', 0, payload('t', 0, 250, 900)), 250);
    } finally {
      await r.close();
    }
  } finally {
    removeDir(dir);
    removeDir(copy);
  }
});

test('recovery: a damaged index checkpoint refuses open once retention has deleted the log\'s head (the emptied queues\' ends are nowhere else); without retention a full scan rebuilds it', async () => {
  for (const retained of [true, false]) {
    const dir = tempDir();
    const options = { dir, segmentBytes: 64 * 1024, maxMessageBytes: 4096 };
    const s = await MessageStore.open(retained ? { ...options, retention: { maxTotalBytes: 150 * 1024 } } : options);
    for (let i = 0; i < 5; i++) await s.append('gone', 0, payload('gone', 0, i, 900));
    for (let i = 0; i < 300; i++) await s.append('t', 0, payload('t', 0, i, 900));
    await s.applyRetention();
    await s.close();
    const ckpt = join(dir, 'index.ckpt');
    flipByte(ckpt, Math.floor(readFileSync(ckpt).length / 2));
    try {
      if (retained) {
        const before = filesOf(dir);
        await assert.rejects(MessageStore.open(options), (e: unknown) => e instanceof StoreCorruptError && /index checkpoint .* is damaged/.test(e.message));
        assert.deepEqual(filesOf(dir), before, 'nothing was changed');
        // The documented way out: remove the checkpoint files, accept that emptied queues restart.
        rmSync(ckpt);
        rmSync(join(dir, 'index.delta'), { force: true });
      }
      const r = await MessageStore.open(options);
      try {
        assert.equal(r.endOffset('t', 0), 300);
        assert.equal(r.endOffset('gone', 0), retained ? 0 : 5);
      } finally {
        await r.close();
      }
    } finally {
      removeDir(dir);
    }
  }
});

test('recovery: a damaged dictionary whose lost topic only a delta checkpoint names (retention deleted its records) refuses open', async () => {
  const dir = tempDir();
  const options = { dir, segmentBytes: 64 * 1024, maxMessageBytes: 4096 };
  const s = await MessageStore.open({ ...options, retention: { maxTotalBytes: 150 * 1024 } });
  // Many queues: a full checkpoint large enough that the close writes a delta instead.
  for (let q = 0; q < 3000; q++) await s.append('A', q, Buffer.alloc(10, 1));
  await s.checkpoint({ full: true });
  for (let i = 0; i < 5; i++) await s.append('C', 0, payload('C', 0, i, 100));
  // C's records go with their segments; only the deltas know C/0 ended at 5.
  for (let i = 0; i < 60; i++) await s.append('A', 0, Buffer.alloc(3000, 2));
  await s.applyRetention();
  assert.deepEqual(s.queues('C').map((q) => [q.startOffset, q.endOffset]), [[5, 5]]);
  await s.close();
  const dict = join(dir, 'topics.dict');
  flipByte(dict, readFileSync(dict).length - 1); // C's entry, the last
  try {
    await assert.rejects(MessageStore.open(options), (e: unknown) => e instanceof StoreCorruptError && /topic dictionary .* is damaged/.test(e.message));
  } finally {
    removeDir(dir);
  }
});

test('recovery (property): random truncations and bit flips of the log never break open, never return wrong bytes', async () => {
  const { dir, store } = await writeStore(120);
  await store.close();
  rmSync(join(dir, 'index.ckpt'));
  const original = readFileSync(segmentFiles(dir)[0]);
  await fc.assert(
    fc.asyncProperty(
      fc.oneof(
        fc.record({ kind: fc.constant('truncate' as const), at: fc.nat({ max: original.length }) }),
        fc.record({ kind: fc.constant('flip' as const), at: fc.nat({ max: original.length - 1 }), bit: fc.nat({ max: 7 }) }),
      ),
      async (damage) => {
        const copy = crashSnapshot(dir);
        try {
          const seg = segmentFiles(copy)[0];
          const bytes = Buffer.from(original);
          let firstBad: number;
          if (damage.kind === 'truncate') {
            writeFileSync(seg, bytes.subarray(0, damage.at));
            firstBad = damage.at;
          } else {
            bytes[damage.at] ^= 1 << damage.bit;
            writeFileSync(seg, bytes);
            firstBad = damage.at;
          }
          // Records wholly before the damage must all be there.
          let intact = 0;
          while (intact < 120 && recordStart(intact + 1) <= firstBad) intact++;
          const s = await MessageStore.open({ dir: copy, maxMessageBytes: 4096, segmentBytes: 1 << 20 });
          try {
            const end = s.endOffset('t', 0);
            assert.ok(end >= intact, `kept ${end} >= ${intact}`);
            for (let o = 0; o < end; o++) {
              try {
                const [b] = await s.getRange('t', 0, o, 1);
                assert.deepEqual(b, payload('t', 0, o, SIZE(o)), `offset ${o}`);
              } catch (e) {
                assert.ok(e instanceof StoreCorruptError, String(e));
                assert.ok(o >= intact, 'only damaged records may fail');
              }
            }
            // Appends continue contiguously after recovery.
            assert.equal(await s.append('t', 0, Buffer.from('x')), end);
          } finally {
            await s.close();
          }
        } finally {
          removeDir(copy);
        }
      },
    ),
    { numRuns: 40 },
  );
  removeDir(dir);
});
