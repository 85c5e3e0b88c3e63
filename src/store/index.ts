/** The store's public door. */
export { MessageStore, type OpenOptions, type RecoveryReport } from './store.js';
export {
  StoreError,
  StoreClosedError,
  StoreInvalidArgumentError,
  StoreOffsetTruncatedError,
  StoreLockedError,
  StoreIoError,
  StoreNoSpaceError,
  StoreCorruptError,
  StoreLimitError,
  StoreNotFoundError,
  STORE_ERROR_CODES,
} from './errors.js';
export { createNodeIo, nodeIo, type NodeIoOptions, type ReadGate, type StoreIo, type StoreFile } from './io.js';
export type { DamageReport, RecordVerdict } from './recovery.js';
export {
  largeBuffersMapped,
  mappedBufferBytes,
  mappedBufferCount,
  mappedBufferFallbacks,
  mappedBufferLimit,
  mappedBufferPoolBytes,
  mappedBufferPoolLimit,
  setMappedBufferLimit,
  setMappedBufferPoolLimit,
} from './large-buffer.js';
export * from './types.js';
export * from './constants.js';
export { StoreMetrics, STORE_METRIC_PREFIX, type StoreStatsSource } from './metrics.js';
export { verifyStore, inspectStore, scanStore, type VerifyReport, type StoreScan, type ScanOptions, type ScanProgress, type QueueSummary, type SegmentSummary, type OffsetProblem } from './verify.js';
