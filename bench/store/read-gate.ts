/**
 * Lets many reads run at once (shared) while one measured read can run alone (exclusive): the
 * store's cache counters are process-wide, so a hit ratio can only be attributed to one kind of
 * read when nothing else reads during it.
 */
export class ReadGate {
  private active = 0;
  private exclusiveHeld: Promise<void> | null = null;
  private onDrained: (() => void) | null = null;

  async shared<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusiveHeld) await this.exclusiveHeld;
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      if (this.active === 0 && this.onDrained) {
        const wake = this.onDrained;
        this.onDrained = null;
        wake();
      }
    }
  }

  async exclusive<T>(fn: () => Promise<T>): Promise<T> {
    while (this.exclusiveHeld) await this.exclusiveHeld;
    let release!: () => void;
    this.exclusiveHeld = new Promise<void>((resolve) => (release = resolve));
    try {
      while (this.active > 0) await new Promise<void>((resolve) => (this.onDrained = resolve));
      return await fn();
    } finally {
      this.exclusiveHeld = null;
      release();
    }
  }
}
