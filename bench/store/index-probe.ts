/**
 * The queue index alone, in memory: how long a checkpoint-style load (queue by queue, each
 * reserved first), round-robin appends (as a log interleaves its queues) and lookups take for
 * many small queues, and what the index holds per queue and per message. No files. docs/store-measurements.md
 * ("Eighth pass") has this machine's results.
 *
 *   node --expose-gc dist/bench/store/index-probe.js [--queues 216996] [--messages 20] [--repeats 3] [--json] (--help)
 */
import { Command } from 'commander';
import { QueueIndex, type QueueRef } from '../../src/store/queue-index.js';
import { positiveInt } from './options.js';

const TOPICS = 100;
const RECORD_BYTES = 9000;

interface Repeat {
  loadMs: number;
  appendMs: number;
  lookupMs: number;
}

/** Runs the collector (if exposed) and gives the array-buffer sweeper, which frees typed arrays after it, time to finish. */
async function settle(): Promise<void> {
  const g = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 3; i++) {
    if (g) g();
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

function refsOf(index: QueueIndex, queues: number): QueueRef[] {
  const perTopic = Math.ceil(queues / TOPICS);
  const refs: QueueRef[] = [];
  for (let i = 0; i < queues; i++) refs.push(index.getOrCreate(Math.floor(i / perTopic), i % perTopic));
  return refs;
}

function once(queues: number, messages: number): Repeat {
  const t0 = performance.now();
  const loaded = new QueueIndex();
  let pos = 0;
  for (const q of refsOf(loaded, queues)) {
    loaded.reserve(q, messages);
    for (let k = 0; k < messages; k++) loaded.push(q, (pos += RECORD_BYTES), RECORD_BYTES);
  }
  const t1 = performance.now();
  const appended = new QueueIndex();
  const refs = refsOf(appended, queues);
  pos = 0;
  for (let k = 0; k < messages; k++) for (const q of refs) appended.push(q, (pos += RECORD_BYTES), RECORD_BYTES);
  const t2 = performance.now();
  let sum = 0;
  for (const q of refs) for (let o = 0; o < messages; o++) sum += appended.positionOf(q, o);
  const t3 = performance.now();
  if (sum <= 0) throw new Error('lookups found nothing');
  return { loadMs: t1 - t0, appendMs: t2 - t1, lookupMs: t3 - t2 };
}

async function main(): Promise<void> {
  const o = new Command('index-probe')
    .description('the queue index alone: load, append and lookup times and bytes per queue (docs/store-measurements.md, "Eighth pass")')
    .option('--queues <n>', 'queues (over 100 topics)', positiveInt('--queues'), 216_996)
    .option('--messages <n>', 'messages per queue', positiveInt('--messages'), 20)
    .option('--repeats <n>', 'repetitions (the first warms the JIT up)', positiveInt('--repeats'), 3)
    .option('--json', 'one JSON line instead of a table')
    .parse()
    .opts<{ queues: number; messages: number; repeats: number; json?: boolean }>();

  const repeats: Repeat[] = [];
  for (let r = 0; r < o.repeats; r++) repeats.push(once(o.queues, o.messages));

  // Memory of one index built by appends, measured with the collector run before and after.
  await settle();
  const before = process.memoryUsage();
  const index = new QueueIndex();
  let pos = 0;
  const refs = refsOf(index, o.queues);
  for (let k = 0; k < o.messages; k++) for (const q of refs) index.push(q, (pos += RECORD_BYTES), RECORD_BYTES);
  refs.length = 0;
  await settle();
  const after = process.memoryUsage();
  // Per queue, the entries included (12 bytes each in pages of 65,536 entries).
  const memory = {
    gcExposed: typeof (globalThis as { gc?: unknown }).gc === 'function',
    heapBytesPerQueue: (after.heapUsed - before.heapUsed) / o.queues,
    typedBytesPerQueue: (after.arrayBuffers - before.arrayBuffers) / o.queues,
  };
  if (index.entryCount !== o.queues * o.messages) throw new Error('the index lost entries');

  const result = { queues: o.queues, messages: o.messages, repeats, memory };
  if (o.json) {
    process.stdout.write(`${JSON.stringify(result)}\n`);
    return;
  }
  process.stdout.write(`${o.queues} queues x ${o.messages} messages\n`);
  process.stdout.write('repeat  load ms  append ms  lookup ms\n');
  repeats.forEach((r, i) => {
    process.stdout.write(`${String(i + 1).padStart(6)}  ${r.loadMs.toFixed(0).padStart(7)}  ${r.appendMs.toFixed(0).padStart(9)}  ${r.lookupMs.toFixed(0).padStart(9)}\n`);
  });
  process.stdout.write(
    `per queue of ${o.messages} messages: ${memory.heapBytesPerQueue.toFixed(1)} bytes of heap, ${memory.typedBytesPerQueue.toFixed(1)} in typed arrays (entries included)` +
      (memory.gcExposed ? '\n' : ' (run with --expose-gc for exact figures)\n'),
  );
}

await main();
