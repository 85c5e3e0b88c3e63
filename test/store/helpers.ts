/** Shared helpers of the store tests: temp dirs, crash snapshots, a fault-injecting StoreIo. */
import { cpSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeIo, type StoreFile, type StoreIo } from '../../src/store/index.js';

export function tempDir(prefix = 'cirrus-store-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function removeDir(dir: string): void {
  rmSync(dir, { recursive: true, force: true });
}

/**
 * A copy of a live store's files as they are now, without its lock: what a reopen after kill -9
 * of the process would find (the page cache survives a process crash).
 */
export function crashSnapshot(dir: string): string {
  // The copy goes file by file: a file background work (retention) deletes meanwhile makes it
  // fail, and it is taken again whole.
  for (let attempt = 1; ; attempt++) {
    const copy = tempDir('cirrus-crash-');
    try {
      cpSync(dir, copy, { recursive: true, filter: (src) => !src.endsWith('/LOCK') });
      return copy;
    } catch (err) {
      removeDir(copy);
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt === CRASH_SNAPSHOT_ATTEMPTS) throw err;
    }
  }
}

/** Copies crashSnapshot takes before a file vanishing under it is an error. */
const CRASH_SNAPSHOT_ATTEMPTS = 5;

/** What this process's open descriptors point at, of the paths under `dir` (Linux: /proc/self/fd). */
export function descriptorsUnder(dir: string): string[] {
  return readdirSync('/proc/self/fd')
    .flatMap((fd) => {
      try {
        return [readlinkSync(`/proc/self/fd/${fd}`)];
      } catch {
        return []; // the descriptor readdir itself used, closed since
      }
    })
    .filter((target) => target.startsWith(`${dir}/`));
}

/** Closes the store, then removes its directory and every crash snapshot taken of it. */
export async function closeAndRemove(s: { close(): Promise<void> }, dir: string, copies: readonly string[]): Promise<void> {
  await s.close();
  removeDir(dir);
  for (const c of copies) removeDir(c);
}

/** Runs `fn` on a file named `data` holding `bytes`, in a temp dir (`dir`) removed afterwards. */
export async function withScratchFile<T>(bytes: Uint8Array, fn: (path: string, dir: string) => Promise<T>): Promise<T> {
  const dir = tempDir();
  try {
    const path = join(dir, 'data');
    writeFileSync(path, bytes);
    return await fn(path, dir);
  } finally {
    removeDir(dir);
  }
}

export function segmentFiles(dir: string): string[] {
  return readdirSync(dir).filter((n) => n.endsWith('.seg')).sort().map((n) => join(dir, n));
}

export { repoRoot } from '../common/repo-root.js';

/** Deterministic bytes for (queue, offset), so reads can be checked without keeping copies. */
export function payload(topic: string, queueId: number, offset: number, size: number): Buffer {
  return xorshiftBytes(size, (queueId * 2654435761 + offset * 40503 + topic.length * 97 + 1) >>> 0);
}

/** `size` bytes of an xorshift32 stream from `seed` (a 32-bit integer; 0 gives zeros). */
export function xorshiftBytes(size: number, seed: number): Buffer {
  const b = Buffer.allocUnsafe(size);
  let x = seed;
  for (let i = 0; i < size; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    b[i] = x & 0xff;
  }
  return b;
}

export type FaultOp = 'writev' | 'datasync' | 'truncate' | 'open' | 'unlink';

export type TraceEvent = 'writev' | 'read' | 'readBatch' | 'datasync-done' | 'rename' | 'readFile';

export interface FaultRule {
  op: FaultOp;
  /** errno code thrown, e.g. ENOSPC, EIO. */
  code: string;
  /** Only files whose path contains this. */
  pathIncludes?: string;
  /** How many matching calls fail (default 1). */
  times?: number;
  /** How many matching calls go through before the failures start (default 0). */
  skip?: number;
  /** writev only: write this many bytes of the batch before failing (a torn write). */
  tornBytes?: number;
}

function errnoError(code: string, op: string): NodeJS.ErrnoException {
  const e = new Error(`${code}: injected failure of ${op}`) as NodeJS.ErrnoException;
  e.code = code;
  return e;
}

/** Wraps the real file system and fails chosen calls; everything else goes through. */
export class FaultyIo implements StoreIo {
  private rules: (FaultRule & { left: number; passes: number })[] = [];
  /** Calls seen per op (matching or not), to assert the seam was used. */
  readonly calls: Record<FaultOp, number> = { writev: 0, datasync: 0, truncate: 0, open: 0, unlink: 0 };
  /** When set, datasync waits for it (to hold appends unacknowledged). */
  datasyncGate: Promise<void> | null = null;
  /** When set, every read and read batch waits for it first (to run something while a read is under way). */
  readGate: ((path: string) => Promise<void>) | null = null;
  /** When set, every open waits for it once the file is open (to run something while an open is under way). */
  openGate: ((path: string, mode: 'read' | 'readwrite' | 'create') => Promise<void>) | null = null;
  /**
   * When set, told of every writev, read and read batch as it starts (with its byte count), every datasync
   * as it completes, every rename (its target) and every whole-file read.
   */
  trace: ((event: TraceEvent, path: string, bytes: number) => void) | null = null;
  private clock: number | null = null;

