import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { READ_SLAB_BYTES, READ_SLAB_MAX_CUT_BYTES } from '../../src/store/constants.js';
import { ReadSlab } from '../../src/store/read-slab.js';

test('read slab: every copy holds its source bytes, no two copies share a byte, sources stay untouched (property)', () => {
  const source = randomBytes(READ_SLAB_MAX_CUT_BYTES * 3);
  const pristine = Buffer.from(source);
  fc.assert(
    fc.property(
      fc.array(
        fc.record({ from: fc.integer({ min: 0, max: source.length }), length: fc.integer({ min: 0, max: READ_SLAB_MAX_CUT_BYTES + 1_000 }) }),
        { minLength: 1, maxLength: 120 },
      ),
      (cuts) => {
        const slab = new ReadSlab();
        const copies = cuts.map(({ from, length }) => {
          const to = Math.min(source.length, from + length);
          return { from, to, copy: slab.copy(source, from, to) };
        });
        for (const { from, to, copy } of copies) {
          assert.equal(copy.length, to - from);
          assert.ok(copy.equals(source.subarray(from, to)), `bytes of [${from}, ${to})`);
          assert.notEqual(copy.buffer, source.buffer, 'a copy, not a view of its source');
          if (copy.length > READ_SLAB_MAX_CUT_BYTES) assert.equal(copy.buffer.byteLength, copy.length, 'large cuts get an allocation of their own');
          else assert.ok(copy.buffer.byteLength <= READ_SLAB_BYTES, 'small cuts come from a slab');
        }
        // Overwrite each copy in turn: its neighbours, cut from the same slab, keep their bytes.
        copies.forEach((c, i) => c.copy.fill(i & 0xff));
        copies.forEach((c, i) => assert.ok(c.copy.every((b) => b === (i & 0xff)), `copy ${i} was written by another copy`));
        assert.ok(source.equals(pristine), 'the source is never written');
      },
    ),
    { numRuns: 200 },
  );
});

test('read slab: a full slab is left to its copies and a new one starts; copies of a slab never pass its end', () => {
  const slab = new ReadSlab();
  const record = Buffer.alloc(READ_SLAB_MAX_CUT_BYTES, 7);
  const first = slab.copy(record, 0, record.length);
  const copies = [first];
  for (let i = 0; i < (READ_SLAB_BYTES / READ_SLAB_MAX_CUT_BYTES) * 2; i++) copies.push(slab.copy(record, 0, record.length - 3));
  const slabs = new Set(copies.map((c) => c.buffer));
  assert.ok(slabs.size >= 2, 'a second slab was started');
  for (const c of copies) assert.ok(c.byteOffset + c.length <= c.buffer.byteLength);
  assert.ok(first.every((b) => b === 7), 'the first slab\'s copies keep their bytes');
});

test('read slab: a range outside its source stops loudly rather than copying garbage', () => {
  const slab = new ReadSlab();
  assert.throws(() => slab.copy(Buffer.alloc(10), 5, 11), /a copy lies within its source/);
  assert.throws(() => slab.copy(Buffer.alloc(10), 6, 5), /a copy lies within its source/);
});

test('read slab: copies of every size, across slabs and past the largest cut, are exact and apart', () => {
  const slab = new ReadSlab();
  const sizes = [0, 1, 7, 8, 9, 4096, READ_SLAB_MAX_CUT_BYTES, READ_SLAB_MAX_CUT_BYTES + 1, 100, READ_SLAB_BYTES - 3];
  const source = randomBytes(READ_SLAB_BYTES);
  const copies = sizes.map((n) => slab.copy(source, 0, n));
  assert.deepEqual(copies.map((c) => c.length), sizes);
  copies.forEach((c) => assert.ok(c.equals(source.subarray(0, c.length))));
  copies.forEach((c, i) => c.fill(i + 1));
  copies.forEach((c, i) => assert.ok(c.every((b) => b === i + 1), `copy ${i} overlaps another`));
});
