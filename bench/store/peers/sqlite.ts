import { createRequire } from 'node:module';
import { join } from 'node:path';
import { Batcher } from './batcher.js';
import { OffsetCounter, type Peer } from './peer.js';

/** The part of better-sqlite3's API used here (the package ships no type declarations). */
interface Statement {
  run(...params: unknown[]): unknown;
  get(...params: unknown[]): unknown;
}
interface Database {
  pragma(source: string): unknown;
  exec(source: string): void;
  prepare(source: string): Statement;
  transaction<A extends unknown[]>(fn: (...args: A) => void): (...args: A) => void;
  close(): void;
}
type DatabaseConstructor = new (file: string) => Database;

interface Row {
  topic: string;
  queueId: number;
  offset: number;
  data: Buffer;
}

/**
 * SQLite through better-sqlite3 12: WAL journal, synchronous=FULL (every commit fsynced), one
 * transaction per batch of concurrent appends (SQLite's FAQ: "group many inserts into one
 * transaction"). Rows keyed by (topic, queue, offset) in a WITHOUT ROWID table, which is the
 * clustered layout a range read by offset wants.
 */
export class SqlitePeer implements Peer {
  readonly name = 'sqlite';
  private db: Database | null = null;
  private select: Statement | null = null;
  private readonly offsets = new OffsetCounter();
  private batcher: Batcher<Row, number> | null = null;

  async unavailable(): Promise<string | null> {
    try {
      this.load();
      return null;
    } catch (err) {
      return `better-sqlite3 failed to load (${(err as Error).message}); run npm install`;
    }
  }

  async open(dir: string): Promise<void> {
    const Ctor = this.load();
    const db = new Ctor(join(dir, 'peer.sqlite'));
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.exec(
      'CREATE TABLE IF NOT EXISTS messages (topic TEXT NOT NULL, queue INTEGER NOT NULL, ' +
        'offset INTEGER NOT NULL, data BLOB NOT NULL, PRIMARY KEY (topic, queue, offset)) WITHOUT ROWID',
    );
    const insert = db.prepare('INSERT INTO messages (topic, queue, offset, data) VALUES (?, ?, ?, ?)');
    this.select = db.prepare('SELECT data FROM messages WHERE topic = ? AND queue = ? AND offset = ?');
    const writeAll = db.transaction((rows: Row[]) => {
      for (const r of rows) insert.run(r.topic, r.queueId, r.offset, r.data);
    });
    this.db = db;
    this.batcher = new Batcher<Row, number>((rows) => {
      writeAll(rows);
      return rows.map((r) => r.offset);
    });
  }

  append(topic: string, queueId: number, data: Buffer): Promise<number> {
    if (!this.batcher) throw new Error('sqlite peer not open');
    return this.batcher.add({ topic, queueId, offset: this.offsets.take(topic, queueId), data });
  }

  async read(topic: string, queueId: number, offset: number): Promise<Buffer | null> {
    const row = this.select?.get(topic, queueId, offset) as { data: Buffer } | undefined;
    return row?.data ?? null;
  }

  async close(): Promise<void> {
    this.db?.close();
    this.db = null;
  }

  private load(): DatabaseConstructor {
    return createRequire(import.meta.url)('better-sqlite3') as DatabaseConstructor;
  }
}
