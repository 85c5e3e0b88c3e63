import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, constants as fsc, openSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { DIRECT_WRITE_ALIGN_BYTES } from '../../src/store/constants.js';
import { nativeDurableWrite, nativeDurableWriteUnavailable, type DurableWriteAddon } from '../../src/store/durable-write.js';
import { removeDir, tempDir } from './helpers.js';

const ALIGN = DIRECT_WRITE_ALIGN_BYTES;
// The addon is skipped at install only with CIRRUS_NATIVE_READS=off; CIRRUS_DIRECT_WRITES=off turns the writer off.
const expectNative = process.platform === 'linux' && process.env.CIRRUS_NATIVE_READS !== 'off' && process.env.CIRRUS_DIRECT_WRITES !== 'off';

test('durable write: the native writer is there wherever the addon is built on Linux', () => {
  assert.equal(nativeDurableWrite !== null, expectNative, nativeDurableWriteUnavailable);
});

/** Opens `path` for direct writes; the test directory is on a file system that takes O_DIRECT. */
function openDirect(path: string): number {
  return openSync(path, fsc.O_RDWR | fsc.O_CREAT | fsc.O_DIRECT, 0o644);
}

/** The bytes 0..n-1 of a deterministic stream, so any slice can be checked. */
function streamBytes(seed: number, n: number): Buffer {
  const out = Buffer.allocUnsafe(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** The file holds `expected` and then fewer than ALIGN zeros up to an aligned size (or nothing). */
function assertLog(path: string, expected: Buffer): void {
  const got = readFileSync(path);
  assert.ok(got.length >= expected.length, `file ${got.length} bytes, expected at least ${expected.length}`);
  assert.ok(got.subarray(0, expected.length).equals(expected), 'the written bytes, in order');
  const pad = got.length - expected.length;
  if (pad > 0) {
    assert.ok(pad < ALIGN && got.length % ALIGN === 0, `padding of ${pad} bytes to an aligned end (${got.length})`);
    assert.ok(got.subarray(expected.length).every((b) => b === 0), 'the padding is zeros');
  }
}

const native = nativeDurableWrite;
const skipWithout = native === null ? `no native writer: ${nativeDurableWriteUnavailable}` : false;

test('durable write (property): any split of a stream into writes, up to four in flight, leaves the stream on disk', { skip: skipWithout }, async () => {
  const dw = native as DurableWriteAddon;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.record({ bytes: fc.integer({ min: 1, max: 3 * ALIGN + 100 }), pieces: fc.integer({ min: 1, max: 4 }), inFlight: fc.integer({ min: 1, max: 4 }) }), { minLength: 1, maxLength: 30 }),
      fc.integer({ min: 1, max: 1 << 30 }),
      async (writes, seed) => {
        const dir = tempDir('cirrus-dw-');
        const path = join(dir, 'log');
        const total = writes.reduce((n, w) => n + w.bytes, 0);
        const data = streamBytes(seed, total);
        const fd = openDirect(path);
        try {
          const writer = dw.createWriter(fd, ALIGN);
          let at = 0;
          let k = 0;
          while (k < writes.length) {
            // Issue a group of writes at once: they must land in call order (shared blocks).
            const group = writes.slice(k, k + writes[k].inFlight);
            const calls: Promise<void>[] = [];
            for (const w of group) {
              const piece = Math.ceil(w.bytes / w.pieces);
              const bufs: Buffer[] = [];
              for (let o = 0; o < w.bytes; o += piece) bufs.push(data.subarray(at + o, at + Math.min(w.bytes, o + piece)));
              calls.push(dw.writeDurable(writer, bufs, at));
              at += w.bytes;
            }
            await Promise.all(calls);
            k += group.length;
          }
          assertLog(path, data);
        } finally {
          closeSync(fd);
          removeDir(dir);
        }
      },
    ),
    { numRuns: 40 },
  );
});

