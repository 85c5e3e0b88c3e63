/**
 * Runs the Cirrus gateway in a process of its own (like nginx and HAProxy get theirs) in front
 * of the given providers. Run with fork(): options as argv[2] (JSON), reports `{ url }` over IPC,
 * closes the gateway gracefully on SIGTERM or when the parent goes away.
 */
import { startGateway } from '../../src/gateway/index.js';

interface LauncherOptions {
  readonly upstreams: string[];
  readonly timeoutMs: number;
}

const options = JSON.parse(process.argv[2] ?? '{}') as LauncherOptions;
const gateway = await startGateway({
  listen: '127.0.0.1:0',
  // The admin port (dashboard, /api/state, /metrics) lets one watch a run as it happens.
  admin: '127.0.0.1:0',
  upstreams: options.upstreams,
  timeoutMs: options.timeoutMs,
  // Active health checks on the providers' health endpoint, like HAProxy's httpchk (every 500 ms,
  // 500 ms timeout): the like-for-like setting.
  healthCheck: { path: '/health', intervalMs: 500, timeoutMs: 500 },
});
process.send?.({ url: gateway.url, adminUrl: gateway.adminUrl });

let closing = false;
const shutdown = (): void => {
  if (closing) return;
  closing = true;
  gateway.close().then(
    () => process.exit(0),
    () => process.exit(1),
  );
};
process.on('SIGTERM', shutdown);
process.on('disconnect', shutdown);
