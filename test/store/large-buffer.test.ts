import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { MAPPED_BUFFERS_MAP_SHARE, MAPPED_BUFFER_MIN_BYTES, READ_SLAB_BYTES, WRITE_CHUNK_BYTES } from '../../src/store/constants.js';
import {
  allocLarge,
  holdMappedBufferPool,
  largeBuffersMapped,
  mappedBufferBytes,
  mappedBufferCount,
  mappedBufferFallbacks,
  mappedBufferLimit,
  mappedBufferPoolBytes,
  mappedBufferPoolLimit,
  setMappedBufferLimit,
  setMappedBufferPoolLimit,
} from '../../src/store/large-buffer.js';
import { nativeAddon, nativeAddonUnavailable } from '../../src/store/native.js';
import { MessageStore } from '../../src/store/index.js';
import { removeDir, tempDir } from './helpers.js';

// The addon is skipped at install only with CIRRUS_NATIVE_READS=off; CIRRUS_MAPPED_BUFFERS=off turns mapping off.
const expectMapped = process.platform === 'linux' && process.env.CIRRUS_NATIVE_READS !== 'off' && process.env.CIRRUS_MAPPED_BUFFERS !== 'off';
const skipUnmapped = largeBuffersMapped ? false : `large buffers are not mapped here: ${nativeAddonUnavailable || 'CIRRUS_MAPPED_BUFFERS=off'}`;
const PAGE_BYTES = 4096;

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Collects until the mapped bytes fall to `atMost` (finalizers unmap on a later turn of the loop). */
async function collectUntil(atMost: number): Promise<number> {
  for (let round = 0; round < 50 && mappedBufferBytes() > atMost; round++) {
    gc();
    await new Promise((resolve) => setImmediate(resolve));
  }
  return mappedBufferBytes();
}

test('large buffers: mapped wherever the addon is built on Linux', () => {
  assert.equal(largeBuffersMapped, expectMapped, nativeAddonUnavailable);
});

test('large buffers: every buffer is its own, holds what is written to it end to end, and is freed by the collector (property)', { skip: skipUnmapped }, async () => {
  const before = await collectUntil(0);
  await fc.assert(
    fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 3 * MAPPED_BUFFER_MIN_BYTES }), { minLength: 1, maxLength: 12 }), async (sizes) => {
      const start = mappedBufferBytes();
      let bufs: Buffer[] | null = sizes.map((n) => allocLarge(n));
      const expectedMapped = sizes.filter((n) => n >= MAPPED_BUFFER_MIN_BYTES).reduce((sum, n) => sum + Math.ceil(n / PAGE_BYTES) * PAGE_BYTES, 0);
      assert.equal(mappedBufferBytes() - start, expectedMapped, 'buffers from MAPPED_BUFFER_MIN_BYTES up are mapped, whole pages');
      bufs.forEach((b, i) => {
        assert.ok(Buffer.isBuffer(b));
        assert.equal(b.length, sizes[i]);
        b.fill(i + 1);
      });
      bufs.forEach((b, i) => assert.ok(b.every((x) => x === i + 1), `buffer ${i} kept its bytes beside the others`));
      bufs = null;
      assert.equal(await collectUntil(start), start, 'the collector unmaps what nothing references');
    }),
    { numRuns: 30 },
  );
  assert.equal(await collectUntil(before), before);
});

test('large buffers: bad sizes are refused by name and map nothing', { skip: nativeAddon === null ? nativeAddonUnavailable : false }, () => {
  const allocMapped = nativeAddon?.allocMapped as (bytes: unknown) => Buffer;
  const start = mappedBufferBytes();
  for (const bad of [0, -1, 1.5, Number.NaN, 2 ** 40, '4096', undefined]) {
    assert.throws(() => allocMapped(bad), { code: 'CIRRUS_STORE_INVALID_ARGUMENT', message: /allocMapped\(bytes\)/ }, String(bad));
  }
  assert.equal(mappedBufferBytes(), start);
});

