/**
 * The store's only door to the file system. Tests pass their own StoreIo (usually wrapping
 * nodeIo) to inject ENOSPC, EIO and torn writes at exact calls without mocking the world.
 */
import { promises as fsp, constants as fsc, fdatasync, read, writev } from 'node:fs';
import { constants as osConstants } from 'node:os';
import { dirname } from 'node:path';
import { errnoCode } from '../common/index.js';
import { StoreInvalidArgumentError } from './errors.js';
import { DIRECT_WRITE_ALIGN_BYTES } from './constants.js';
import { nativeDurableWrite, type DurableWriteAddon, type DurableWriter } from './durable-write.js';
import { nativePreadBatch, type PreadBatch } from './pread-batch.js';

/*
 * The hot calls (read, writev, fdatasync) go through the callback API on the handle's fd: a
 * FileHandle call costs the main thread about twice as much per call (measured: 3.5 vs 6.5 us
 * per 8 KiB pread, 200k reads at 20 in flight), and a cold reader makes one call per record.
 * The FileHandle still owns the descriptor (its leak warning stays); NodeFile counts its own raw
 * calls so that close() still waits for them, as FileHandle.close() does for its calls.
 */
function preadOnce(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    read(fd, buf, offset, length, position, (err, bytesRead) => (err ? reject(err) : resolve(bytesRead)));
  });
}

