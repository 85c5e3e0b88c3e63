/**
 * Runs a simulated cluster in a process of its own, so the providers' timers do not share an
 * event loop with the load generator measuring the system under test. Run with fork(): options
 * as argv[2] (JSON); reports `{ providers, startedAtEpochMs }` over IPC; on `{ stop: true }`
 * replies `{ stats }`, closes and exits.
 */
import { startCluster, type ClusterOptions } from '../../src/sim/index.js';

const options = JSON.parse(process.argv[2] ?? '{}') as ClusterOptions;
const cluster = await startCluster(options);
process.send?.({ providers: cluster.providers, startedAtEpochMs: cluster.startedAtEpochMs });

let stopping = false;
const stop = async (): Promise<void> => {
  if (stopping) return;
  stopping = true;
  const stats = cluster.stats();
  await cluster.close();
  if (process.connected) process.send?.({ stats }, () => process.exit(0));
  else process.exit(0);
};
process.on('message', (m: { stop?: boolean }) => {
  if (m.stop) void stop();
});
process.on('SIGTERM', () => void stop());
process.on('disconnect', () => void stop());
