import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { MessageStore, StoreInvalidArgumentError, StoreMetrics } from '../../src/store/index.js';
import { removeDir, tempDir } from './helpers.js';

/** The value of `metric{labels}` in a Prometheus text exposition, or undefined. */
function valueOf(text: string, metric: string, labels: Record<string, string>): number | undefined {
  const want = Object.entries(labels)
    .map(([k, v]) => `${k}="${v}"`)
    .sort()
    .join(',');
  for (const line of text.split('\n')) {
    const m = /^([a-z0-9_]+)\{([^}]*)\} (\S+)$/.exec(line);
    if (m === null || m[1] !== metric) continue;
    if (m[2].split(',').sort().join(',') === want) return Number(m[3]);
  }
  return undefined;
}

test('metrics: a scrape reports what stats() says, per store, and drops a closed store', async () => {
  const dirA = tempDir();
  const dirB = tempDir();
  const a = await MessageStore.open({ dir: dirA });
  const b = await MessageStore.open({ dir: dirB });
  try {
    const registry = new Registry();
    const metrics = new StoreMetrics(registry);
    metrics.add('a', a);
    metrics.add('b', b);
    for (let i = 0; i < 25; i++) await a.append('orders', i % 3, Buffer.alloc(100, i));
    await b.append('audit', 0, Buffer.from('one'));
    assert.equal((await a.getRange('orders', 0, 0, 100)).length, 9);

    const text = await registry.metrics();
    const sa = a.stats();
    assert.equal(valueOf(text, 'cirrus_store_written_messages_total', { store: 'a' }), 25);
    assert.equal(valueOf(text, 'cirrus_store_written_messages_total', { store: 'b' }), 1);
    assert.equal(valueOf(text, 'cirrus_store_written_bytes_total', { store: 'a' }), sa.bytesWritten);
    assert.equal(valueOf(text, 'cirrus_store_read_messages_total', { store: 'a' }), 9);
    assert.equal(valueOf(text, 'cirrus_store_read_bytes_total', { store: 'a' }), 900);
    assert.equal(valueOf(text, 'cirrus_store_syncs_total', { store: 'a' }), sa.syncs);
    assert.equal(valueOf(text, 'cirrus_store_queues', { store: 'a' }), 3);
    assert.equal(valueOf(text, 'cirrus_store_topics', { store: 'b' }), 1);
    assert.equal(valueOf(text, 'cirrus_store_segments', { store: 'a' }), sa.segments);
    assert.equal(valueOf(text, 'cirrus_store_recycled_segments_total', { store: 'a' }), sa.recycledSegments);
    assert.equal(valueOf(text, 'cirrus_store_cache_hits_total', { store: 'a', tier: 'memory' }), sa.cache.memory.hits);
    assert.equal(valueOf(text, 'cirrus_store_cache_budget_bytes', { store: 'a', tier: 'memory' }), sa.cache.memory.budgetBytes);
    assert.equal(valueOf(text, 'cirrus_store_cache_bytes', { store: 'a', tier: 'fast' }), undefined, 'no fast tier, no series');
    const p99 = valueOf(text, 'cirrus_store_sync_latency_p99_seconds', { store: 'a' });
    assert.ok(p99 !== undefined && p99 > 0 && Math.abs(p99 - sa.syncLatencyP99Ms / 1000) < 1e-9, `p99 ${p99}`);
    assert.equal(valueOf(text, 'cirrus_store_direct_writes', { store: 'a' }), sa.directWrites ? 1 : 0);
    assert.match(text, /# TYPE cirrus_store_written_messages_total counter/);
    assert.match(text, /# TYPE cirrus_store_queues gauge/);

    // A later scrape reads afresh: counters follow the store, not the first snapshot.
    await a.append('orders', 0, Buffer.from('more'));
    const later = await registry.metrics();
    assert.equal(valueOf(later, 'cirrus_store_written_messages_total', { store: 'a' }), 26);

    await b.close();
    const afterClose = await registry.metrics();
    assert.equal(valueOf(afterClose, 'cirrus_store_written_messages_total', { store: 'b' }), undefined);
    assert.equal(valueOf(afterClose, 'cirrus_store_written_messages_total', { store: 'a' }), 26);

    assert.throws(() => metrics.add('a', a), (e: unknown) => e instanceof StoreInvalidArgumentError && e.argument === 'name');
    assert.throws(() => metrics.add('', a), (e: unknown) => e instanceof StoreInvalidArgumentError && e.argument === 'name');
    assert.equal(metrics.remove('a'), true);
    assert.equal(metrics.remove('a'), false);
    assert.equal(valueOf(await registry.metrics(), 'cirrus_store_written_messages_total', { store: 'a' }), undefined);
    // Names are unique per registry: a second StoreMetrics needs its own.
    assert.throws(() => new StoreMetrics(registry), /already been registered/);
  } finally {
    await a.close();
    await b.close().catch(() => undefined);
    removeDir(dirA);
    removeDir(dirB);
  }
});

test('metrics: a stats() that fails for another reason than closing fails the scrape', async () => {
  const registry = new Registry();
  const metrics = new StoreMetrics(registry);
  metrics.add('broken', {
    stats() {
      throw new Error('boom');
    },
  });
  await assert.rejects(registry.metrics(), /boom/);
});
