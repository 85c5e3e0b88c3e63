import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, openSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import fc from 'fast-check';
import { MessageStore, createNodeIo, nodeIo } from '../../src/store/index.js';
import { resolveOptions } from '../../src/store/options.js';
import { FlushGate, nativePreadBatch, nativePreadUnavailable } from '../../src/store/pread-batch.js';
import { payload, removeDir, tempDir, withScratchFile } from './helpers.js';

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
      assert.throws(() => arity(file, [Buffer.alloc(1)], [0]), { ...invalid, message: /four or six arguments/ });
      assert.throws(() => arity(file, [Buffer.alloc(1)], [0], 0, new Int32Array(2)), { ...invalid, message: /four or six arguments/ });
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
