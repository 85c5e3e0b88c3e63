/**
 * Memory for records hot reads copy out of the memory tier for their callers. One allocation per
 * record cost about 3.4 us each in `Buffer.from` (an ArrayBuffer apiece, zero-filled, then tracked
 * and swept by the collector); cut from a shared slab, about 1 us. Slabs are all one size, so the
 * allocator reuses their memory cleanly; a slab is freed by the collector once the last record cut
 * from it is, so one record a caller keeps pins at most READ_SLAB_BYTES. Cold reads do not use it:
 * their records are views of the spans they were read with, and read-ahead counts the spans it
 * keeps (tiered-cache.ts ReadAhead); cutting those spans from slabs, or from one buffer per batch,
 * was measured and slowed phase 2 (docs/store-measurements.md, "Twelfth pass").
 */
import { invariant } from '../common/index.js';
import { READ_SLAB_BYTES, READ_SLAB_MAX_CUT_BYTES } from './constants.js';
import { allocLarge } from './large-buffer.js';

export class ReadSlab {
  private slab: Buffer = allocLarge(READ_SLAB_BYTES);
  private used = 0;

  /** A copy of `src[from, to)` of the caller's own. */
  copy(src: Buffer, from: number, to: number): Buffer {
    invariant(from >= 0 && from <= to && to <= src.length, 'a copy lies within its source');
    const into = this.take(to - from);
    src.copy(into, 0, from, to);
    return into;
  }

  /** `bytes` of memory, uninitialised, that nothing else reads or writes. */
  private take(bytes: number): Buffer {
    invariant(Number.isInteger(bytes) && bytes >= 0, 'a slab cut is a whole number of bytes');
    if (bytes > READ_SLAB_MAX_CUT_BYTES) return allocLarge(bytes);
    if (this.used + bytes > READ_SLAB_BYTES) {
      this.slab = allocLarge(READ_SLAB_BYTES);
      this.used = 0;
    }
    const at = this.used;
    // 8-byte steps keep every copy's memcpy aligned.
    this.used = (at + bytes + 7) & ~7;
    return this.slab.subarray(at, at + bytes);
  }
}
