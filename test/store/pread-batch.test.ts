import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, fsyncSync, openSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { MessageStore, createNodeIo, nodeIo } from '../../src/store/index.js';
import { readBatchAcross, type StoreFile } from '../../src/store/io.js';
import { resolveOptions } from '../../src/store/options.js';
import { FlushGate, nativePreadBatch, nativePreadUnavailable } from '../../src/store/pread-batch.js';
import { payload, removeDir, segmentFiles, tempDir, withScratchFile } from './helpers.js';

const nativeOff = process.env.CIRRUS_NATIVE_READS === 'off';

test('native batch reader: built by npm install and loaded (null, saying why, only with CIRRUS_NATIVE_READS=off)', () => {
  if (nativeOff) {
    assert.equal(nativePreadBatch, null);
    assert.match(nativePreadUnavailable, /CIRRUS_NATIVE_READS=off/);
    assert.equal(nodeIo.nativeReads, false);
  } else {
    assert.equal(typeof nativePreadBatch, 'function', `the addon did not load: ${nativePreadUnavailable}`);
    assert.equal(nativePreadUnavailable, '');
    assert.equal(nodeIo.nativeReads, true);
  }
  assert.equal(createNodeIo({ nativeReads: false }).nativeReads, false);
});

test('readBatch: native (any prefetch depth) and one-read-at-a-time give every buffer the file\'s bytes, short only where the file ends (property)', async () => {
  const size = 200_000;
  const bytes = randomBytes(size);
  await withScratchFile(bytes, async (path) => {
    const files = [await nodeIo.open(path, 'read'), await createNodeIo({ nativeReads: false }).open(path, 'read')];
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ position: fc.integer({ min: 0, max: size + 5_000 }), length: fc.integer({ min: 0, max: 70_000 }) }), { minLength: 1, maxLength: 40 }),
          fc.integer({ min: 0, max: 50 }),
          async (reads, prefetch) => {
            for (const f of files) {
              const bufs = reads.map((r) => Buffer.alloc(r.length, 0xee));
              const got = await f.readBatch(bufs, reads.map((r) => r.position), { prefetch });
              reads.forEach((r, k) => {
                const want = bytes.subarray(Math.min(r.position, size), Math.min(r.position + r.length, size));
                assert.equal(got[k], want.length, `read ${k} (${r.length} bytes at ${r.position}): bytes read`);
                assert.ok(bufs[k].subarray(0, got[k]).equals(want), `read ${k}: the file's bytes`);
                assert.ok(bufs[k].subarray(got[k]).every((b) => b === 0xee), `read ${k}: nothing written past the file's end`);
              });
            }
          },
        ),
        { numRuns: 150 },
      );
      for (const f of files) assert.deepEqual(await f.readBatch([], []), [], 'an empty batch reads nothing');
    } finally {
      for (const f of files) await f.close();
    }
  });
});

