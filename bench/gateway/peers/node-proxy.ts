/**
 * Two Node baselines as small reverse proxies, each in its own process like the other peers:
 * - `random`: picks a provider uniformly at random per request (no signals at all);
 * - `balancedpool`: undici's BalancedPool, the Node ecosystem's client-side balancer, which
 *   lowers a provider's weight on errors and raises it back on successes.
 * Neither retries: the first is the floor, the second is what a Node service gets out of the box.
 * Run with fork(): receives its options as argv[2] (JSON) and reports `{ url }` over IPC.
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { BalancedPool, Pool, type Dispatcher } from 'undici';

interface ProxyOptions {
  readonly mode: 'random' | 'balancedpool';
  readonly upstreams: readonly string[];
  readonly timeoutMs: number;
}

/** Connections per provider: enough that the pool never queues requests on its own. */
const CONNECTIONS_PER_UPSTREAM = 4096;
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'te', 'trailer', 'host']);

const options = JSON.parse(process.argv[2] ?? '{}') as ProxyOptions;
const pools = options.upstreams.map((u) => new Pool(u, { connections: CONNECTIONS_PER_UPSTREAM, pipelining: 1 }));
const balanced = new BalancedPool([...options.upstreams], { connections: CONNECTIONS_PER_UPSTREAM, pipelining: 1 });

function pick(): Dispatcher {
  if (options.mode === 'balancedpool') return balanced;
  return pools[Math.floor(Math.random() * pools.length)];
}

function forward(req: IncomingMessage, res: ServerResponse): void {
  const headers: Record<string, string | string[]> = {};
  for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) headers[k] = v;
  const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
  pick()
    .request({
      path: req.url ?? '/',
      method: (req.method ?? 'GET') as Dispatcher.HttpMethod,
      headers,
      body: hasBody ? req : null,
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
    })
    .then((up) => {
      const out: Record<string, string | string[]> = {};
      for (const [k, v] of Object.entries(up.headers)) if (v !== undefined && !HOP_BY_HOP.has(k)) out[k] = v;
      res.writeHead(up.statusCode, out);
      up.body.pipe(res);
      up.body.on('error', () => res.destroy());
    })
    .catch(() => {
      if (res.headersSent) res.destroy();
      else res.writeHead(502, { 'content-length': '0' }).end();
    });
  if (!hasBody) req.resume();
}

const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, forward);
server.on('clientError', (_e, socket) => socket.destroy());
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.send?.({ url: `http://127.0.0.1:${port}` });
});
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
