/** Argument checks shared by every public method; each throws before any state changes. */
import { MAX_FETCH_NUM, MAX_QUEUE_ID, MAX_TOPIC_BYTES } from './constants.js';
import { StoreInvalidArgumentError } from './errors.js';

/** String.prototype.isWellFormed (ES2024, in Node 20; the project's lib is ES2023). */
type WellFormedCheck = string & { isWellFormed(): boolean };

export function checkTopic(topic: unknown): asserts topic is string {
  if (typeof topic !== 'string') throw new StoreInvalidArgumentError('topic', 'must be a string');
  if (topic.length === 0) throw new StoreInvalidArgumentError('topic', 'must not be empty');
  if (topic.includes('\0')) throw new StoreInvalidArgumentError('topic', 'must not contain NUL');
  // A lone surrogate has no UTF-8 form: encoded as U+FFFD, two such names would become one.
  if (!(topic as WellFormedCheck).isWellFormed()) throw new StoreInvalidArgumentError('topic', 'must be well-formed Unicode (no lone UTF-16 surrogate)');
  // A UTF-16 code unit takes at most 3 UTF-8 bytes, so short names skip the byte count.
  if (topic.length * 3 > MAX_TOPIC_BYTES && Buffer.byteLength(topic, 'utf8') > MAX_TOPIC_BYTES) {
    throw new StoreInvalidArgumentError('topic', `must be at most ${MAX_TOPIC_BYTES} bytes in UTF-8`);
  }
}

export function checkQueueId(queueId: unknown): asserts queueId is number {
  if (typeof queueId !== 'number' || !Number.isInteger(queueId) || queueId < 0 || queueId > MAX_QUEUE_ID) {
    throw new StoreInvalidArgumentError('queueId', `must be an integer in 0..${MAX_QUEUE_ID}`);
  }
}

export function checkOffset(offset: unknown): asserts offset is number {
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw new StoreInvalidArgumentError('offset', 'must be a non-negative integer');
  }
}

export function checkFetchNum(fetchNum: unknown): asserts fetchNum is number {
  if (typeof fetchNum !== 'number' || !Number.isInteger(fetchNum) || fetchNum < 1 || fetchNum > MAX_FETCH_NUM) {
    throw new StoreInvalidArgumentError('fetchNum', `must be an integer in 1..${MAX_FETCH_NUM}`);
  }
}

export function checkData(data: unknown, maxMessageBytes: number): asserts data is Uint8Array {
  if (!(data instanceof Uint8Array)) throw new StoreInvalidArgumentError('data', 'must be a Buffer or Uint8Array');
  if (data.byteLength > maxMessageBytes) {
    throw new StoreInvalidArgumentError('data', `is ${data.byteLength} bytes, above maxMessageBytes ${maxMessageBytes}`);
  }
}

/** An integer option within [min, max]. */
export function checkIntOption(name: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new StoreInvalidArgumentError(name, `must be an integer in ${min}..${max}`);
  }
  return value;
}
