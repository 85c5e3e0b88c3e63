import { createCipheriv, createHash } from 'node:crypto';
import {
  MAX_MESSAGE_BYTES,
  MESSAGE_HEADER_BYTES,
  MIN_MESSAGE_BYTES,
  PAYLOAD_POOL_BYTES,
} from './constants.js';
import { mix32 } from './prng.js';

/**
 * A seeded pool of incompressible bytes: AES-128-CTR keystream keyed by the seed. Generating
 * 64 MiB takes tens of milliseconds, and two processes with the same seed get the same pool
 * (the crash harness's parent and child rely on that).
 */
export function randomPool(seed: number, bytes: number = PAYLOAD_POOL_BYTES): Buffer {
  const key = createHash('sha256').update(`cirrus-pool:${seed}`).digest().subarray(0, 16);
  const cipher = createCipheriv('aes-128-ctr', key, Buffer.alloc(16));
  return Buffer.concat([cipher.update(Buffer.alloc(bytes)), cipher.final()]);
}

/**
 * Messages of the benchmark workload, derived from (topic index, queue id, offset) alone, so a
 * reader can recompute and compare every byte it gets back without storing what was written.
 *
 *   0       4         8        12     16                       size
 *   +-------+---------+--------+------+-------------------------+
 *   | topic | queueId | offset | size | pool[start .. start+n)  |   all u32 little-endian
 *   +-------+---------+--------+------+-------------------------+
 */
export class PayloadFactory {
  private readonly maxStart: number;

  constructor(
    private readonly pool: Buffer,
    private readonly seed: number,
  ) {
    if (pool.length < MAX_MESSAGE_BYTES * 2) throw new RangeError('pool too small');
    this.maxStart = pool.length - MAX_MESSAGE_BYTES;
  }

  /** Size of the message at these coordinates, uniform in 100 B .. 17 KiB. */
  size(topic: number, queueId: number, offset: number): number {
    const span = MAX_MESSAGE_BYTES - MIN_MESSAGE_BYTES + 1;
    return MIN_MESSAGE_BYTES + (mix32(this.seed, topic, queueId, offset) % span);
  }

  /** A new buffer holding the message. */
  build(topic: number, queueId: number, offset: number): Buffer {
    return this.buildInto(Buffer.allocUnsafe(MAX_MESSAGE_BYTES), topic, queueId, offset);
  }

  /**
   * The message written into `scratch` (at least MAX_MESSAGE_BYTES long); returns the view of it.
   * Producers reuse one scratch buffer once their previous append resolved, so the benchmark does
   * not add gigabytes of garbage of its own to the store's memory figures.
   */
  buildInto(scratch: Buffer, topic: number, queueId: number, offset: number): Buffer {
    const size = this.size(topic, queueId, offset);
    if (scratch.length < size) throw new RangeError(`scratch of ${scratch.length} bytes, message needs ${size}`);
    const msg = scratch.subarray(0, size);
    msg.writeUInt32LE(topic, 0);
    msg.writeUInt32LE(queueId, 4);
    msg.writeUInt32LE(offset, 8);
    msg.writeUInt32LE(size, 12);
    const start = this.start(topic, queueId, offset);
    this.pool.copy(msg, MESSAGE_HEADER_BYTES, start, start + size - MESSAGE_HEADER_BYTES);
    return msg;
  }

  /** null when `data` is exactly the message at these coordinates, else what is wrong. */
  verify(topic: number, queueId: number, offset: number, data: Uint8Array): string | null {
    const size = this.size(topic, queueId, offset);
    if (data.length !== size) return `length ${data.length}, expected ${size}`;
    const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
    const gotT = buf.readUInt32LE(0);
    const gotQ = buf.readUInt32LE(4);
    const gotO = buf.readUInt32LE(8);
    if (gotT !== topic || gotQ !== queueId || gotO !== offset) {
      return `header names ${gotT}/${gotQ}@${gotO}, expected ${topic}/${queueId}@${offset}`;
    }
    if (buf.readUInt32LE(12) !== size) return 'size field differs';
    const start = this.start(topic, queueId, offset);
    const expected = this.pool.subarray(start, start + size - MESSAGE_HEADER_BYTES);
    if (!expected.equals(buf.subarray(MESSAGE_HEADER_BYTES))) return 'body bytes differ';
    return null;
  }

  private start(topic: number, queueId: number, offset: number): number {
    return mix32(offset, topic, queueId, this.seed ^ 0x5bd1e995) % this.maxStart;
  }
}
