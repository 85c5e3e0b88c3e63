import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode } from '../../src/common/index.js';
import { MessageStore, StoreInvalidArgumentError, StoreIoError } from '../../src/store/index.js';
import { removeDir, tempDir } from './helpers.js';

type Call = (s: MessageStore) => Promise<unknown> | unknown;

const cases: { name: string; argument: string; call: Call }[] = [
  { name: 'append empty topic', argument: 'topic', call: (s) => s.append('', 0, Buffer.from('x')) },
  { name: 'append topic of 256 bytes', argument: 'topic', call: (s) => s.append('t'.repeat(256), 0, Buffer.from('x')) },
  { name: 'append topic of 86 three-byte chars', argument: 'topic', call: (s) => s.append('€'.repeat(86), 0, Buffer.from('x')) },
  { name: 'append topic with NUL', argument: 'topic', call: (s) => s.append('a\0b', 0, Buffer.from('x')) },
  { name: 'append topic with a lone high surrogate', argument: 'topic', call: (s) => s.append('t\uD800', 0, Buffer.from('x')) },
  { name: 'append topic with a lone low surrogate', argument: 'topic', call: (s) => s.append('\uDC01t', 0, Buffer.from('x')) },
  { name: 'getRange topic with a lone surrogate', argument: 'topic', call: (s) => s.getRange('\uD801', 0, 0, 1) },
  { name: 'append topic not a string', argument: 'topic', call: (s) => s.append(42 as unknown as string, 0, Buffer.from('x')) },
  { name: 'append negative queueId', argument: 'queueId', call: (s) => s.append('t', -1, Buffer.from('x')) },
  { name: 'append fractional queueId', argument: 'queueId', call: (s) => s.append('t', 1.5, Buffer.from('x')) },
  { name: 'append NaN queueId', argument: 'queueId', call: (s) => s.append('t', Number.NaN, Buffer.from('x')) },
  { name: 'append queueId above u32', argument: 'queueId', call: (s) => s.append('t', 2 ** 32, Buffer.from('x')) },
  { name: 'append data a string', argument: 'data', call: (s) => s.append('t', 0, 'hello' as unknown as Uint8Array) },
  { name: 'append data null', argument: 'data', call: (s) => s.append('t', 0, null as unknown as Uint8Array) },
  { name: 'append data above maxMessageBytes', argument: 'data', call: (s) => s.append('t', 0, Buffer.alloc(1025)) },
  { name: 'getRange empty topic', argument: 'topic', call: (s) => s.getRange('', 0, 0, 1) },
  { name: 'getRange negative queueId', argument: 'queueId', call: (s) => s.getRange('t', -3, 0, 1) },
  { name: 'getRange negative offset', argument: 'offset', call: (s) => s.getRange('t', 0, -1, 1) },
  { name: 'getRange fractional offset', argument: 'offset', call: (s) => s.getRange('t', 0, 0.5, 1) },
  { name: 'getRange fetchNum 0', argument: 'fetchNum', call: (s) => s.getRange('t', 0, 0, 0) },
  { name: 'getRange fetchNum 101', argument: 'fetchNum', call: (s) => s.getRange('t', 0, 0, 101) },
  { name: 'getRange fetchNum fractional', argument: 'fetchNum', call: (s) => s.getRange('t', 0, 0, 2.5) },
  { name: 'endOffset NUL topic', argument: 'topic', call: (s) => s.endOffset('\0', 0) },
  { name: 'endOffset negative queueId', argument: 'queueId', call: (s) => s.endOffset('t', -1) },
];

function snapshot(s: MessageStore): string {
  const st = s.stats();
  return JSON.stringify({ topics: s.topics(), queues: s.queues(), written: st.messagesWritten, bytes: st.bytesWritten });
}

