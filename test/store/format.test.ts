import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import {
  RECORD_HEADER_BYTES,
  RECORD_VERSION,
  RECORD_VERSION_UNSEEDED,
  decodeCleanMarker,
  decodeDict,
  decodeHeader,
  encodeCleanMarker,
  encodeDictEntry,
  encodeRecord,
  parseSegmentFileName,
  positionSeed,
  segmentFileName,
} from '../../src/store/format.js';
import { crc32c } from '../../src/store/crc.js';
import { classifyRecord } from '../../src/store/recovery.js';

const MAX_BODY = 4096;

const recordArb = fc.record({
  topicId: fc.nat({ max: 0xffff_ffff }),
  queueId: fc.nat({ max: 0xffff_ffff }),
  queueOffset: fc.maxSafeNat(),
  timestampMs: fc.nat({ max: 2 ** 48 }),
  body: fc.uint8Array({ maxLength: 600 }),
  position: fc.maxSafeNat(),
});

test('format: encode then decode gives the same fields and body, and classifies ok', () => {
  fc.assert(
    fc.property(recordArb, fc.nat({ max: 64 }), (r, at) => {
      const buf = Buffer.alloc(at + RECORD_HEADER_BYTES + r.body.length + 8);
      const n = encodeRecord(buf, at, r.position, r.topicId, r.queueId, r.queueOffset, r.timestampMs, r.body);
      assert.equal(n, RECORD_HEADER_BYTES + r.body.length);
      const h = decodeHeader(buf, at);
      assert.equal(h.bodyBytes, r.body.length);
      assert.equal(h.topicId, r.topicId);
      assert.equal(h.queueId, r.queueId);
      assert.equal(h.queueOffset, r.queueOffset);
      assert.equal(h.timestampMs, r.timestampMs);
      assert.deepEqual(new Uint8Array(buf.subarray(at + RECORD_HEADER_BYTES, at + n)), r.body);
      assert.equal(classifyRecord(buf, at, n, MAX_BODY, r.position), 'ok');
    }),
    { numRuns: 300 },
  );
});

test('format: any single flipped bit makes the record classify as not ok', () => {
  fc.assert(
    fc.property(recordArb, fc.nat(), fc.nat({ max: 7 }), (r, bytePick, bit) => {
      const n = RECORD_HEADER_BYTES + r.body.length;
      const buf = Buffer.alloc(n);
      encodeRecord(buf, 0, r.position, r.topicId, r.queueId, r.queueOffset, r.timestampMs, r.body);
      const i = bytePick % n;
      buf[i] ^= 1 << bit;
      assert.notEqual(classifyRecord(buf, 0, n, MAX_BODY, r.position), 'ok');
    }),
    { numRuns: 500 },
  );
});

test('format: any truncation of a record classifies as torn, never ok', () => {
  fc.assert(
    fc.property(recordArb, fc.nat(), (r, cutPick) => {
      const n = RECORD_HEADER_BYTES + r.body.length;
      const buf = Buffer.alloc(n);
      encodeRecord(buf, 0, r.position, r.topicId, r.queueId, r.queueOffset, r.timestampMs, r.body);
      const avail = cutPick % n;
      const v = classifyRecord(buf, 0, avail, MAX_BODY, r.position);
      if (avail === 0) assert.equal(v, 'end');
      else if (avail < RECORD_HEADER_BYTES) assert.equal(v, 'torn-header');
      else assert.equal(v, 'torn-body');
    }),
    { numRuns: 300 },
  );
});

test('format: the recovery decision table, every combination lands in exactly its row', () => {
  // Columns: bytes left?, whole header?, magic ok?, length <= max?, body fits?, CRC ok?
  const bools = [false, true];
  let cases = 0;
  for (const headerWhole of bools)
    for (const magicOk of bools)
      for (const lengthOk of bools)
        for (const bodyFits of bools)
          for (const crcOk of bools) {
            const body = Buffer.alloc(100, 7);
            const buf = Buffer.alloc(RECORD_HEADER_BYTES + 200);
            encodeRecord(buf, 0, 4096, 1, 2, 3, 4, body);
            if (!magicOk) buf[0] ^= 0xff;
            if (!lengthOk) buf.writeUInt32LE(MAX_BODY + 1, 8);
            if (!crcOk) buf[RECORD_HEADER_BYTES + 5] ^= 1;
            let avail = RECORD_HEADER_BYTES + body.length;
            if (!bodyFits) avail = RECORD_HEADER_BYTES + 10;
            if (!headerWhole) avail = 20;
            const expected = !headerWhole
              ? 'torn-header'
              : !magicOk
                ? 'bad-magic'
                : !lengthOk
                  ? 'bad-length'
                  : !bodyFits
                    ? 'torn-body'
                    : !crcOk
                      ? 'bad-crc'
                      : 'ok';
            assert.equal(classifyRecord(buf, 0, avail, MAX_BODY, 4096), expected, JSON.stringify({ headerWhole, magicOk, lengthOk, bodyFits, crcOk }));
            cases++;
          }
  assert.equal(cases, 32);
  assert.equal(classifyRecord(Buffer.alloc(0), 0, 0, MAX_BODY, 0), 'end');
});

