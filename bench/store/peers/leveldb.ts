import { join } from 'node:path';
import { ClassicLevel } from 'classic-level';
import { Batcher } from './batcher.js';
import { OffsetCounter, type Peer } from './peer.js';

interface Put {
  key: Buffer;
  value: Buffer;
  offset: number;
}

function keyOf(topic: string, queueId: number, offset: number): Buffer {
  // topic NUL queue(u32 BE) offset(u32 BE): one queue's records sort together, in offset order.
  const t = Buffer.from(topic, 'utf8');
  const key = Buffer.allocUnsafe(t.length + 9);
  t.copy(key, 0);
  key[t.length] = 0;
  key.writeUInt32BE(queueId, t.length + 1);
  key.writeUInt32BE(offset, t.length + 5);
  return key;
}

/**
 * LevelDB through classic-level: one write batch per group of concurrent appends with
 * `sync: true`, LevelDB's documented way to make writes durable at a lower cost per record.
 */
export class LevelDbPeer implements Peer {
  readonly name = 'leveldb';
  private db: ClassicLevel<Buffer, Buffer> | null = null;
  private readonly offsets = new OffsetCounter();
  private batcher: Batcher<Put, number> | null = null;

  async unavailable(): Promise<string | null> {
    return null;
  }

  async open(dir: string): Promise<void> {
    const db = new ClassicLevel<Buffer, Buffer>(join(dir, 'peer.leveldb'), { keyEncoding: 'buffer', valueEncoding: 'buffer' });
    await db.open();
    this.db = db;
    this.batcher = new Batcher<Put, number>(async (puts) => {
      await db.batch(puts.map((p) => ({ type: 'put' as const, key: p.key, value: p.value })), { sync: true });
      return puts.map((p) => p.offset);
    });
  }

  append(topic: string, queueId: number, data: Buffer): Promise<number> {
    if (!this.batcher) throw new Error('leveldb peer not open');
    const offset = this.offsets.take(topic, queueId);
    return this.batcher.add({ key: keyOf(topic, queueId, offset), value: data, offset });
  }

  async read(topic: string, queueId: number, offset: number): Promise<Buffer | null> {
    const value = await this.db?.get(keyOf(topic, queueId, offset));
    return value ?? null;
  }

  async close(): Promise<void> {
    await this.db?.close();
    this.db = null;
  }
}
