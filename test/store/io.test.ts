import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { nodeIo } from '../../src/store/index.js';
import { removeDir, tempDir, withScratchFile } from './helpers.js';

test('nodeIo: close() waits for the reads in flight on the raw descriptor; later calls reject with EBADF', async () => {
  const bytes = randomBytes(16 << 20);
  await withScratchFile(bytes, async (path) => {
    const f = await nodeIo.open(path, 'readwrite');
    const order: string[] = [];
    const bufs = Array.from({ length: 4 }, () => Buffer.alloc(4 << 20));
    // Reads queued in libuv's pool, then close at once: the descriptor must not go (and its number
    // be handed to the next open) while any of them has still to run.
    const reads = bufs.map((b, k) => f.read(b, 0, b.length, k * b.length).then((n) => {
      order.push(`read ${k}`);
      return n;
    }));
    const closed = f.close().then(() => order.push('close'));
    const got = await Promise.all(reads);
    await closed;
    assert.deepEqual(got, [4 << 20, 4 << 20, 4 << 20, 4 << 20]);
    bufs.forEach((b, k) => assert.ok(b.equals(bytes.subarray(k * b.length, (k + 1) * b.length)), `read ${k} got the file's bytes`));
    assert.equal(order[order.length - 1], 'close', `close resolved after every read (${order.join(', ')})`);
    assert.equal(await f.close().then(() => 'again'), 'again', 'a second close() is the same close');

    const ebadf = { code: 'EBADF' };
    await assert.rejects(f.read(Buffer.alloc(10), 0, 10, 0), ebadf);
    await assert.rejects(f.writev([Buffer.from('x')], 0), ebadf);
    await assert.rejects(f.datasync(), ebadf);
    await assert.rejects(f.truncate(0), ebadf);
    await assert.rejects(f.size(), ebadf);
  });
});

test('nodeIo: close() waits for a write and a sync in flight, and the data is there', async () => {
  const dir = tempDir();
  try {
    const path = join(dir, 'data');
    const f = await nodeIo.open(path, 'create');
    const data = randomBytes(8 << 20);
    const order: string[] = [];
    const wrote = f.writev([data.subarray(0, 4 << 20), data.subarray(4 << 20)], 0).then(() => order.push('writev'));
    await wrote;
    const synced = f.datasync().then(() => order.push('datasync'));
    const closed = f.close().then(() => order.push('close'));
    await Promise.all([synced, closed]);
    assert.deepEqual(order, ['writev', 'datasync', 'close']);
    const again = await nodeIo.open(path, 'read');
    try {
      assert.equal(await again.size(), data.length);
      const back = Buffer.alloc(data.length);
      assert.equal(await again.read(back, 0, back.length, 0), data.length);
      assert.ok(back.equals(data));
    } finally {
      await again.close();
    }
  } finally {
    removeDir(dir);
  }
});
