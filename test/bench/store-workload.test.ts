/**
 * The store benchmark's readers must turn a store that lost records into errors, not a run that
 * never ends: a reader that waits forever for records the store no longer has gives no result,
 * no error count, and only a CI timeout.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { AckFeed, Counters, runProducers, runReaders, newLatencyHistogram } from '../../bench/store/workload.js';
import { makeLayout } from '../../bench/store/layout.js';
import { PayloadFactory, randomPool } from '../../bench/store/payload.js';
import { mix32 } from '../../bench/store/prng.js';
import { MessageStore, type MessageStoreApi } from '../../src/store/index.js';
import { removeDir, tempDir } from '../store/helpers.js';

const SEED = 1;
/** How long a reader may take before the test calls it hung; the readers finish in milliseconds. */
const HANG_MS = 10_000;

/** A store that no longer shows the last record of one queue (its end went back by one). */
function lossy(store: MessageStoreApi, topic: string, queueId: number): MessageStoreApi {
  const endOf = (t: string, q: number): number => store.endOffset(t, q) - (t === topic && q === queueId ? 1 : 0);
  return {
    append: (t, q, d) => store.append(t, q, d),
    getRange: async (t, q, offset, n) => (await store.getRange(t, q, offset, n)).slice(0, Math.max(0, endOf(t, q) - offset)),
    endOffset: endOf,
    topics: () => store.topics(),
    queues: (t) => store.queues(t),
    stats: () => store.stats(),
    close: () => store.close(),
  };
}

for (const kind of ['hot', 'cold'] as const) {
  test(`the readers report a ${kind} queue whose last record the store lost, and finish`, async () => {
    const dir = tempDir();
    const store = await MessageStore.open({ dir });
    try {
      const layout = makeLayout(SEED, 2, 6);
      const payload = new PayloadFactory(randomPool(SEED, 1 << 20), SEED);
      const next = new Uint32Array(layout.totalQueues);
      const counters = new Counters();
      const append = (t: number, q: number, data: Buffer): Promise<number> => store.append(layout.topicNames[t], q, data);
      // Three records per queue or more: producers own queues round-robin.
      await runProducers({ layout, payload, producers: 2, targetBytes: 600_000, seed: SEED, next, append, counters, latency: newLatencyHistogram() });
      assert.equal(counters.errors, 0);
      // runReaders calls a queue hot when mix32(seed, g, 0x407) is odd.
      const g = Array.from({ length: layout.totalQueues }, (_, i) => i).find((i) => ((mix32(SEED, i, 0x407) & 1) === 1) === (kind === 'hot'));
      assert.ok(g !== undefined, `layout has a ${kind} queue`);
      assert.ok(next[g] > 0, 'the queue has records');
      const name = layout.topicNames[layout.topicOf[g]];
      const queueId = layout.queueIdOf[g];
      let writersDone = false;
      const reading = runReaders({
        store: lossy(store, name, queueId), layout, payload, readers: 2, seed: SEED, next, counters,
        writersDone: () => writersDone, ackedAt: new Float64Array(layout.totalQueues), acks: new AckFeed(),
      });
      writersDone = true;
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        reading.then(() => 'finished'),
        new Promise<string>((resolve) => { timer = setTimeout(() => resolve('hung'), HANG_MS); }),
      ]);
      clearTimeout(timer);
      assert.equal(outcome, 'finished');
      assert.equal(counters.errors, 1, counters.errorSamples.join('; '));
      assert.match(counters.errorSamples[0], new RegExp(`${name}/${queueId}: read to ${next[g] - 1}, ${next[g]} appended`));
    } finally {
      await store.close();
      removeDir(dir);
    }
  });
}
