/**
 * Base class of every error Cirrus throws on purpose. Callers branch on `code`, never on the
 * message text; codes are stable and documented in docs/errors.md (a test keeps them in step).
 */
export class CirrusError extends Error {
  readonly code: string;

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** True when `err` is a CirrusError carrying `code`. */
export function hasCode(err: unknown, code: string): err is CirrusError {
  return err instanceof CirrusError && err.code === code;
}

/** The errno name (`ENOENT`, `EEXIST` ...) of a failed Node system call, undefined for anything else. */
export function errnoCode(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** A broken invariant: a programmer error. The process must not go on writing data after it. */
export class InvariantError extends CirrusError {
  constructor(message: string) {
    super('CIRRUS_INVARIANT', `invariant broken: ${message}`);
  }
}

/** Asserts an invariant; throws InvariantError (never caught by Cirrus itself) when false. */
export function invariant(condition: unknown, message: string): asserts condition {
  if (!condition) throw new InvariantError(message);
}
