import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createTcpServer, type Server as TcpServer, type Socket } from 'node:net';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import { createLogger } from '../../src/common/log.js';
import { startGateway, type GatewayConfigInput, type RunningGateway } from '../../src/gateway/index.js';

export const silentLogger = createLogger('test', { level: 'silent' });

export interface TestUpstream {
  url: string;
  /** Requests that reached this server. */
  hits: number;
  /** Distinct TCP connections seen. */
  connections: number;
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1:0 running `handler`. */
export async function startUpstream(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<TestUpstream> {
  const up: TestUpstream = { url: '', hits: 0, connections: 0, close: async () => {} };
  const server: Server = createServer((req, res) => {
    up.hits += 1;
    handler(req, res);
  });
  server.on('connection', () => {
    up.connections += 1;
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  up.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  up.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return up;
}

/** Answers every request with `name` in the body after `delayMs`. */
export function named(name: string, delayMs = 0, status = 200): (req: IncomingMessage, res: ServerResponse) => void {
  return (req, res) => {
    req.resume();
    req.on('end', () => {
      const send = (): void => {
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'text/plain', 'x-upstream': name });
        res.end(name);
      };
      if (delayMs > 0) setTimeout(send, delayMs);
      else send();
    });
  };
}

/** A raw TCP server; `onSocket` decides what (if anything) to do with each connection. */
export async function startTcp(onSocket: (socket: Socket) => void): Promise<{ url: string; port: number; sockets: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>();
  const out = { url: '', port: 0, sockets: 0, close: async () => {} };
  const server: TcpServer = createTcpServer((socket) => {
    out.sockets += 1;
    sockets.add(socket);
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(socket));
    onSocket(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  out.port = (server.address() as AddressInfo).port;
  out.url = `http://127.0.0.1:${out.port}`;
  out.close = () =>
    new Promise<void>((resolve) => {
      for (const s of sockets) s.destroy();
      server.close(() => resolve());
    });
  return out;
}

/** Accepts connections, reads what it is sent, never answers. */
export function startBlackHole(): ReturnType<typeof startTcp> {
  return startTcp((socket) => socket.resume());
}

/** A port on 127.0.0.1 with nothing listening (connections are refused). */
export async function refusedUrl(): Promise<string> {
  const probe = await startTcp(() => {});
  await probe.close();
  return probe.url;
}

export function gateway(config: Omit<GatewayConfigInput, 'listen' | 'admin'> & { admin?: string | null }): Promise<RunningGateway> {
  return startGateway({ listen: '127.0.0.1:0', admin: null, ...config }, { logger: silentLogger });
}

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export async function get(url: string, options: { method?: string; headers?: Record<string, string>; body?: string | Buffer } = {}): Promise<Reply> {
  const res = await request(url, {
    method: (options.method ?? 'GET') as 'GET',
    headers: options.headers,
    body: options.body,
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const body = await res.body.text();
  return { status: res.statusCode, headers: res.headers, body };
}

/** Polls `cond` until true; fails after `timeoutMs` (generous: the machine may be loaded). */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 15_000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
