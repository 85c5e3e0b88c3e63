/** The door of the simulation subsystem: simulated clusters, the load generator, the oracle. */
export { startCluster, type ClusterHandle, type ClusterOptions } from './cluster.js';
export { startLoad, type LoadHandle, type LoadOptions, type LoadResult } from './load.js';
export { computeOracle, instantBound, waitFrontier, type OracleOptions, type OracleResult, type WaitFrontierPoint } from './oracle.js';
export { SCENARIOS, BENCH_SCENARIOS, buildSchedule, type ScenarioInfo, type BuildScheduleOptions } from './scenarios.js';
export { SimProvider, type ProviderOptions, type ProviderStats } from './provider.js';
export {
  phaseAt,
  phaseCapacityRps,
  clusterCapacityRps,
  summarizeSchedule,
  type ClusterSchedule,
  type ProviderSchedule,
  type Phase,
  type ProviderMode,
  type OverloadMode,
  type ScheduleSummaryLine,
} from './schedule.js';
export { SimArgumentError, SimUnknownScenarioError, SIM_ERROR_CODES, type SimErrorCode } from './errors.js';
export * as simConstants from './constants.js';
