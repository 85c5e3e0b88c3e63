import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { GatewayConfigError, loadGatewayConfig, parseGatewayConfig, startGateway } from '../../src/gateway/index.js';
import { silentLogger } from './helpers.js';

const ok = { upstreams: ['http://127.0.0.1:9001'] };

describe('config validation', () => {
  test('defaults fill every key', () => {
    const c = parseGatewayConfig(ok);
    assert.equal(c.listen, '127.0.0.1:8080');
    assert.equal(c.admin, '127.0.0.1:9901');
    assert.equal(c.timeoutMs, 5_000);
    assert.equal(c.queue.timeoutMs, null, 'no flat cap: a queued request waits while it can still be served');
    assert.equal(c.queue.maxLength, 10_000);
    assert.equal(c.retry.maxAttempts, 4);
    assert.equal(c.healthCheck, null);
  });

  test('queue.timeoutMs: a flat cap when given, null (none) when given null', () => {
    assert.equal(parseGatewayConfig({ ...ok, queue: { timeoutMs: 1_500 } }).queue.timeoutMs, 1_500);
    assert.equal(parseGatewayConfig({ ...ok, queue: { timeoutMs: null } }).queue.timeoutMs, null);
  });

  // [input, key path named by the error]
  const bad: Array<[string, unknown, string]> = [
    ['no upstreams key', {}, 'upstreams'],
    ['empty upstreams', { upstreams: [] }, 'upstreams'],
    ['upstream with a path', { upstreams: ['http://a:1/base'] }, 'upstreams[0]'],
    ['upstream not http', { upstreams: ['http://a:1', 'ftp://b:2'] }, 'upstreams[1]'],
    ['duplicate upstream', { upstreams: ['http://a:1', { url: 'http://a:1/' }] }, 'upstreams[1]'],
    ['weight zero', { upstreams: [{ url: 'http://a:1', weight: 0 }] }, 'upstreams[0].weight'],
    ['listen without port', { ...ok, listen: 'localhost' }, 'listen'],
    ['listen port too big', { ...ok, listen: '127.0.0.1:70000' }, 'listen'],
    ['admin garbage', { ...ok, admin: 'x y' }, 'admin'],
    ['negative timeout', { ...ok, timeoutMs: -1 }, 'timeoutMs'],
    ['timeout not a number', { ...ok, timeoutMs: '5s' }, 'timeoutMs'],
    ['unknown top-level key', { ...ok, timeoutMS: 5 }, '(root)'],
    ['unknown nested key', { ...ok, retry: { budget: 1 } }, 'retry'],
    ['limit bounds inverted', { ...ok, limit: { min: 10, max: 5, initial: 7 } }, 'limit'],
    ['queue timeout above timeout', { ...ok, timeoutMs: 1_000, queue: { timeoutMs: 1_000 } }, 'queue.timeoutMs'],
    ['route prefix not a path', { ...ok, routes: [{ prefix: 'api' }] }, 'routes[0].prefix'],
    ['ejection bounds inverted', { ...ok, outlier: { baseEjectionMs: 10_000, maxEjectionMs: 100 } }, 'outlier'],
    ['health check path', { ...ok, healthCheck: { path: 'healthz' } }, 'healthCheck.path'],
    ['body limit fractional', { ...ok, maxBodyBytes: 1.5 }, 'maxBodyBytes'],
  ];
  for (const [name, input, path] of bad) {
    test(`rejects ${name}, naming ${path}`, () => {
      assert.throws(
        () => parseGatewayConfig(input),
        (err: unknown) => err instanceof GatewayConfigError && err.code === 'CIRRUS_GW_CONFIG_INVALID' && err.path === path && err.message.startsWith(`${path}: `),
      );
    });
  }

  test('startGateway validates before binding anything', async () => {
    await assert.rejects(
      startGateway({ upstreams: ['nope'], listen: '127.0.0.1:0', admin: null }, { logger: silentLogger }),
      (err: unknown) => err instanceof GatewayConfigError && err.path === 'upstreams[0]',
    );
  });

  test('loadGatewayConfig reads YAML, and names the key of a bad value in a file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'cirrus-gw-config-'));
    try {
      const good = join(dir, 'good.yaml');
      await writeFile(good, 'listen: 127.0.0.1:0\nadmin: null\nupstreams:\n  - http://127.0.0.1:9001\n  - { url: http://127.0.0.1:9002, weight: 2 }\ntimeoutMs: 3000\n');
      const cfg = await loadGatewayConfig(good);
      assert.deepEqual(cfg.upstreams, ['http://127.0.0.1:9001', { url: 'http://127.0.0.1:9002', weight: 2 }]);
      assert.equal(parseGatewayConfig(cfg).timeoutMs, 3_000);

      const badValue = join(dir, 'bad.yaml');
      await writeFile(badValue, 'upstreams: [http://127.0.0.1:9001]\nqueue:\n  maxLength: -5\n');
      await assert.rejects(loadGatewayConfig(badValue), (err: unknown) => err instanceof GatewayConfigError && err.path === 'queue.maxLength');

      const notYaml = join(dir, 'broken.yaml');
      await writeFile(notYaml, 'upstreams: [http://a:1\n  : :\n');
      await assert.rejects(loadGatewayConfig(notYaml), (err: unknown) => err instanceof GatewayConfigError && err.path === '(file)');

      await assert.rejects(loadGatewayConfig(join(dir, 'missing.yaml')), (err: unknown) => err instanceof GatewayConfigError && /cannot read/.test(err.message));
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