test('validation: every bad input rejects with CIRRUS_STORE_INVALID_ARGUMENT naming the argument, and changes nothing', async () => {
  const dir = tempDir();
  const s = await MessageStore.open({ dir, maxMessageBytes: 1024, segmentBytes: 64 * 1024 });
  try {
    assert.equal(await s.append('t', 0, Buffer.from('first')), 0);
    const before = snapshot(s);
    for (const c of cases) {
      await assert.rejects(
        async () => c.call(s),
        (e: unknown) => {
          assert.ok(e instanceof StoreInvalidArgumentError, `${c.name}: ${String(e)}`);
          assert.equal(e.code, 'CIRRUS_STORE_INVALID_ARGUMENT', c.name);
          assert.equal(e.argument, c.argument, c.name);
          assert.match(e.message, new RegExp(`"${c.argument}"`), c.name);
          return true;
        },
        c.name,
      );
      assert.equal(snapshot(s), before, `${c.name} changed the store`);
    }
    // Edges that are valid.
    assert.equal(await s.append('t'.repeat(255), 2 ** 32 - 1, Buffer.alloc(1024)), 0);
    assert.equal(await s.append('t', 0, new Uint8Array(0)), 1);
    // A surrogate pair (one code point beyond the BMP) is well-formed.
    assert.equal(await s.append('t\uD83D\uDE00', 0, Buffer.from('pair')), 0);
    assert.deepEqual(await s.getRange('t', 0, 0, 100), [Buffer.from('first'), Buffer.alloc(0)]);
  } finally {
    await s.close();
    removeDir(dir);
  }
});

test('validation: bad open options name the option', async () => {
  const dir = tempDir();
  try {
    const bad: [Record<string, unknown>, string][] = [
      [{ dir: '' }, 'dir'],
      [{ dir, segmentBytes: 100 }, 'segmentBytes'],
      [{ dir, segmentBytes: 64 * 1024 }, 'segmentBytes'], // smaller than the default 4 MiB message
      [{ dir, maxMessageBytes: 0 }, 'maxMessageBytes'],
      [{ dir, memoryCacheBytes: -1 }, 'memoryCacheBytes'],
      [{ dir, sync: { mode: 'interval', intervalMs: 0 } }, 'sync.intervalMs'],
      [{ dir, sync: { mode: 'sometimes' } }, 'sync'],
      // An interval given to 'always' would look like a setting that took effect.
      [{ dir, sync: { mode: 'always', intervalMs: 5 } }, 'sync.intervalMs'],
      [{ dir: join(dir, 'st\0ore') }, 'dir'],
      [{ dir: join(dir, 'store'), fastTierDir: join(dir, 'fa\0st') }, 'fastTierDir'],
      [{ dir, retention: { maxAgeMs: -5 } }, 'retention.maxAgeMs'],
      [{ dir, directWrites: 'yes' }, 'directWrites'],
      // A misspelt option would otherwise leave its setting at the default without a word.
      [{ dir, memoryCacheByte: 1024 }, 'memoryCacheByte'],
      [{ dir, sync: { mode: 'interval', intervalMS: 5 } }, 'sync.intervalMS'],
      [{ dir, sync: 'always' }, 'sync'],
      [{ dir, retention: { maxAge: 1000 } }, 'retention.maxAge'],
      [{ dir, retention: 1000 }, 'retention'],
      // A file where the directory should be, or on its path.
      [{ dir: join(dir, 'a-file') }, 'dir'],
      [{ dir: join(dir, 'a-file', 'sub') }, 'dir'],
      [{ dir: join(dir, 'store'), fastTierDir: join(dir, 'a-file') }, 'fastTierDir'],
    ];
    writeFileSync(join(dir, 'a-file'), 'not a directory\n');
    for (const [opts, argument] of bad) {
      await assert.rejects(
        MessageStore.open(opts as unknown as { dir: string }),
        (e: unknown) => e instanceof StoreInvalidArgumentError && e.argument === argument,
        JSON.stringify(opts),
      );
    }
    // A good fastTierDir with a refused dir: the fast tier's directory, made first, goes again.
    await assert.rejects(
      MessageStore.open({ dir: join(dir, 'a-file', 'store'), fastTierDir: join(dir, 'fast-new') }),
      (e: unknown) => e instanceof StoreInvalidArgumentError && e.argument === 'dir',
    );
    assert.deepEqual(readdirSync(dir), ['a-file'], 'a refused open makes no directory');
    assert.equal(readFileSync(join(dir, 'a-file'), 'utf8'), 'not a directory\n');
    // Where mkdir fails with ENOENT under an existing parent (procfs, as root), Node 20's
    // recursive mkdir never settles; the store's answers with the error (EACCES for other users).
    // The error is typed (CIRRUS_STORE_IO), its cause the file system's.
    await assert.rejects(MessageStore.open({ dir: '/proc/self/cirrus-store' }), (e: unknown) => {
      assert.ok(e instanceof StoreIoError, String(e));
      assert.equal(e.code, 'CIRRUS_STORE_IO');
      assert.ok(['ENOENT', 'EACCES'].includes(errnoCode(e.cause) ?? ''), String(e.cause));
      return true;
    });
  } finally {
    removeDir(dir);
  }
});