  /**
   * `durableWrites: false` hides the real files' writeDurable, so the store writes through the
   * page cache (writev, then datasync) as it does without the native writer.
   */
  constructor(readonly options: { durableWrites?: boolean } = {}) {}

  get durableWrites(): boolean {
    return this.options.durableWrites !== false;
  }

  get directWrites(): boolean {
    return this.durableWrites && nodeIo.directWrites === true;
  }

  inject(rule: FaultRule): void {
    this.rules.push({ ...rule, left: rule.times ?? 1, passes: rule.skip ?? 0 });
  }

  clear(): void {
    this.rules = [];
  }

  setClock(ms: number | null): void {
    this.clock = ms;
  }

  take(op: FaultOp, path: string): FaultRule | undefined {
    this.calls[op]++;
    const r = this.rules.find((x) => x.op === op && x.left > 0 && (x.pathIncludes === undefined || path.includes(x.pathIncludes)));
    if (!r) return undefined;
    if (r.passes > 0) {
      r.passes--;
      return undefined;
    }
    r.left--;
    return r;
  }

  async open(path: string, mode: 'read' | 'readwrite' | 'create'): Promise<StoreFile> {
    const r = this.take('open', path);
    if (r) throw errnoError(r.code, 'open');
    const inner = await nodeIo.open(path, mode);
    if (this.openGate) await this.openGate(path, mode);
    const io = this;
    return {
      async writev(buffers, position) {
        const rule = io.take('writev', path);
        if (rule) {
          if (rule.tornBytes) {
            const all = Buffer.concat(buffers.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
            await inner.writev([all.subarray(0, Math.min(rule.tornBytes, all.length))], position);
          }
          throw errnoError(rule.code, 'writev');
        }
        io.trace?.('writev', path, buffers.reduce((n, b) => n + b.byteLength, 0));
        return inner.writev(buffers, position);
      },
      async read(buf, offset, length, position) {
        io.trace?.('read', path, length);
        if (io.readGate) await io.readGate(path);
        return inner.read(buf, offset, length, position);
      },
      async readBatch(buffers, positions, how) {
        io.trace?.('readBatch', path, buffers.reduce((n, b) => n + b.byteLength, 0));
        if (io.readGate) await io.readGate(path);
        return inner.readBatch(buffers, positions, how);
      },
      // The store's durable write (write + fdatasync in one call, O_DIRECT: io.ts) where the real
      // file has it and this seam passes it on: faults as for writev, then as for datasync.
      writeDurable:
        inner.writeDurable && io.durableWrites
          ? async (buffers, position) => {
              const durable = inner.writeDurable?.bind(inner) as NonNullable<typeof inner.writeDurable>;
              const rule = io.take('writev', path);
              if (rule) {
                if (rule.tornBytes) {
                  const all = Buffer.concat(buffers.map((b) => Buffer.from(b.buffer, b.byteOffset, b.byteLength)));
                  await durable([all.subarray(0, Math.min(rule.tornBytes, all.length))], position);
                }
                throw errnoError(rule.code, 'writev');
              }
              io.trace?.('writev', path, buffers.reduce((n, b) => n + b.byteLength, 0));
              if (io.datasyncGate) await io.datasyncGate;
              const syncRule = io.take('datasync', path);
              // A failed sync after a write that may have reached the device: the bytes are there.
              await durable(buffers, position);
              if (syncRule) throw errnoError(syncRule.code, 'datasync');
              io.trace?.('datasync-done', path, 0);
            }
          : undefined,
      async datasync() {
        if (io.datasyncGate) await io.datasyncGate;
        const rule = io.take('datasync', path);
        if (rule) throw errnoError(rule.code, 'datasync');
        await inner.datasync();
        io.trace?.('datasync-done', path, 0);
      },
      async truncate(length) {
        const rule = io.take('truncate', path);
        if (rule) throw errnoError(rule.code, 'truncate');
        return inner.truncate(length);
      },
      size: () => inner.size(),
      close: () => inner.close(),
    };
  }

  readonly nativeReads = nodeIo.nativeReads;
  readdir = nodeIo.readdir;
  mkdirp = nodeIo.mkdirp;
  stat = nodeIo.stat;

  unlink(path: string): Promise<void> {
    const r = this.take('unlink', path);
    if (r) return Promise.reject(errnoError(r.code, 'unlink'));
    return nodeIo.unlink(path);
  }

  rename(from: string, to: string): Promise<void> {
    this.trace?.('rename', to, 0);
    return nodeIo.rename(from, to);
  }

  readFile(path: string): Promise<Buffer | null> {
    this.trace?.('readFile', path, 0);
    return nodeIo.readFile(path);
  }

  syncDir = nodeIo.syncDir;
  now = (): number => this.clock ?? Date.now();
}
