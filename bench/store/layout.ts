import { MAX_QUEUES_PER_TOPIC, MAX_TOPICS } from './constants.js';
import { Prng } from './prng.js';

/**
 * The topics and queues of one run. Queues are numbered globally 0..totalQueues-1 so that
 * per-queue state (next offset, read position) lives in typed arrays, not one object per queue.
 */
export interface Layout {
  topicNames: string[];
  /** Global queue index -> topic index. */
  topicOf: Uint16Array;
  /** Global queue index -> queue id inside its topic. */
  queueIdOf: Uint32Array;
  totalQueues: number;
}

/**
 * `topics` topics, each with a pseudo-random number of queues in 1..maxQueuesPerTopic,
 * as in the challenge ("at most 100 topics; each topic 1 to 5,000 queues").
 */
export function makeLayout(seed: number, topics: number, maxQueuesPerTopic: number): Layout {
  if (!Number.isInteger(topics) || topics < 1 || topics > MAX_TOPICS) {
    throw new RangeError(`topics must be an integer in 1..${MAX_TOPICS}, got ${topics}`);
  }
  if (!Number.isInteger(maxQueuesPerTopic) || maxQueuesPerTopic < 1 || maxQueuesPerTopic > MAX_QUEUES_PER_TOPIC) {
    throw new RangeError(`maxQueuesPerTopic must be an integer in 1..${MAX_QUEUES_PER_TOPIC}, got ${maxQueuesPerTopic}`);
  }
  const rng = new Prng(seed);
  const counts = Array.from({ length: topics }, () => rng.int(1, maxQueuesPerTopic));
  const totalQueues = counts.reduce((a, b) => a + b, 0);
  const topicOf = new Uint16Array(totalQueues);
  const queueIdOf = new Uint32Array(totalQueues);
  let g = 0;
  counts.forEach((count, t) => {
    for (let q = 0; q < count; q++, g++) {
      topicOf[g] = t;
      queueIdOf[g] = q;
    }
  });
  const topicNames = counts.map((_, t) => `bench-topic-${String(t).padStart(3, '0')}`);
  return { topicNames, topicOf, queueIdOf, totalQueues };
}