test('format: a record is valid only at the log position it was written for (version 2)', () => {
  fc.assert(
    fc.property(recordArb, fc.maxSafeNat(), (r, other) => {
      fc.pre(positionSeed(other) !== positionSeed(r.position));
      const n = RECORD_HEADER_BYTES + r.body.length;
      const buf = Buffer.alloc(n);
      encodeRecord(buf, 0, r.position, r.topicId, r.queueId, r.queueOffset, r.timestampMs, r.body);
      assert.equal(buf[2], RECORD_VERSION);
      assert.equal(classifyRecord(buf, 0, n, MAX_BODY, r.position), 'ok');
      // What a recycled segment file holds from its previous life: the same bytes, another position.
      assert.equal(classifyRecord(buf, 0, n, MAX_BODY, other), 'bad-crc');
    }),
    { numRuns: 300 },
  );
  // Positions of one log never share a seed below 2^32 GiB apart.
  assert.notEqual(positionSeed(0), positionSeed(1));
  assert.notEqual(positionSeed(2 ** 32), positionSeed(0));
  assert.equal(positionSeed(2 ** 32 + 5), 1 ^ 5);
});

test('format: version-1 records (CRC from 0, written before 2026-11-29) are still read, at any position', () => {
  fc.assert(
    fc.property(recordArb, (r) => {
      const n = RECORD_HEADER_BYTES + r.body.length;
      const buf = Buffer.alloc(n);
      encodeRecord(buf, 0, r.position, r.topicId, r.queueId, r.queueOffset, r.timestampMs, r.body);
      // Rewrite as version 1: the CRC over the same bytes, seeded with 0.
      buf[2] = RECORD_VERSION_UNSEEDED;
      buf.writeUInt32LE(crc32c(buf.subarray(8, n)), 4);
      assert.equal(classifyRecord(buf, 0, n, MAX_BODY, r.position), 'ok');
      assert.equal(classifyRecord(buf, 0, n, MAX_BODY, r.position + 1), 'ok');
      buf[n - 1] ^= 1;
      assert.notEqual(classifyRecord(buf, 0, n, MAX_BODY, r.position), 'ok');
    }),
    { numRuns: 200 },
  );
});

test('format: topic dictionary round-trips and stops at a torn or corrupt entry', () => {
  fc.assert(
    fc.property(fc.array(fc.string({ minLength: 1, maxLength: 40 }).filter((s) => !s.includes('\0')), { maxLength: 20 }), fc.nat(), (names, cutPick) => {
      const entries = names.map((n, i) => encodeDictEntry(i, n));
      const all = Buffer.concat(entries);
      assert.deepEqual(decodeDict(all).names, names);
      assert.equal(decodeDict(all).validBytes, all.length);
      if (all.length === 0) return;
      const cut = cutPick % all.length;
      const res = decodeDict(all.subarray(0, cut));
      let whole = 0;
      let bytes = 0;
      while (whole < entries.length && bytes + entries[whole].length <= cut) bytes += entries[whole++].length;
      assert.deepEqual(res.names, names.slice(0, whole));
      assert.equal(res.validBytes, bytes);
    }),
    { numRuns: 200 },
  );
  const entries = [encodeDictEntry(0, 'a'), encodeDictEntry(1, 'b'), encodeDictEntry(2, 'c')];
  const all = Buffer.concat(entries);
  all[entries[0].length + 10] ^= 1; // flip the name byte of "b"
  assert.deepEqual(decodeDict(all).names, ['a']);
});

test('format: segment file names carry their start position', () => {
  fc.assert(
    fc.property(fc.maxSafeNat(), (start) => {
      const name = segmentFileName(start);
      assert.equal(name.length, 24);
      assert.equal(parseSegmentFileName(name), start);
    }),
  );
  assert.equal(parseSegmentFileName('topics.dict'), null);
  assert.equal(parseSegmentFileName('0000000000000000000x.seg'), null);
  assert.equal(parseSegmentFileName('00000000000000000000.seg.tmp'), null);
});

test('format: the CLEAN marker names the log end; a torn, corrupt or empty one names nothing', () => {
  fc.assert(
    fc.property(fc.maxSafeNat(), fc.nat(), fc.nat({ max: 7 }), (end, pick, bit) => {
      const m = encodeCleanMarker(end);
      assert.equal(decodeCleanMarker(m), end);
      assert.equal(decodeCleanMarker(m.subarray(0, pick % m.length)), null, 'a torn marker');
      const flipped = Buffer.from(m);
      flipped[pick % m.length] ^= 1 << bit;
      assert.equal(decodeCleanMarker(flipped), null, 'a corrupt marker');
    }),
    { numRuns: 300 },
  );
  assert.equal(decodeCleanMarker(Buffer.alloc(0)), null, 'the empty marker of stores closed before it named the end');
});