test('readBatchAcross: reads interleaved over several files give each buffer its own file\'s bytes, natively in one job and through other files one readBatch per file (property); bad arguments are named', async () => {
  const contents = [50_000, 80_000, 30_000].map((n) => randomBytes(n));
  const dir = tempDir();
  try {
    const paths = contents.map((bytes, k) => {
      const path = join(dir, `f${k}`);
      writeFileSync(path, bytes);
      return path;
    });
    const native = await Promise.all(paths.map((path) => nodeIo.open(path, 'read')));
    const plainIo = createNodeIo({ nativeReads: false });
    const plain = await Promise.all(paths.map((path) => plainIo.open(path, 'read')));
    // Files of another StoreIo (a test seam, say): one readBatch per file they hold reads of.
    let wrappedCalls = 0;
    const wrapped: StoreFile[] = native.map((f) => ({
      writev: (buffers, position) => f.writev(buffers, position),
      read: (buf, offset, length, position) => f.read(buf, offset, length, position),
      readBatch: (buffers, positions, how) => {
        wrappedCalls++;
        return f.readBatch(buffers, positions, how);
      },
      datasync: () => f.datasync(),
      truncate: (length) => f.truncate(length),
      size: () => f.size(),
      close: () => Promise.resolve(), // the native files below are closed once
    }));
    try {
      await fc.assert(
        fc.asyncProperty(
          fc.array(fc.record({ file: fc.integer({ min: 0, max: 2 }), position: fc.integer({ min: 0, max: 90_000 }), length: fc.integer({ min: 0, max: 20_000 }) }), { minLength: 1, maxLength: 40 }),
          fc.integer({ min: 0, max: 20 }),
          fc.boolean(),
          async (reads, prefetch, dropCached) => {
            for (const files of [native, plain, wrapped]) {
              const before = wrappedCalls;
              const bufs = reads.map((r) => Buffer.alloc(r.length, 0xee));
              const got = await readBatchAcross(reads.map((r) => files[r.file]), bufs, reads.map((r) => r.position), { prefetch, dropCached });
              reads.forEach((r, k) => {
                const bytes = contents[r.file];
                const want = bytes.subarray(Math.min(r.position, bytes.length), Math.min(r.position + r.length, bytes.length));
                assert.equal(got[k], want.length, `read ${k} (file ${r.file}, ${r.length} bytes at ${r.position}): bytes read`);
                assert.ok(bufs[k].subarray(0, got[k]).equals(want), `read ${k}: its own file's bytes`);
                assert.ok(bufs[k].subarray(got[k]).every((b) => b === 0xee), `read ${k}: nothing written past the file's end`);
              });
              if (files === wrapped) assert.equal(wrappedCalls - before, new Set(reads.map((r) => r.file)).size, 'one readBatch per file');
            }
          },
        ),
        { numRuns: 100 },
      );
      assert.deepEqual(await readBatchAcross([], [], []), [], 'an empty batch reads nothing');
      await assert.rejects(readBatchAcross([native[0]], [], []), { name: 'RangeError', message: /1 files, 0 buffers, 0 positions/ });
      const closed = await nodeIo.open(paths[1], 'read');
      await closed.close();
      await assert.rejects(readBatchAcross([native[0], closed], [Buffer.alloc(1), Buffer.alloc(1)], [0, 0]), { code: 'EBADF' }, 'a closed file among them: rejected before any pread');
      if (!nativeOff) {
        const batch = nativePreadBatch;
        assert.ok(batch !== null);
        assert.throws(() => batch(new Int32Array(1), [Buffer.alloc(1), Buffer.alloc(1)], [0, 0], 0), { code: 'CIRRUS_STORE_INVALID_ARGUMENT', message: /one descriptor per buffer/ });
        assert.throws(() => batch(Int32Array.of(0, -1), [Buffer.alloc(1), Buffer.alloc(1)], [0, 0], 0), { code: 'CIRRUS_STORE_INVALID_ARGUMENT', message: /every descriptor in fd must be >= 0/ });
        assert.throws(() => batch(new Float64Array(1) as unknown as Int32Array, [Buffer.alloc(1)], [0], 0), { code: 'CIRRUS_STORE_INVALID_ARGUMENT', message: /Int32Array of one descriptor per buffer/ });
      }
    } finally {
      for (const f of [...native, ...plain]) await f.close();
    }
  } finally {
    removeDir(dir);
  }
});

