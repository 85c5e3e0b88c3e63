export { CirrusError, InvariantError, errnoCode, hasCode, invariant } from './errors.js';
export { createLogger, type Logger } from './log.js';
