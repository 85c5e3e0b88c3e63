import { createServer, type Server } from 'node:http';
import type { Logger } from '../common/log.js';
import { DASHBOARD_HTML } from './dashboard.js';
import type { GatewayMetrics } from './metrics.js';

export interface AdminSources {
  metrics: GatewayMetrics;
  state(): unknown;
  ready(): boolean;
}

/**
 * The admin listener: `/metrics` (Prometheus text), `/healthz` (200 while serving, 503 while
 * draining or with no usable upstream), `/api/state` (JSON for the dashboard and scripts) and `/`
 * (the dashboard). Separate from the proxy port so it can be bound to a private interface.
 */
export function createAdminServer(sources: AdminSources, log: Logger): Server {
  return createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    const send = (status: number, type: string, body: string): void => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(405, 'text/plain', 'method not allowed\n');
      return;
    }
    switch (url) {
      case '/metrics':
        sources.metrics.registry.metrics().then(
          (text) => send(200, sources.metrics.registry.contentType, text),
          (err: unknown) => {
            log.error({ err }, 'metrics collection failed');
            send(500, 'text/plain', 'metrics collection failed\n');
          },
        );
        return;
      case '/healthz': {
        const ready = sources.ready();
        send(ready ? 200 : 503, 'application/json', JSON.stringify({ status: ready ? 'ok' : 'unavailable' }));
        return;
      }
      case '/api/state':
        send(200, 'application/json', JSON.stringify(sources.state()));
        return;
      case '/':
        send(200, 'text/html; charset=utf-8', DASHBOARD_HTML);
        return;
      default:
        send(404, 'text/plain', 'not found\n');
    }
  });
}