test('durable write: a new writer on an existing file, and a write after the file was cut back, keep the bytes before them', { skip: skipWithout }, async () => {
  const dw = native as DurableWriteAddon;
  const dir = tempDir('cirrus-dw-');
  const path = join(dir, 'log');
  const data = streamBytes(7, 5 * ALIGN);
  try {
    // Written by someone else first (the page cache, like a store recovered without direct writes).
    writeFileSync(path, data.subarray(0, 5000));
    let fd = openDirect(path);
    let writer = dw.createWriter(fd, ALIGN);
    await dw.writeDurable(writer, [data.subarray(5000, 9001)], 5000);
    assertLog(path, data.subarray(0, 9001));
    closeSync(fd);
    // A rollback cuts the file inside the carried block; the next write starts there.
    truncateSync(path, 8200);
    fd = openDirect(path);
    writer = dw.createWriter(fd, ALIGN);
    await dw.writeDurable(writer, [data.subarray(8200, 8300)], 8200);
    assertLog(path, data.subarray(0, 8300));
    // The same writer across a cut: the carry still matches the bytes below the cut.
    truncateSync(path, 8250);
    await dw.writeDurable(writer, [data.subarray(8250, 12000)], 8250);
    assertLog(path, data.subarray(0, 12000));
    // An empty write changes nothing (and still syncs).
    const before = readFileSync(path);
    await dw.writeDurable(writer, [Buffer.alloc(0)], 12000);
    assert.ok(readFileSync(path).equals(before));
    closeSync(fd);
  } finally {
    removeDir(dir);
  }
});

test('durable write: failures reject like node:fs, name the call, and change nothing before the position', { skip: skipWithout }, async () => {
  const dw = native as DurableWriteAddon;
  const dir = tempDir('cirrus-dw-');
  const path = join(dir, 'log');
  try {
    writeFileSync(path, Buffer.alloc(100, 7));
    const ro = openSync(path, fsc.O_RDONLY | fsc.O_DIRECT);
    const writer = dw.createWriter(ro, ALIGN);
    await assert.rejects(dw.writeDurable(writer, [Buffer.from('x')], 100), (e: NodeJS.ErrnoException) => e.code === 'EBADF' && e.syscall === 'pwrite');
    closeSync(ro);
    // The head of a write past the file's end cannot be read back: EIO from the head read, nothing written.
    const fd = openDirect(path);
    const w2 = dw.createWriter(fd, ALIGN);
    await assert.rejects(dw.writeDurable(w2, [Buffer.from('y')], 300), (e: NodeJS.ErrnoException) => e.code === 'EIO' && e.syscall === 'pread');
    assert.equal(statSync(path).size, 100);
    closeSync(fd);
  } finally {
    removeDir(dir);
  }
});

test('durable write: bad arguments throw a TypeError naming what was wrong', { skip: skipWithout }, () => {
  const dw = native as DurableWriteAddon;
  const isArg = (what: RegExp) => (e: unknown) => e instanceof TypeError && (e as NodeJS.ErrnoException).code === 'CIRRUS_STORE_INVALID_ARGUMENT' && what.test(e.message);
  assert.throws(() => dw.createWriter(-1, ALIGN), isArg(/fd/));
  assert.throws(() => dw.createWriter(0, 1000), isArg(/alignBytes/));
  assert.throws(() => dw.createWriter(0, 256), isArg(/alignBytes/));
  const writer = dw.createWriter(0, ALIGN);
  const call = dw.writeDurable as (...args: unknown[]) => Promise<void>;
  assert.throws(() => call({}, [Buffer.from('a')], 0), isArg(/writer/));
  assert.throws(() => call(writer, Buffer.from('a'), 0), isArg(/buffers/));
  assert.throws(() => call(writer, [], 0), isArg(/1 to 1024 buffers/));
  assert.throws(() => call(writer, ['a'], 0), isArg(/Uint8Array/));
  assert.throws(() => call(writer, [Buffer.from('a')], -1), isArg(/position/));
  assert.throws(() => call(writer, [Buffer.from('a')], 1.5), isArg(/position/));
});
