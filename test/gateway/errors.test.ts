import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, test } from 'node:test';
import { GATEWAY_ERROR_CODES, GatewayError } from '../../src/gateway/index.js';

/** docs/gateway.md, found from this file whether it runs from dist/ or .build/<name>/. */
async function docsPage(): Promise<string> {
  for (const rel of ['../../../docs/gateway.md', '../../../../docs/gateway.md']) {
    try {
      return await readFile(new URL(rel, import.meta.url), 'utf8');
    } catch {
      // Try the next layout.
    }
  }
  throw new Error('docs/gateway.md not found');
}

describe('error catalogue', () => {
  test('every code is documented in docs/gateway.md with its status, and the page lists no other', async () => {
    const page = await docsPage();
    const documented = new Map<string, string>();
    for (const m of page.matchAll(/^\| `(CIRRUS_GW_[A-Z_]+)` \| ([-0-9]+) \|/gm)) documented.set(m[1]!, m[2]!);
    for (const [code, status] of Object.entries(GATEWAY_ERROR_CODES)) {
      assert.ok(documented.has(code), `${code} missing from docs/gateway.md`);
      const expected = status >= 500 && ['CIRRUS_GW_CONFIG_INVALID', 'CIRRUS_GW_INVALID_ARGUMENT', 'CIRRUS_GW_RELOAD_REJECTED'].includes(code) ? '-' : String(status);
      assert.equal(documented.get(code), expected, `status of ${code}`);
    }
    for (const code of documented.keys()) assert.ok(code in GATEWAY_ERROR_CODES, `${code} documented but not in errors.ts`);
  });

  test('errors carry code, status and name', () => {
    const e = new GatewayError('CIRRUS_GW_TIMEOUT', 'x');
    assert.equal(e.code, 'CIRRUS_GW_TIMEOUT');
    assert.equal(e.status, 504);
    assert.equal(e.name, 'GatewayError');
  });
});
