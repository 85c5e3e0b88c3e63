/** A system the store is compared with, driven through the same producers as the store. */
export interface Peer {
  readonly name: string;
  /** Null when it can run here; otherwise why not and how to make it run. */
  unavailable(): Promise<string | null>;
  open(dir: string): Promise<void>;
  /** Durable before it resolves (each peer at its strictest documented setting). */
  append(topic: string, queueId: number, data: Buffer): Promise<number>;
  /** The record at `offset`, or null when absent. */
  read(topic: string, queueId: number, offset: number): Promise<Buffer | null>;
  close(): Promise<void>;
}

/**
 * Offsets per (topic, queue) kept by the adapter, as a broker on top of the peer would: the peer
 * stores (topic, queue, offset) -> data.
 */
export class OffsetCounter {
  private readonly next = new Map<string, number>();

  take(topic: string, queueId: number): number {
    const key = `${topic}\u0000${queueId}`;
    const offset = this.next.get(key) ?? 0;
    this.next.set(key, offset + 1);
    return offset;
  }
}