/** Reads queue 3 back (in a function of its own, so nothing it read stays referenced). */
async function checkQueue3(store: MessageStore): Promise<void> {
  const got = await store.getRange('t', 3, 0, 100);
  assert.equal(got.length, 43);
  got.forEach((b, k) => assert.ok(b.equals(Buffer.alloc(10_000, (3 + 7 * k) & 0xff)), `record ${k} of queue 3`));
}

test('large buffers: a store keeps its cache chunks in mapped memory and gives it back when closed', { skip: skipUnmapped }, async () => {
  const dir = tempDir();
  try {
    const before = await collectUntil(0);
    let store: MessageStore | null = await MessageStore.open({ dir });
    for (let i = 0; i < 300; i++) await store.append('t', i % 7, Buffer.alloc(10_000, i & 0xff));
    assert.ok(mappedBufferBytes() - before >= 2 * WRITE_CHUNK_BYTES, `the cache's chunks are mapped (${mappedBufferBytes() - before} bytes)`);
    await checkQueue3(store);
    await store.close();
    store = null;
    assert.ok((await collectUntil(before)) <= before, 'a closed store holds no mapped memory once collected');
  } finally {
    removeDir(dir);
  }
});

test('large buffers: past the limit of live mappings they come from Node\'s allocator, and mapping resumes once those are collected', { skip: skipUnmapped }, async () => {
  assert.equal(mappedBufferLimit(), Math.floor(Number(readFileSync('/proc/sys/vm/max_map_count', 'utf8')) * MAPPED_BUFFERS_MAP_SHARE), 'a share of vm.max_map_count');
  await collectUntil(0);
  assert.equal(mappedBufferCount(), 0, 'nothing mapped is alive');
  const fallbacksBefore = mappedBufferFallbacks();
  const limitBefore = mappedBufferLimit();
  setMappedBufferLimit(3);
  try {
    let bufs: Buffer[] | null = Array.from({ length: 5 }, (_, i) => allocLarge(MAPPED_BUFFER_MIN_BYTES + i));
    assert.equal(mappedBufferCount(), 3, 'three mapped, up to the limit');
    assert.equal(mappedBufferFallbacks() - fallbacksBefore, 2, 'two from Node\'s allocator, counted');
    bufs.forEach((b, i) => {
      assert.equal(b.length, MAPPED_BUFFER_MIN_BYTES + i);
      b.fill(i + 1);
    });
    bufs.forEach((b, i) => assert.ok(b.every((x) => x === i + 1), `buffer ${i} kept its bytes`));
    bufs = null;
    await collectUntil(0);
    assert.equal(mappedBufferCount(), 0, 'the collector unmapped them');
    const again = allocLarge(MAPPED_BUFFER_MIN_BYTES);
    assert.equal(mappedBufferCount(), 1, 'mapped again once the earlier ones were unmapped');
    assert.equal(mappedBufferFallbacks() - fallbacksBefore, 2);
    assert.equal(again.length, MAPPED_BUFFER_MIN_BYTES);
  } finally {
    setMappedBufferLimit(limitBefore);
  }
});

/** Whether `b`, past its first 8 bytes (where the pool linked it in), is all one of the fills 1-5. */
function holdsOneFill(b: Buffer): boolean {
  const first = b[8];
  return first >= 1 && first <= 5 && b.subarray(8).every((x) => x === first);
}

