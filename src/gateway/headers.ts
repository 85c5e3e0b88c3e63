import type { IncomingHttpHeaders, IncomingMessage, OutgoingHttpHeaders } from 'node:http';

/**
 * RFC 9110 7.6.1: connection-specific fields never cross a proxy. `expect` is answered by the
 * gateway itself (Node sends 100 Continue), `proxy-*` belong to the hop that sent them, and
 * `http2-settings` only means something on an upgrade the gateway does not do.
 */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'expect',
  'http2-settings',
]);

export const VIA_VALUE = '1.1 cirrus';

function connectionListed(value: string | string[] | undefined): Set<string> | null {
  if (value === undefined) return null;
  const text = Array.isArray(value) ? value.join(',') : value;
  const out = new Set<string>();
  for (const token of text.split(',')) {
    const t = token.trim().toLowerCase();
    if (t !== '' && t !== 'close' && t !== 'keep-alive') out.add(t);
  }
  return out.size === 0 ? null : out;
}

function strip(headers: IncomingHttpHeaders, out: Record<string, string | string[]>): void {
  const listed = connectionListed(headers.connection);
  for (const key in headers) {
    if (HOP_BY_HOP.has(key) || (listed !== null && listed.has(key))) continue;
    const v = headers[key];
    if (v !== undefined) out[key] = v;
  }
}

function appendValue(existing: string | string[] | undefined, value: string): string {
  if (existing === undefined || existing === '') return value;
  return `${Array.isArray(existing) ? existing.join(', ') : existing}, ${value}`;
}

/** RFC 7239 node names: IPv6 addresses are bracketed and quoted. */
function forwardedNode(ip: string): string {
  return ip.includes(':') ? `"[${ip}]"` : ip;
}

/**
 * Headers for the upstream request: the client's, minus hop-by-hop fields, plus the standard
 * forwarding fields (X-Forwarded-For/-Proto/-Host, Forwarded, Via). Host is passed through so
 * virtual hosts behind the gateway keep working.
 */
export function upstreamRequestHeaders(req: IncomingMessage): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  strip(req.headers, out);
  const ip = req.socket.remoteAddress ?? 'unknown';
  const host = req.headers.host;
  out['x-forwarded-for'] = appendValue(req.headers['x-forwarded-for'], ip);
  out['x-forwarded-proto'] = req.headers['x-forwarded-proto'] ?? 'http';
  if (host !== undefined) out['x-forwarded-host'] = req.headers['x-forwarded-host'] ?? host;
  const hostPart = host !== undefined && /^[A-Za-z0-9.:[\]-]+$/.test(host) ? `;host=${host.includes(':') ? `"${host}"` : host}` : '';
  out.forwarded = appendValue(req.headers.forwarded, `for=${forwardedNode(ip)}${hostPart};proto=http`);
  out.via = appendValue(req.headers.via, VIA_VALUE);
  return out;
}

/** Headers for the client response: the upstream's, minus hop-by-hop fields, plus Via. */
export function clientResponseHeaders(headers: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out: Record<string, string | string[]> = {};
  strip(headers, out);
  out.via = appendValue(headers.via, VIA_VALUE);
  return out;
}
