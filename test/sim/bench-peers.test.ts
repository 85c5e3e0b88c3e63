import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { haproxyConfig, haproxyServerMaxconn } from '../../bench/gateway/peers/haproxy.js';
import { nginxConfig } from '../../bench/gateway/peers/nginx.js';
import { findBinary } from '../../bench/gateway/processes.js';

// The benchmark's peers must run with the configs it generates; the binaries' own config checks
// say so. CI installs nginx and HAProxy before the tests (.ci/run).
const upstreams = ['http://127.0.0.1:9001', 'http://127.0.0.1:9002', 'http://127.0.0.1:9003'];

test('the generated nginx config passes nginx -t and carries the tuned settings', () => {
  const bin = findBinary('nginx');
  assert.ok(bin, 'nginx is installed (apt-get install nginx)');
  const dir = mkdtempSync(join(tmpdir(), 'cirrus-test-nginx-'));
  try {
    for (const sub of ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub));
    const conf = nginxConfig({ listenPort: 18080, upstreams, dir });
    for (const u of upstreams) assert.match(conf, new RegExp(`server ${new URL(u).host} `));
    assert.match(conf, /least_conn;/);
    assert.match(conf, /proxy_next_upstream error timeout http_502 http_503;/);
    writeFileSync(join(dir, 'nginx.conf'), conf);
    execFileSync(bin, ['-t', '-q', '-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log')], { stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the generated HAProxy config passes haproxy -c and scales maxconn with the load', () => {
  const bin = findBinary('haproxy');
  assert.ok(bin, 'haproxy is installed (apt-get install haproxy)');
  const dir = mkdtempSync(join(tmpdir(), 'cirrus-test-haproxy-'));
  try {
    const cfg = haproxyConfig({ listenPort: 18081, upstreams, rps: 1000 });
    assert.match(cfg, /balance leastconn/);
    assert.match(cfg, /retry-on conn-failure empty-response response-timeout 503/);
    assert.match(cfg, new RegExp(`maxconn ${haproxyServerMaxconn(1000)} observe layer7`));
    assert.ok(haproxyServerMaxconn(1000) > haproxyServerMaxconn(300));
    writeFileSync(join(dir, 'haproxy.cfg'), cfg);
    execFileSync(bin, ['-c', '-q', '-f', join(dir, 'haproxy.cfg')], { stdio: 'pipe' });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
