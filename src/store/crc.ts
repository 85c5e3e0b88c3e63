/**
 * CRC32C (Castagnoli), the checksum of every log record, topic entry and checkpoint. The store's
 * native addon computes it with the SSE4.2 instruction on three streams at once (native/crc32c.c:
 * about 4 x the single-stream npm libraries on the records the store writes, "Fourteenth pass");
 * where the addon is not built or the CPU lacks SSE4.2, or with CIRRUS_NATIVE_CRC=off,
 * @node-rs/crc32 gives the same values.
 */
import { crc32c as portable } from '@node-rs/crc32';
import { nativeAddon } from './native.js';

type NativeCrc32c = (data: Uint8Array, seed: number, start: number, end: number) => number;

const native: NativeCrc32c | null =
  process.env.CIRRUS_NATIVE_CRC !== 'off' && typeof nativeAddon?.crc32c === 'function' ? (nativeAddon.crc32c as NativeCrc32c) : null;

/** Which implementation this process uses: 'sse4.2' (the addon) or '@node-rs/crc32'. */
export const crc32cImplementation: 'sse4.2' | '@node-rs/crc32' = native === null ? '@node-rs/crc32' : 'sse4.2';

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength);
}

/** The portable implementation, whatever this process uses (tests compare the two). */
export function portableCrc32c(data: Uint8Array, seed = 0): number {
  return portable(asBuffer(data), seed);
}

/** CRC32C of `data`, continued from `seed` (the CRC of the bytes before it; 0 to start afresh). */
export function crc32c(data: Uint8Array, seed = 0): number {
  return crc32cRange(data, 0, data.length, seed);
}

/** CRC32C of data[start, end) without a view of it; start and end as for `subarray`, but checked. */
export function crc32cRange(data: Uint8Array, start: number, end: number, seed = 0): number {
  if (native !== null) return native(data, seed, start, end);
  if (!(Number.isInteger(start) && Number.isInteger(end) && start >= 0 && start <= end && end <= data.length)) {
    throw new RangeError(`crc32c: start and end must be whole numbers with 0 <= start <= end <= data.length (got [${start}, ${end}) of ${data.length})`);
  }
  return portable(asBuffer(data).subarray(start, end), seed);
}
