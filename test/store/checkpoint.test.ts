import { test } from 'node:test';
import assert from 'node:assert/strict';
import { openSync, rmSync, writeSync, closeSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MessageStore } from '../../src/store/index.js';
import { crashSnapshot, payload, removeDir, tempDir } from './helpers.js';

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