test('readBatch: a failed pread rejects like node:fs (code, errno, syscall); bad arguments throw naming them', { skip: nativeOff && 'CIRRUS_NATIVE_READS=off: the addon is not loaded; the fallback is the node:fs read tested above' }, async () => {
  const batch = nativePreadBatch;
  assert.ok(batch !== null);
  await withScratchFile(Buffer.alloc(100, 1), async (path, dir) => {
    // A directory opens read-only but every pread of it fails with EISDIR.
    const fd = openSync(dir, 'r');
    try {
      await assert.rejects(batch(fd, [Buffer.alloc(10)], [0], 0), { code: 'EISDIR', errno: -21, syscall: 'pread' });
      await assert.rejects(batch(fd, [Buffer.alloc(10)], [0], 8), { code: 'EISDIR', errno: -21, syscall: 'pread' }, 'advice that fails changes nothing');
    } finally {
      closeSync(fd);
    }
    const file = openSync(path, 'r');
    try {
      const invalid = { code: 'CIRRUS_STORE_INVALID_ARGUMENT' };
      assert.throws(() => batch(file, [Buffer.alloc(1)], [0, 1], 0), { ...invalid, message: /one position per buffer/ });
      assert.throws(() => batch(file, [new Uint16Array(2) as unknown as Uint8Array], [0], 0), { ...invalid, message: /Uint8Array/ });
      assert.throws(() => batch(file, [Buffer.alloc(1)], [-1], 0), { ...invalid, message: /non-negative safe integer/ });
      assert.throws(() => batch(file, [Buffer.alloc(1)], [0.5], 0), { ...invalid, message: /non-negative safe integer/ });
      for (const prefetch of [-1, 1.5, 1025, Number.NaN, '4' as unknown as number]) {
        assert.throws(() => batch(file, [Buffer.alloc(1)], [0], prefetch), { ...invalid, message: /prefetch must be a whole number of reads from 0 to 1024/ }, `prefetch ${String(prefetch)}`);
      }
      const arity = batch as unknown as (...args: unknown[]) => Promise<number[]>;
      assert.throws(() => arity(file, [Buffer.alloc(1)], [0]), { ...invalid, message: /four, six or seven arguments/ });
      assert.throws(() => arity(file, [Buffer.alloc(1)], [0], 0, new Int32Array(2)), { ...invalid, message: /four, six or seven arguments/ });
      assert.throws(() => batch(file, [Buffer.alloc(1)], [0], 0, null, 0, 1 as unknown as boolean), { ...invalid, message: /dropCached must be true or false/ });
      assert.deepEqual(await batch(file, [Buffer.alloc(3)], [0], 0, null, 0, false), [3], 'no gate: null');
      assert.throws(() => batch(-1, [Buffer.alloc(1)], [0], 0), { ...invalid, message: /descriptor/ });
      // Views into a larger buffer are filled where they lie, not at the start of their memory.
      const whole = Buffer.alloc(30, 0xee);
      assert.deepEqual(await batch(file, [whole.subarray(10, 20)], [95], 1), [5]);
      assert.deepEqual([...whole], [...Buffer.alloc(10, 0xee), ...Buffer.alloc(5, 1), ...Buffer.alloc(15, 0xee)]);
    } finally {
      closeSync(file);
    }
    const closed = await nodeIo.open(path, 'read');
    await closed.close();
    await assert.rejects(closed.readBatch([Buffer.alloc(1)], [0]), { code: 'EBADF' }, 'a batch on a closed file rejects before any pread');
  });
});

test('readBatch with a flush gate: reads wait while a flush holds it, go on when it is released, and never wait past maxYieldUs', { skip: nativeOff && 'CIRRUS_NATIVE_READS=off: only the native reader honours the gate' }, async () => {
  const bytes = randomBytes(64 << 10);
  await withScratchFile(bytes, async (path) => {
    const f = await nodeIo.open(path, 'read');
    try {
      const gate = new FlushGate(10_000_000);
      gate.hold();
      gate.hold();
      assert.equal(gate.held, 2);
      const bufs = [Buffer.alloc(1000), Buffer.alloc(2000)];
      let settled = false;
      const reading = f.readBatch(bufs, [5, 40_000], { gate, prefetch: 2 }).then((got) => {
        settled = true;
        return got;
      });
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(settled, false, 'the batch waits while flushes hold the gate');
      gate.release();
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(settled, false, 'one flush still holds it');
      gate.release();
      assert.deepEqual(await reading, [1000, 2000], 'released: the batch reads');
      assert.ok(bufs[0].equals(bytes.subarray(5, 1005)) && bufs[1].equals(bytes.subarray(40_000, 42_000)));
      assert.equal(gate.flag[1], 0, 'no reader is left counted as waiting');

      // A gate held for good: with no yield allowed the reads go on at once.
      const stuck = new FlushGate(0);
      stuck.hold();
      assert.deepEqual(await f.readBatch([Buffer.alloc(10)], [0], { gate: stuck }), [10]);
      // Bad gate arguments are refused, naming what was wrong.
      const batch = nativePreadBatch;
      assert.ok(batch !== null);
      assert.throws(() => batch(0, [], [], 0, new Int32Array(1), 0), { code: 'CIRRUS_STORE_INVALID_ARGUMENT', message: /two elements/ });
      assert.throws(() => batch(0, [], [], 0, new Int32Array(2), -1), { code: 'CIRRUS_STORE_INVALID_ARGUMENT', message: /maxYieldUs/ });
    } finally {
      await f.close();
    }
  });
});

