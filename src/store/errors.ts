import { CirrusError, errnoCode } from '../common/index.js';

/** Base of every error the store throws on purpose; branch on `code`. */
export class StoreError extends CirrusError {}

/** Any call after close() (or while closing). */
export class StoreClosedError extends StoreError {
  constructor() {
    super('CIRRUS_STORE_CLOSED', 'the store is closed');
  }
}

/** A bad argument; `argument` names it. Nothing in the store changed. */
export class StoreInvalidArgumentError extends StoreError {
  readonly argument: string;
  constructor(argument: string, message: string) {
    super('CIRRUS_STORE_INVALID_ARGUMENT', `invalid argument "${argument}": ${message}`);
    this.argument = argument;
  }
}

/** A read below the first retained offset of a queue (retention deleted older records). */
export class StoreOffsetTruncatedError extends StoreError {
  readonly firstAvailableOffset: number;
  constructor(topic: string, queueId: number, offset: number, firstAvailableOffset: number) {
    super(
      'CIRRUS_STORE_OFFSET_TRUNCATED',
      `offset ${offset} of ${topic}/${queueId} was deleted by retention; first available offset is ${firstAvailableOffset}`,
    );
    this.firstAvailableOffset = firstAvailableOffset;
  }
}

/** Another live process (or another MessageStore in this one) holds the directory. */
export class StoreLockedError extends StoreError {
  readonly holderPid: number;
  /** `holderPid` -1: the lock kept changing hands while this open tried to take it. */
  constructor(dir: string, holderPid: number) {
    super(
      'CIRRUS_STORE_LOCKED',
      holderPid > 0
        ? `store directory ${dir} is locked by live process ${holderPid}`
        : `store directory ${dir} is locked: its LOCK file kept changing while this process tried to take it over`,
    );
    this.holderPid = holderPid;
  }
}

/** A write or sync failed with an I/O error; the affected appends were rolled back. */
export class StoreIoError extends StoreError {
  constructor(message: string, cause: unknown) {
    super('CIRRUS_STORE_IO', message, { cause });
  }
}

/** The device is full (ENOSPC/EDQUOT); the affected appends were rolled back, later ones retry. */
export class StoreNoSpaceError extends StoreError {
  constructor(message: string, cause: unknown) {
    super('CIRRUS_STORE_NO_SPACE', message, { cause });
  }
}

/** A record failed its CRC or header check on read, or lies in a range recovery found damaged. */
export class StoreCorruptError extends StoreError {
  readonly position: number;
  constructor(message: string, position: number) {
    super('CIRRUS_STORE_CORRUPT', message);
    this.position = position;
  }
}

/** Too many distinct topics (MAX_TOPICS). */
export class StoreLimitError extends StoreError {
  constructor(message: string) {
    super('CIRRUS_STORE_LIMIT', message);
  }
}

/**
 * `cirrus store verify` / `inspect` (scanStore) on a path that holds no store: it does not exist,
 * is not a directory, or has none of a store's files. Scanning it would report an empty store as
 * sound, which a typo in the path must not get.
 */
export class StoreNotFoundError extends StoreError {
  readonly dir: string;
  constructor(dir: string, why: string) {
    super('CIRRUS_STORE_NOT_FOUND', `${dir} ${why}`);
    this.dir = dir;
  }
}

/** Every code the store can throw, in one list: docs/store.md and a test keep in step with it. */
export const STORE_ERROR_CODES = [
  'CIRRUS_STORE_CLOSED',
  'CIRRUS_STORE_INVALID_ARGUMENT',
  'CIRRUS_STORE_OFFSET_TRUNCATED',
  'CIRRUS_STORE_LOCKED',
  'CIRRUS_STORE_IO',
  'CIRRUS_STORE_NO_SPACE',
  'CIRRUS_STORE_CORRUPT',
  'CIRRUS_STORE_LIMIT',
  'CIRRUS_STORE_NOT_FOUND',
] as const;

/** Maps a failed fs call to the typed error the affected appends reject with. */
export function writeErrorFrom(err: unknown, what: string): StoreIoError | StoreNoSpaceError {
  if (err instanceof StoreIoError || err instanceof StoreNoSpaceError) return err;
  const code = errnoCode(err);
  const detail = err instanceof Error ? err.message : String(err);
  if (code === 'ENOSPC' || code === 'EDQUOT') return new StoreNoSpaceError(`${what}: no space left on device (${detail})`, err);
  return new StoreIoError(`${what}: ${detail}`, err);
}
