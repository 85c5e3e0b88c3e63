/**
 * The process the crash harness kills. It opens the store with `sync: always` (or `interval`
 * with --sync-interval-ms: a process crash must lose nothing either way), runs many
 * concurrent producers over many queues, and prints one line per acknowledged append
 *
 *   A <topicIndex> <queueId> <offset> <sha256 prefix>
 *
 * only after the append resolved; meanwhile it takes index checkpoints (full and delta) every
 * CRASH_CHECKPOINT_INTERVAL_MS. stdout is a pipe, which Node writes synchronously on Linux, so
 * a line the parent received is a record the store acknowledged. It never exits by itself: the
 * parent ends it with SIGKILL.
 */
import { crc32c } from '@node-rs/crc32';
import { randomPool } from '../../bench/store/payload.js';
import { Prng } from '../../bench/store/prng.js';
import { MessageStore } from '../../src/store/index.js';
import {
  CRASH_CHECKPOINT_INTERVAL_MS,
  CRASH_FULL_CHECKPOINT_EVERY,
  CRASH_HEADER_BYTES,
  CRASH_MAGIC,
  CRASH_LARGE_MAX_BYTES,
  CRASH_LARGE_MIN_BYTES,
  CRASH_MAX_BYTES,
  CRASH_MIN_BYTES,
  CRASH_QUEUES_PER_TOPIC,
  CRASH_TOPICS,
  crashRecordHash,
} from './crash-harness.js';

interface ChildArgs {
  dir: string;
  seed: number;
  iteration: number;
  producers: number;
  segmentBytes: number;
  /** Retention's maxTotalBytes; 0 (or absent): no retention. */
  retainBytes: number;
  /** sync 'interval' with this period; 0 (or absent): sync 'always'. */
  syncIntervalMs: number;
  /** Percent of records drawn from CRASH_LARGE_MIN_BYTES..CRASH_LARGE_MAX_BYTES. */
  largePercent: number;
  /** The store's directWrites option (--direct-writes on|off; on when absent). */
  directWrites: boolean;
  /** Its own checkpoints this often (--checkpoint-ms; CRASH_CHECKPOINT_INTERVAL_MS when absent, 0: none). */
  checkpointMs: number;
}

function parseArgs(argv: string[]): ChildArgs {
  const get = (name: string): string => {
    const i = argv.indexOf(`--${name}`);
    if (i < 0 || i + 1 >= argv.length) throw new Error(`crash-child: missing --${name}`);
    return argv[i + 1];
  };
  return {
    dir: get('dir'),
    seed: Number(get('seed')),
    iteration: Number(get('iteration')),
    producers: Number(get('producers')),
    segmentBytes: Number(get('segment-bytes')),
    retainBytes: argv.includes('--retain-bytes') ? Number(get('retain-bytes')) : 0,
    syncIntervalMs: argv.includes('--sync-interval-ms') ? Number(get('sync-interval-ms')) : 0,
    largePercent: argv.includes('--large-percent') ? Number(get('large-percent')) : 0,
    directWrites: argv.includes('--direct-writes') ? get('direct-writes') === 'on' : true,
    checkpointMs: argv.includes('--checkpoint-ms') ? Number(get('checkpoint-ms')) : CRASH_CHECKPOINT_INTERVAL_MS,
  };
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2));
  const pool = randomPool(args.seed, 2 * CRASH_LARGE_MAX_BYTES);
  const store = await MessageStore.open({
    dir: args.dir,
    sync: args.syncIntervalMs > 0 ? { mode: 'interval', intervalMs: args.syncIntervalMs } : { mode: 'always' },
    maxMessageBytes: args.largePercent > 0 ? CRASH_LARGE_MAX_BYTES : CRASH_MAX_BYTES,
    segmentBytes: args.segmentBytes,
    directWrites: args.directWrites,
    ...(args.retainBytes > 0 ? { retention: { maxTotalBytes: args.retainBytes } } : {}),
  });
  process.stdout.write('R\n');
  const producer = async (p: number): Promise<void> => {
    const rng = new Prng((BigInt(args.seed) << 32n) ^ (BigInt(args.iteration) << 16n) ^ BigInt(p));
    for (let seq = 0; ; seq++) {
      const topic = rng.int(0, CRASH_TOPICS.length - 1);
      const queueId = rng.int(0, CRASH_QUEUES_PER_TOPIC - 1);
      const large = args.largePercent > 0 && rng.int(1, 100) <= args.largePercent;
      const size = large ? rng.int(CRASH_LARGE_MIN_BYTES, CRASH_LARGE_MAX_BYTES) : rng.int(CRASH_MIN_BYTES, CRASH_MAX_BYTES);
      const data = Buffer.allocUnsafe(size);
      const start = rng.int(0, pool.length - size);
      pool.copy(data, CRASH_HEADER_BYTES, start, start + size - CRASH_HEADER_BYTES);
      data.writeUInt32LE(CRASH_MAGIC, 0);
      data.writeUInt32LE(size, 4);
      data.writeUInt32LE(args.iteration, 12);
      data.writeUInt32LE(p, 16);
      data.writeUInt32LE(seq, 20);
      data.writeUInt32LE(topic, 24);
      data.writeUInt32LE(queueId, 28);
      data.writeUInt32LE(crc32c(data.subarray(12)), 8);
      const offset = await store.append(CRASH_TOPICS[topic], queueId, data);
      process.stdout.write(`A ${topic} ${queueId} ${offset} ${crashRecordHash(data)}\n`);
    }
  };
  const checkpointer = async (): Promise<void> => {
    if (args.checkpointMs === 0) return;
    for (let k = 1; ; k++) {
      await new Promise((resolve) => setTimeout(resolve, args.checkpointMs));
      await store.checkpoint({ full: k % CRASH_FULL_CHECKPOINT_EVERY === 0 });
    }
  };
  await Promise.all([checkpointer(), ...Array.from({ length: args.producers }, (_, p) => producer(p))]);
}

// `node --test dist/test/` (Node 20) runs every .js file under test/, this one included, bare:
// then there is nothing to do. The harness always passes --dir.
if (process.argv.includes('--dir')) {
  main().catch((err: unknown) => {
    process.stderr.write(`crash-child failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exit(3);
  });
}
