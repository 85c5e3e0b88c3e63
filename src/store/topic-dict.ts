/**
 * Topic names -> small dense ids, kept in an append-only file. A new topic gets its id at once
 * (so appends keep their call order), and its entry is written and synced by the group-commit
 * writer before the first batch that uses the id: an acknowledged record never names an id the
 * dictionary could lose.
 */
import { join } from 'node:path';
import { invariant } from '../common/index.js';
import { MAX_TOPICS } from './constants.js';
import { StoreLimitError } from './errors.js';
import { DICT_FILE, decodeDict, encodeDictEntry } from './format.js';
import type { StoreFile, StoreIo } from './io.js';

export class TopicDict {
  private readonly ids = new Map<string, number>();
  private readonly names: string[] = [];
  /** Entries assigned but not yet durable, in id order. */
  private pending: Buffer[] = [];
  private durableBytes: number;
  /** Names whose entries are durable: ids below this (ids are assigned, and made durable, in order). */
  private durableNames: number;
  private syncing: Promise<void> | null = null;

  private constructor(
    private readonly file: StoreFile,
    names: string[],
    validBytes: number,
  ) {
    for (const n of names) this.add(n);
    this.durableBytes = validBytes;
    this.durableNames = names.length;
  }

  /**
   * Opens (or creates) the dictionary. A torn or corrupt tail is not cut yet: recovery first
   * checks that nothing durable used the ids past it (cutTail).
   */
  static async open(io: StoreIo, dir: string): Promise<{ dict: TopicDict; cutBytes: number; damagedInMiddle: boolean }> {
    const path = join(dir, DICT_FILE);
    const existed = (await io.stat(path)) !== null;
    const file = await io.open(path, 'create');
    const size = await file.size();
    const buf = Buffer.allocUnsafe(size);
    const got = await file.read(buf, 0, size, 0);
    const { names, validBytes, damagedInMiddle } = decodeDict(buf.subarray(0, got));
    if (!existed) await io.syncDir(dir);
    return { dict: new TopicDict(file, names, validBytes), cutBytes: size - validBytes, damagedInMiddle };
  }

  /** Cuts what open() found past the last valid entry, so new entries follow on from it. */
  async cutTail(): Promise<void> {
    invariant(this.pending.length === 0 && this.durableNames === this.names.length, 'the tail is cut before any topic is added');
    if ((await this.file.size()) === this.durableBytes) return;
    await this.file.truncate(this.durableBytes);
    await this.file.datasync();
  }

  /** Read-only decode for verify/inspect. */
  static async read(io: StoreIo, dir: string): Promise<{ names: string[]; cutBytes: number; damagedInMiddle: boolean }> {
    const buf = (await io.readFile(join(dir, DICT_FILE))) ?? Buffer.alloc(0);
    const { names, validBytes, damagedInMiddle } = decodeDict(buf);
    return { names, cutBytes: buf.length - validBytes, damagedInMiddle };
  }

  private add(name: string): number {
    const id = this.names.length;
    this.names.push(name);
    this.ids.set(name, id);
    return id;
  }

  lookup(name: string): number | undefined {
    return this.ids.get(name);
  }

  name(id: number): string | undefined {
    return this.names[id];
  }

  get size(): number {
    return this.names.length;
  }

  /**
   * Topics whose dictionary entries are durable (ids 0..durableSize-1); `size` also counts those
   * assigned since and not yet written (their entry's write may have failed: ENOSPC).
   */
  get durableSize(): number {
    return this.durableNames;
  }

  allNames(): readonly string[] {
    return this.names;
  }

  /** The id of `name`, assigning one (not yet durable) when new. */
  idFor(name: string): number {
    const known = this.ids.get(name);
    if (known !== undefined) return known;
    if (this.names.length >= MAX_TOPICS) throw new StoreLimitError(`more than ${MAX_TOPICS} topics`);
    const id = this.add(name);
    this.pending.push(encodeDictEntry(id, name));
    return id;
  }

  get hasPending(): boolean {
    return this.pending.length > 0;
  }

  /**
   * Writes and syncs every pending entry. On failure the file is cut back to its durable length
   * and the entries stay pending, so the next call retries them.
   */
  sync(): Promise<void> {
    if (this.pending.length === 0 && this.syncing === null) return Promise.resolve();
    if (this.syncing) return this.syncing.then(() => this.sync());
    const batch = this.pending;
    this.pending = [];
    const bytes = batch.reduce((n, b) => n + b.length, 0);
    this.syncing = (async () => {
      try {
        await this.file.writev(batch, this.durableBytes);
        await this.file.datasync();
        this.durableBytes += bytes;
        this.durableNames += batch.length;
      } catch (err) {
        this.pending = batch.concat(this.pending);
        await this.file.truncate(this.durableBytes).catch(() => undefined);
        throw err;
      } finally {
        this.syncing = null;
      }
    })();
    return this.syncing;
  }

  async close(): Promise<void> {
    await this.file.close();
  }
}