test('large buffers: while a store is open, freed buffers of the standard sizes are kept up to the pool limit and handed out again as they are; other sizes are unmapped; with no store open the pool lets them go', { skip: skipUnmapped }, async () => {
  await collectUntil(0);
  const limitBefore = mappedBufferPoolLimit();
  const hold = holdMappedBufferPool();
  try {
    setMappedBufferPoolLimit(2 * READ_SLAB_BYTES);
    assert.equal(mappedBufferPoolBytes(), 0);
    let slabs: Buffer[] | null = Array.from({ length: 5 }, (_, i) => allocLarge(READ_SLAB_BYTES).fill(i + 1));
    let other: Buffer | null = allocLarge(MAPPED_BUFFER_MIN_BYTES).fill(9);
    slabs = null;
    other = null;
    assert.equal(await collectUntil(0), 0, 'the collector freed them all');
    assert.equal(mappedBufferPoolBytes(), 2 * READ_SLAB_BYTES, 'two slabs kept (the limit), the rest and the odd size unmapped');
    let reused: Buffer[] | null = [allocLarge(READ_SLAB_BYTES), allocLarge(READ_SLAB_BYTES)];
    assert.equal(mappedBufferPoolBytes(), 0, 'both handed out again');
    assert.ok(reused.every(holdsOneFill), 'a reused slab holds what its last user left (a new mapping is zeros)');
    let fresh: Buffer | null = allocLarge(READ_SLAB_BYTES);
    assert.ok(fresh.every((x) => x === 0), 'the pool empty: a new mapping');
    reused[0].fill(0xaa);
    assert.ok(reused[1].every((x) => x !== 0xaa) && fresh.every((x) => x === 0), 'each buffer its own memory');
    reused = null;
    fresh = null;
    assert.equal(await collectUntil(0), 0);
    assert.equal(mappedBufferPoolBytes(), 2 * READ_SLAB_BYTES, 'freed again: pooled again');
    hold.setBusy(false);
    assert.equal(mappedBufferPoolBytes(), 0, 'no busy holder (appends quiet): the pool unmapped');
    let idle: Buffer | null = allocLarge(READ_SLAB_BYTES);
    idle = null;
    assert.equal(await collectUntil(0), 0);
    assert.equal(mappedBufferPoolBytes(), 0, 'and keeps nothing while idle');
    hold.setBusy(true);
    let again: Buffer | null = allocLarge(READ_SLAB_BYTES);
    again = null;
    assert.equal(await collectUntil(0), 0);
    assert.equal(mappedBufferPoolBytes(), READ_SLAB_BYTES, 'busy again: pooling again');
    hold.release();
    hold.release(); // once only
    hold.setBusy(true); // a released hold cannot turn the pool back on
    assert.equal(mappedBufferPoolBytes(), 0, 'the last holder gone: the pool unmapped');
  } finally {
    hold.release();
    setMappedBufferPoolLimit(limitBefore);
  }
  assert.equal(await collectUntil(0), 0);
  assert.equal(mappedBufferPoolBytes(), 0, 'no store open: freed buffers are unmapped, not pooled');
  assert.throws(() => setMappedBufferPoolLimit(-1), { code: 'CIRRUS_STORE_INVALID_ARGUMENT', argument: 'bytes' });
  assert.throws(() => setMappedBufferPoolLimit(1.5), { code: 'CIRRUS_STORE_INVALID_ARGUMENT', argument: 'bytes' });
  assert.equal(mappedBufferPoolLimit(), limitBefore, 'a refused limit changes nothing');
});

test('large buffers: a bad limit is refused by name and changes nothing', () => {
  const fallbacksBefore = mappedBufferFallbacks();
  for (const bad of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
    assert.throws(() => setMappedBufferLimit(bad), { code: 'CIRRUS_STORE_INVALID_ARGUMENT', argument: 'count' }, String(bad));
  }
  assert.ok(mappedBufferLimit() > 3, 'the limit stands');
  const before = mappedBufferCount();
  const buf = allocLarge(MAPPED_BUFFER_MIN_BYTES);
  assert.equal(mappedBufferCount(), largeBuffersMapped ? before + 1 : 0, 'still mapping where buffers are mapped');
  assert.equal(mappedBufferFallbacks(), fallbacksBefore);
  assert.equal(buf.length, MAPPED_BUFFER_MIN_BYTES);
});