/** Bytes of `path` in the OS page cache (fincore, util-linux). */
function residentBytes(path: string): number {
  return Number(execFileSync('fincore', ['--bytes', '--noheadings', '--raw', '--output', 'RES', path], { encoding: 'utf8' }).trim());
}

const PAGE_BYTES = Number(execFileSync('getconf', ['PAGESIZE'], { encoding: 'utf8' }).trim());

test('readBatch with dropCached: each read drops the whole pages it lies over from the page cache and keeps the partial pages at its ends', { skip: nativeOff && 'CIRRUS_NATIVE_READS=off: only the native reader drops pages' }, async () => {
  const page = PAGE_BYTES;
  const bytes = randomBytes(64 * page);
  await withScratchFile(bytes, async (path) => {
    const f = await nodeIo.open(path, 'read');
    try {
      // Written back first: the kernel drops clean pages only (a dirty one is written back instead).
      const sync = openSync(path, 'r+');
      fsyncSync(sync);
      closeSync(sync);
      assert.deepEqual(await f.readBatch([Buffer.alloc(64 * page)], [0], { dropCached: true }), [64 * page]);
      assert.equal(residentBytes(path), 0, 'a read of the whole file drops all of it');
      // Cached a page at a time, as history reads bring pages in (each announced with WILLNEED):
      // a sequential read would have the kernel cache large folios, which it drops only whole.
      const pages = Array.from({ length: 64 }, () => Buffer.alloc(page));
      await f.readBatch(pages, pages.map((_, k) => k * page), { prefetch: 64 });
      assert.equal(residentBytes(path), 64 * page, 'every page cached');
      const bufs = [Buffer.alloc(3 * page), Buffer.alloc(2 * page), Buffer.alloc(page - 10), Buffer.alloc(2 * page)];
      // [100, 100 + 3 pages): pages 1 and 2 wholly inside; [16 pages, 18 pages): 16 and 17; a read
      // inside one page: none; [40 pages - 1, 42 pages - 1): page 40.
      const positions = [100, 16 * page, 30 * page + 5, 40 * page - 1];
      assert.deepEqual(await f.readBatch(bufs, positions, { prefetch: 2 }), bufs.map((b) => b.length));
      assert.equal(residentBytes(path), 64 * page, 'without dropCached nothing leaves the page cache');
      assert.deepEqual(await f.readBatch(bufs, positions, { prefetch: 2, dropCached: true }), bufs.map((b) => b.length));
      bufs.forEach((b, k) => assert.ok(b.equals(bytes.subarray(positions[k], positions[k] + b.length)), `read ${k}: the file's bytes`));
      assert.equal(residentBytes(path), (64 - 5) * page, 'pages 1, 2, 16, 17 and 40 dropped; the partial ones kept');
      // The file's end: a read cut short drops only what it read.
      assert.deepEqual(await f.readBatch([Buffer.alloc(4 * page)], [62 * page], { dropCached: true }), [2 * page]);
      assert.equal(residentBytes(path), (64 - 7) * page);
    } finally {
      await f.close();
    }
  });
});