/** Loops on short reads until `length` bytes or the file's end; returns the bytes read. */
async function preadFully(fd: number, buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
  let done = 0;
  while (done < length) {
    const bytesRead = await preadOnce(fd, buf, offset + done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done;
}

function fdatasyncOnce(fd: number): Promise<void> {
  return new Promise((resolve, reject) => {
    fdatasync(fd, (err) => (err ? reject(err) : resolve()));
  });
}

function pwritevOnce(fd: number, buffers: Uint8Array[], position: number): Promise<number> {
  return new Promise((resolve, reject) => {
    writev(fd, buffers, position, (err, bytesWritten) => (err ? reject(err) : resolve(bytesWritten)));
  });
}

/** Writes every byte of `buffers` at `position`, looping on short writes. */
async function writevFully(fd: number, buffers: readonly Uint8Array[], position: number): Promise<void> {
  let pending = buffers.filter((b) => b.byteLength > 0);
  let pos = position;
  while (pending.length > 0) {
    const bytesWritten = await pwritevOnce(fd, pending, pos);
    pos += bytesWritten;
    let skip = bytesWritten;
    const rest: Uint8Array[] = [];
    for (const b of pending) {
      if (skip >= b.byteLength) {
        skip -= b.byteLength;
        continue;
      }
      rest.push(skip > 0 ? b.subarray(skip) : b);
      skip = 0;
    }
    pending = rest;
  }
}

/** Holds reads back while something more urgent uses the device (see StoreFile.readBatch). */
export interface ReadGate {
  /** Shared memory; reads wait while its first element is above zero. */
  readonly flag: Int32Array;
  readonly maxYieldUs: number;
}

/** How a batch of reads runs (see StoreFile.readBatch). */
export interface ReadBatchOptions {
  /** Each read first waits while `gate.flag[0] > 0`, up to `gate.maxYieldUs`. */
  readonly gate?: ReadGate;
  /** Reads announced to the kernel ahead of the one being read, so they reach the device together (0: none). */
  readonly prefetch?: number;
  /**
   * Drop the whole pages each read lies over from the OS page cache once read (read-once data:
   * StoreOptions.historyPageCache). The partial pages at a read's ends stay.
   */
  readonly dropCached?: boolean;
}

export interface StoreFile {
  /** Writes every byte of `buffers` at `position` (loops on short writes). */
  writev(buffers: readonly Uint8Array[], position: number): Promise<void>;
  /** Reads `length` bytes into `buf` at `offset` from `position` (loops on short reads); fewer only where the file ends. Returns bytes read. */
  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number>;
  /**
   * Fills each of `buffers` from the matching entry of `positions`, as `read` would; resolves
   * with the bytes read into each. Fails as a whole when any read fails. One hand-off to the
   * thread pool for all of them where the native batch reader is built (pread-batch.ts).
   * `options.gate`, `options.prefetch` and `options.dropCached` are honoured by the native reader
   * only; one fs.read at a time cannot be held back once submitted, and ignores them.
   */
  readBatch(buffers: readonly Uint8Array[], positions: readonly number[], options?: ReadBatchOptions): Promise<number[]>;
  datasync(): Promise<void>;
  /**
   * Writes every byte of `buffers` at `position` and makes them durable, as writev then datasync
   * would; files without it are written that way. NodeFile writes O_DIRECT in one native job
   * (durable-write.ts), which may leave zeros after the written end up to the next
   * DIRECT_WRITE_ALIGN_BYTES boundary (recovery reads them as the end of the log).
   */
  writeDurable?(buffers: readonly Uint8Array[], position: number): Promise<void>;
  truncate(length: number): Promise<void>;
  size(): Promise<number>;
  close(): Promise<void>;
}

export interface StoreIo {
  /** true when files' readBatch is one native job (pread-batch.ts); reported by stats(). */
  readonly nativeReads?: boolean;
  /** true when writable files' writeDurable writes O_DIRECT where the file system allows it (durable-write.ts). */
  readonly directWrites?: boolean;
  /** `create`: create when missing, never truncate. Otherwise the file must exist. */
  open(path: string, mode: 'read' | 'readwrite' | 'create'): Promise<StoreFile>;
  readdir(dir: string): Promise<string[]>;
  mkdirp(dir: string): Promise<void>;
  unlink(path: string): Promise<void>;
  rename(from: string, to: string): Promise<void>;
  /** Size and modification time; null when the file does not exist. */
  stat(path: string): Promise<{ size: number; mtimeMs: number } | null>;
  readFile(path: string): Promise<Buffer | null>;
  /** Makes directory entries (created, renamed, removed files) durable. */
  syncDir(dir: string): Promise<void>;
  /** Wall clock in milliseconds; record timestamps and age retention use it. */
  now(): number;
}

/** A call on a file after its close() began: its descriptor number may already name another file. */
function closedFileError(): Error {
  return Object.assign(new Error('file used after close'), { code: 'EBADF' });
}

class NodeFile implements StoreFile {
  /**
   * Calls on the raw fd in flight. FileHandle.close() waits only for FileHandle's own calls, and
   * a descriptor number is reused by the next open: closing under a pread still queued in libuv
   * would let it read whatever file is opened next. close() waits for these instead.
   */
  private busy = 0;
  private whenIdle: (() => void) | null = null;
  private closing: Promise<void> | null = null;

  /** The O_DIRECT descriptor and its native writer, opened at the first writeDurable; null: write through the page cache. */
  private direct: Promise<{ fh: fsp.FileHandle; writer: DurableWriter } | null> | null = null;

  constructor(
    private readonly fh: fsp.FileHandle,
    /** The native batch reader; module-internal (readBatchAcross). */
    readonly batch: PreadBatch | null,
    private readonly path: string,
    private readonly durable: DurableWriteAddon | null,
  ) {}

  /**
   * Runs `call` on the raw descriptor, counted as in flight until it settles; rejects with EBADF
   * once close() has begun (the number may already name another file). Module-internal
   * (readBatchAcross holds several files' descriptors at once).
   */
  async withFd<T>(call: (fd: number) => Promise<T>): Promise<T> {
    if (this.closing) throw closedFileError();
    this.busy++;
    try {
      return await call(this.fh.fd);
    } finally {
      if (--this.busy === 0 && this.whenIdle) {
        const wake = this.whenIdle;
        this.whenIdle = null;
        wake();
      }
    }
  }

  writev(buffers: readonly Uint8Array[], position: number): Promise<void> {
    return this.withFd((fd) => writevFully(fd, buffers, position));
  }

  writeDurable(buffers: readonly Uint8Array[], position: number): Promise<void> {
    return this.withFd(async (fd) => {
      const direct = await this.openDirect();
      if (direct === null) {
        await writevFully(fd, buffers, position);
        await fdatasyncOnce(fd);
        return;
      }
      await (this.durable as DurableWriteAddon).writeDurable(direct.writer, buffers, position);
    });
  }

  /**
   * The file's O_DIRECT descriptor, opened once. null where there is no native writer or the file
   * system refuses O_DIRECT (EINVAL: tmpfs, some FUSE and network file systems): that file is
   * written through the page cache instead, the same bytes made durable the same way.
   */
  private openDirect(): Promise<{ fh: fsp.FileHandle; writer: DurableWriter } | null> {
    const durable = this.durable;
    this.direct ??= (async () => {
      if (durable === null || fsc.O_DIRECT === undefined) return null;
      let fh: fsp.FileHandle;
      try {
        fh = await fsp.open(this.path, fsc.O_RDWR | fsc.O_DIRECT);
      } catch (err) {
        if (errnoCode(err) === 'EINVAL') return null;
        throw err;
      }
      return { fh, writer: durable.createWriter(fh.fd, DIRECT_WRITE_ALIGN_BYTES) };
    })().catch((err: unknown) => {
      this.direct = null; // a failed open is tried again by the next write
      throw err;
    });
    return this.direct;
  }

  read(buf: Uint8Array, offset: number, length: number, position: number): Promise<number> {
    return this.withFd((fd) => preadFully(fd, buf, offset, length, position));
  }

  readBatch(buffers: readonly Uint8Array[], positions: readonly number[], options: ReadBatchOptions = {}): Promise<number[]> {
    if (buffers.length !== positions.length) return Promise.reject(new RangeError(`readBatch: ${buffers.length} buffers, ${positions.length} positions`));
    const batch = this.batch;
    if (batch !== null) return this.withFd((fd) => callBatch(batch, fd, buffers, positions, options));
    return this.withFd(async (fd) => {
      const got: number[] = [];
      for (let k = 0; k < buffers.length; k++) got.push(await preadFully(fd, buffers[k], 0, buffers[k].byteLength, positions[k]));
      return got;
    });
  }

  datasync(): Promise<void> {
    return this.withFd((fd) => fdatasyncOnce(fd));
  }

  truncate(length: number): Promise<void> {
    if (this.closing) return Promise.reject(closedFileError());
    return this.fh.truncate(length);
  }

  async size(): Promise<number> {
    if (this.closing) throw closedFileError();
    return (await this.fh.stat()).size;
  }

  /** Closes once the calls in flight have finished; later calls reject with EBADF. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.busy > 0) await new Promise<void>((resolve) => (this.whenIdle = resolve));
      const direct = await this.direct?.catch(() => null);
      if (direct) await direct.fh.close();
      await this.fh.close();
    })();
    return this.closing;
  }
}

/**
 * One native batch job. A fresh array of buffers each call: the job holds on to it, and with it
 * to the buffers (the positions it copies before returning).
 */
function callBatch(batch: PreadBatch, fd: number | Int32Array, buffers: readonly Uint8Array[], positions: readonly number[], options: ReadBatchOptions): Promise<number[]> {
  const { gate, prefetch = 0, dropCached = false } = options;
  return batch(fd, buffers.slice(), positions, prefetch, gate ? gate.flag : null, gate ? gate.maxYieldUs : 0, dropCached);
}

/** Runs `call` with the descriptors of `files`, each held as by NodeFile.withFd until it settles. */
function withFds<T>(files: readonly NodeFile[], call: (fds: number[]) => Promise<T>, fds: number[] = []): Promise<T> {
  if (fds.length === files.length) return call(fds);
  return files[fds.length].withFd((fd) => {
    fds.push(fd);
    return withFds(files, call, fds);
  });
}

/**
 * Fills `buffers[k]` from `files[k]` at `positions[k]`, as each file's readBatch would, and
 * resolves with the bytes read into each; fails as a whole when any read fails. Where every file
 * is a NodeFile with the native batch reader, it is one job for all of them, in the order given,
 * so `options.prefetch` announces reads of the next files too: a cold reader's records lie in
 * many segment files, and batches of one file each keep only their few reads before the device
 * (docs/store-measurements.md, "Nineteenth pass"). Otherwise (files of another StoreIo, no native
 * reader) each file's reads are one readBatch of that file, one file after another.
 */
export async function readBatchAcross(
  files: readonly StoreFile[],
  buffers: readonly Uint8Array[],
  positions: readonly number[],
  options: ReadBatchOptions = {},
): Promise<number[]> {
  if (files.length !== buffers.length || positions.length !== buffers.length) {
    throw new RangeError(`readBatchAcross: ${files.length} files, ${buffers.length} buffers, ${positions.length} positions`);
  }
  if (files.length === 0) return [];
  const distinct = [...new Set(files)];
  if (distinct.length === 1) return distinct[0].readBatch(buffers, positions, options);
  const native = distinct.every((f) => f instanceof NodeFile && f.batch !== null) ? (distinct as NodeFile[]) : null;
  if (native !== null) {
    const batch = native[0].batch as PreadBatch;
    return withFds(native, (fds) => {
      const byFile = new Map<StoreFile, number>(native.map((f, k) => [f, fds[k]]));
      return callBatch(batch, Int32Array.from(files, (f) => byFile.get(f) as number), buffers, positions, options);
    });
  }
  // One file after another, as the native job reads them: a batch keeps one pool thread busy,
  // which is what history-read slots count (segment-set.ts).
  const got = new Array<number>(buffers.length);
  for (const file of distinct) {
    const mine: number[] = [];
    for (let k = 0; k < files.length; k++) if (files[k] === file) mine.push(k);
    const read = await file.readBatch(
      mine.map((k) => buffers[k]),
      mine.map((k) => positions[k]),
      options,
    );
    mine.forEach((k, i) => (got[k] = read[i]));
  }
  return got;
}

function isMissing(err: unknown): boolean {
  return errnoCode(err) === 'ENOENT';
}

export interface NodeIoOptions {
  /**
   * Read batches through the native batch reader (default: wherever it is built). false reads
   * them one fs.read at a time, as a store does where the addon did not build.
   */
  nativeReads?: boolean;
  /**
   * Write flushes O_DIRECT through the native durable writer (default: wherever it is built and
   * CIRRUS_DIRECT_WRITES is not 'off'). false writes them through the page cache, writev then
   * fdatasync, as a store does where the addon did not build or the file system refuses O_DIRECT.
   */
  directWrites?: boolean;
}

/** The real file system; `nodeIo` is this with the defaults. */
export function createNodeIo(options: NodeIoOptions = {}): StoreIo {
  const batch = options.nativeReads === false ? null : nativePreadBatch;
  const durable = options.directWrites === false || fsc.O_DIRECT === undefined ? null : nativeDurableWrite;
  return {
    nativeReads: batch !== null,
    directWrites: durable !== null,
    async open(path, mode) {
      const flags = mode === 'read' ? fsc.O_RDONLY : mode === 'readwrite' ? fsc.O_RDWR : fsc.O_RDWR | fsc.O_CREAT;
      return new NodeFile(await fsp.open(path, flags, 0o644), batch, path, mode === 'read' ? null : durable);
    },
    ...fsCalls,
  };
}

/**
 * `mkdir -p`, one level at a time. Node 20's own recursive mkdir loops forever (a thread-pool
 * thread at 100 %, the promise never settling) where mkdir fails with ENOENT although the parent
 * exists, as under /proc; here that ENOENT is the answer. A path that exists as anything but a
 * directory fails with ENOTDIR.
 */
async function mkdirp(dir: string): Promise<void> {
  try {
    await fsp.mkdir(dir);
    return;
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'EEXIST') {
      if ((await fsp.stat(dir)).isDirectory()) return;
      throw Object.assign(new Error(`ENOTDIR: not a directory, mkdir '${dir}'`), { code: 'ENOTDIR', errno: -osConstants.errno.ENOTDIR, syscall: 'mkdir', path: dir });
    }
    const parent = dirname(dir);
    if (code !== 'ENOENT' || parent === dir) throw err;
  }
  await mkdirp(dirname(dir));
  try {
    await fsp.mkdir(dir);
  } catch (err) {
    // Another process made it meanwhile.
    if (errnoCode(err) !== 'EEXIST' || !(await fsp.stat(dir)).isDirectory()) throw err;
  }
}

/**
 * Creates the directory an option names (through `io`), turning a path that cannot be one (a file
 * there, or on the way: ENOTDIR) into StoreInvalidArgumentError naming the option. Other
 * failures (EACCES, EROFS, ...) stay as the file system reports them.
 */
export async function makeDir(io: StoreIo, dir: string, argument: string): Promise<void> {
  try {
    await io.mkdirp(dir);
  } catch (err) {
    if (errnoCode(err) === 'ENOTDIR') throw new StoreInvalidArgumentError(argument, `${dir} is not a directory, or a file lies on its path`);
    throw err;
  }
}

const fsCalls: Omit<StoreIo, 'open'> = {
  readdir: (dir) => fsp.readdir(dir),
  mkdirp,
  unlink: (path) => fsp.unlink(path),
  rename: (from, to) => fsp.rename(from, to),
  async stat(path) {
    try {
      const s = await fsp.stat(path);
      return { size: s.size, mtimeMs: s.mtimeMs };
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  },
  async readFile(path) {
    try {
      return await fsp.readFile(path);
    } catch (err) {
      if (isMissing(err)) return null;
      throw err;
    }
  },
  async syncDir(dir) {
    const fh = await fsp.open(dir, fsc.O_RDONLY);
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  },
  now: () => Date.now(),
};

/** The real file system. */
export const nodeIo = createNodeIo();
