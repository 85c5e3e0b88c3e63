/**
 * The systems under test, each started in its own process in front of the same providers:
 * Cirrus (via startGateway), nginx, HAProxy, undici BalancedPool and random choice.
 */
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { haproxyConfig } from './peers/haproxy.js';
import { nginxConfig } from './peers/nginx.js';
import { findBinary, forkReporting, freePort, spawnListening, type Child } from './processes.js';

export const SYSTEMS = ['cirrus', 'nginx', 'haproxy', 'balancedpool', 'random'] as const;
export type SystemName = (typeof SYSTEMS)[number];

export interface RunningSystem {
  readonly name: SystemName;
  readonly url: string;
  stop(): Promise<void>;
}

export interface SystemContext {
  readonly upstreams: readonly string[];
  readonly rps: number;
  readonly timeoutMs: number;
}

/** Why a system cannot run here (a missing binary and how to install it), or null. */
export function unavailable(name: SystemName): string | null {
  if (name === 'nginx' && !findBinary('nginx')) return 'nginx not found: install it with `apt-get install nginx` (Debian/Ubuntu)';
  if (name === 'haproxy' && !findBinary('haproxy')) return 'haproxy not found: install it with `apt-get install haproxy` (Debian/Ubuntu)';
  return null;
}

function withTempDir(child: Child, dir: string, name: SystemName, url: string): RunningSystem {
  return {
    name,
    url,
    stop: async () => {
      await child.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export async function startSystem(name: SystemName, ctx: SystemContext): Promise<RunningSystem> {
  const upstreams = [...ctx.upstreams];
  switch (name) {
    case 'cirrus': {
      const { child, report } = await forkReporting<{ url: string; adminUrl: string | null }>(
        new URL('./cirrus-launcher.js', import.meta.url),
        { upstreams, timeoutMs: ctx.timeoutMs },
        { CIRRUS_LOG_LEVEL: 'warn' },
      );
      if (report.adminUrl) process.stderr.write(`    cirrus admin (dashboard, /api/state): ${report.adminUrl}\n`);
      return { name, url: report.url, stop: () => child.stop() };
    }
    case 'balancedpool':
    case 'random': {
      const { child, report } = await forkReporting<{ url: string }>(new URL('./peers/node-proxy.js', import.meta.url), { mode: name, upstreams, timeoutMs: ctx.timeoutMs });
      return { name, url: report.url, stop: () => child.stop() };
    }
    case 'nginx': {
      const bin = findBinary('nginx');
      if (!bin) throw new Error(unavailable('nginx') ?? 'nginx missing');
      const dir = mkdtempSync(join(tmpdir(), 'cirrus-bench-nginx-'));
      for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub));
      const port = await freePort();
      writeFileSync(join(dir, 'nginx.conf'), nginxConfig({ listenPort: port, upstreams, dir }));
      const child = await spawnListening(bin, ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], port);
      return withTempDir(child, dir, name, `http://127.0.0.1:${port}`);
    }
    case 'haproxy': {
      const bin = findBinary('haproxy');
      if (!bin) throw new Error(unavailable('haproxy') ?? 'haproxy missing');
      const dir = mkdtempSync(join(tmpdir(), 'cirrus-bench-haproxy-'));
      const port = await freePort();
      writeFileSync(join(dir, 'haproxy.cfg'), haproxyConfig({ listenPort: port, upstreams, rps: ctx.rps }));
      const child = await spawnListening(bin, ['-db', '-f', join(dir, 'haproxy.cfg')], port);
      return withTempDir(child, dir, name, `http://127.0.0.1:${port}`);
    }
  }
}