test('historyPageCache: a cold getRange leaves only the partial pages at its records\' ends in the page cache with drop (the default), all it read with keep; a bad value is refused', { skip: nativeOff && 'CIRRUS_NATIVE_READS=off: only the native reader drops pages' }, async () => {
  const batch = nativePreadBatch;
  assert.ok(batch !== null);
  const dir = tempDir();
  try {
    // 8 queues interleaved, records of 10-14 KB: every record of queue 0 lies over two or more
    // whole pages, between records of other queues.
    const size = (q: number, o: number): number => 10_000 + ((o * 131 + q * 17) % 4_000);
    const s = await MessageStore.open({ dir, memoryCacheBytes: 0, segmentBytes: 8 << 20 });
    for (let o = 0; o < 60; o++) for (let q = 0; q < 8; q++) await s.append('t', q, payload('t', q, o, size(q, o)));
    await s.close();
    const [seg] = segmentFiles(dir);
    const dropAll = async (): Promise<void> => {
      const fd = openSync(seg, 'r');
      try {
        const bytes = statSync(seg).size;
        await batch(fd, [Buffer.alloc(bytes)], [0], 0, null, 0, true);
      } finally {
        closeSync(fd);
      }
      assert.ok(residentBytes(seg) <= PAGE_BYTES, `the segment out of the page cache before the read (${residentBytes(seg)} bytes of ${statSync(seg).size} resident)`);
    };
    const resident: Record<string, number> = {};
    for (const historyPageCache of ['drop', 'keep', undefined] as const) {
      await dropAll();
      // memoryCacheBytes 0: no memory tier, no read-ahead, and every log read counts as history.
      const again = await MessageStore.open({ dir, memoryCacheBytes: 0, segmentBytes: 8 << 20, historyPageCache });
      try {
        assert.equal(again.stats().historyReads.pageCache, historyPageCache ?? 'drop');
        const got = await again.getRange('t', 0, 0, 60);
        got.forEach((b, o) => assert.ok(b.equals(payload('t', 0, o, size(0, o))), `t/0@${o} (${String(historyPageCache)})`));
      } finally {
        await again.close();
      }
      resident[String(historyPageCache)] = residentBytes(seg) / PAGE_BYTES;
    }
    const recordPages = Math.ceil((60 * 10_000) / PAGE_BYTES);
    assert.ok(resident.keep >= recordPages, `keep: the records' pages stay cached (${resident.keep} pages, records cover ${recordPages}+)`);
    // + 1: the segment's last, partial page, which dropAll left.
    assert.ok(resident.drop <= 2 * 60 + 1, `drop: at most the two partial pages of each record stay (${resident.drop} pages)`);
    assert.ok(resident.undefined <= 2 * 60 + 1, `default (drop): ${resident.undefined} pages`);
    await assert.rejects(MessageStore.open({ dir, historyPageCache: 'evict' as unknown as 'drop' }), { code: 'CIRRUS_STORE_INVALID_ARGUMENT', message: /historyPageCache/ });
  } finally {
    removeDir(dir);
  }
});

test('history read batches never take the whole thread pool (a flush waiting behind batches at its own gate would stall), and a one-thread pool turns the gate off', () => {
  const saved = process.env.UV_THREADPOOL_SIZE;
  try {
    for (const [pool, asked, busy, idle, gate] of [
      ['1', undefined, 1, 1, false],
      ['2', undefined, 1, 1, true],
      ['4', undefined, 3, 3, true],
      ['4', 1024, 3, 3, true],
      ['8', undefined, 3, 7, true],
      ['8', 1, 1, 7, true],
      ['8', 1024, 7, 7, true],
    ] as const) {
      process.env.UV_THREADPOOL_SIZE = pool;
      const o = resolveOptions({ dir: '/nonexistent', coldReadConcurrency: asked });
      assert.deepEqual(
        { busy: o.coldReadConcurrency, idle: o.idleColdReadConcurrency, gate: o.gateHistoryReads },
        { busy, idle, gate },
        `UV_THREADPOOL_SIZE=${pool}, coldReadConcurrency ${asked}`,
      );
    }
  } finally {
    if (saved === undefined) delete process.env.UV_THREADPOOL_SIZE;
    else process.env.UV_THREADPOOL_SIZE = saved;
  }
});

test('cold getRange: the same records from disk with native batches and with one fs.read per span', async () => {
  const dir = tempDir();
  try {
    // 6 queues interleaved: each queue's records lie apart in the log, so a cold read is many spans.
    const s = await MessageStore.open({ dir, memoryCacheBytes: 1 << 20 });
    for (let o = 0; o < 300; o++) for (let q = 0; q < 6; q++) await s.append('t', q, payload('t', q, o, 700 + ((o * 37 + q) % 3000)));
    await s.close();
    for (const io of [nodeIo, createNodeIo({ nativeReads: false })]) {
      const again = await MessageStore.open({ dir, memoryCacheBytes: 1 << 20, io });
      try {
        assert.equal(again.stats().historyReads.nativeBatches, io.nativeReads === true);
        for (let q = 0; q < 6; q++) {
          for (let o = 0; o < 300; o += 100) {
            const got = await again.getRange('t', q, o, 100);
            assert.equal(got.length, 100);
            got.forEach((b, k) => assert.ok(b.equals(payload('t', q, o + k, 700 + (((o + k) * 37 + q) % 3000))), `t/${q}@${o + k} (native ${io.nativeReads})`));
          }
        }
        assert.ok(again.stats().cache.memory.misses > 0, 'the reads went to the log');
      } finally {
        await again.close();
      }
    }
  } finally {
    removeDir(dir);
  }
});
