export { CirrusError, InvariantError, hasCode, invariant } from './errors.js';
export { createLogger, type Logger } from './log.js';
