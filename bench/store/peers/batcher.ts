/**
 * Group commit for peers that have no group commit of their own in the driver: appends that
 * arrive while a batch is being committed wait and go together into the next one, which is how
 * SQLite (one transaction), LevelDB (one write batch) and Redis (one pipeline) documentation
 * recommends writing many small records durably.
 */
export class Batcher<T, R> {
  private pending: { item: T; resolve: (r: R) => void; reject: (e: unknown) => void }[] = [];
  private committing = false;
  private scheduled = false;

  constructor(private readonly commit: (items: T[]) => Promise<R[]> | R[]) {}

  add(item: T): Promise<R> {
    return new Promise<R>((resolve, reject) => {
      this.pending.push({ item, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.committing || this.scheduled) return;
    this.scheduled = true;
    // setImmediate, not a microtask: producers woken by the previous batch enqueue first.
    setImmediate(() => {
      this.scheduled = false;
      void this.flush();
    });
  }

  private async flush(): Promise<void> {
    if (this.committing || this.pending.length === 0) return;
    this.committing = true;
    const batch = this.pending;
    this.pending = [];
    try {
      const results = await this.commit(batch.map((p) => p.item));
      batch.forEach((p, i) => p.resolve(results[i]));
    } catch (err) {
      for (const p of batch) p.reject(err);
    } finally {
      this.committing = false;
      if (this.pending.length > 0) this.schedule();
    }
  }
}
