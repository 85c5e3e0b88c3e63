import { readFile } from 'node:fs/promises';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import * as C from './constants.js';
import { GatewayConfigError } from './errors.js';

const positiveMs = z.number().int().positive().max(3_600_000);
const address = z.string().refine((s) => parseAddress(s) !== null, {
  message: 'expected HOST:PORT (port 0-65535), e.g. 127.0.0.1:8080',
});

const upstreamUrl = z.string().refine((s) => originOf(s) !== null, {
  message: 'expected an http:// or https:// origin without a path, e.g. http://10.0.0.5:8080',
});

const upstream = z.union([
  upstreamUrl,
  z.strictObject({ url: upstreamUrl, weight: z.number().positive().max(1_000).default(1) }),
]);

const route = z.strictObject({
  /** Requests whose path starts with this prefix use this route's settings; longest prefix wins. */
  prefix: z.string().startsWith('/'),
  timeoutMs: positiveMs.optional(),
});

const limit = z
  .strictObject({
    initial: z.number().int().min(1).max(100_000).default(C.LIMIT_INITIAL),
    min: z.number().int().min(1).max(100_000).default(C.LIMIT_MIN),
    max: z.number().int().min(1).max(100_000).default(C.LIMIT_MAX),
    latencyTolerance: z.number().min(1).max(100).default(C.LIMIT_LATENCY_TOLERANCE),
  })
  .refine((l) => l.min <= l.initial && l.initial <= l.max, { message: 'expected min <= initial <= max' });

const outlier = z
  .strictObject({
    consecutiveFailures: z.number().int().min(1).max(1_000).default(C.DEFAULT_CONSECUTIVE_FAILURES),
    baseEjectionMs: positiveMs.default(C.DEFAULT_BASE_EJECTION_MS),
    maxEjectionMs: positiveMs.default(C.DEFAULT_MAX_EJECTION_MS),
    probeTimeoutMs: positiveMs.default(C.DEFAULT_PROBE_TIMEOUT_MS),
    hangMinMs: positiveMs.default(C.DEFAULT_HANG_MIN_MS),
    hangP99Factor: z.number().min(1).max(1_000).default(C.DEFAULT_HANG_P99_FACTOR),
    /** Cancel a presumed-hung request and retry it elsewhere (idempotent, within the budget). */
    retryHung: z.boolean().default(true),
  })
  .refine((o) => o.baseEjectionMs <= o.maxEjectionMs, { message: 'expected baseEjectionMs <= maxEjectionMs' });

const retry = z.strictObject({
  budgetRatio: z.number().min(0).max(10).default(C.DEFAULT_RETRY_BUDGET_RATIO),
  minPerSecond: z.number().min(0).max(100_000).default(C.DEFAULT_RETRY_MIN_PER_SECOND),
  maxAttempts: z.number().int().min(1).max(10).default(C.DEFAULT_MAX_ATTEMPTS),
});

const queue = z.strictObject({
  /** 0 sheds at once when every upstream is at its limit. */
  maxLength: z.number().int().min(0).max(1_000_000).default(C.DEFAULT_MAX_QUEUE),
  /**
   * A flat cap on the wait for a slot. Default null: a request waits while its remaining time
   * covers being served (constants.ts, DISPATCH_RESERVE_P99_FACTOR); a cap lowers the p99 of
   * successes at the cost of successes after a capacity dip.
   */
  timeoutMs: positiveMs.nullable().optional(),
});

const healthCheck = z.strictObject({
  path: z.string().startsWith('/').default('/healthz'),
  intervalMs: positiveMs.default(C.DEFAULT_HEALTH_INTERVAL_MS),
  timeoutMs: positiveMs.default(C.DEFAULT_HEALTH_TIMEOUT_MS),
  unhealthyThreshold: z.number().int().min(1).max(100).default(C.DEFAULT_HEALTH_UNHEALTHY_THRESHOLD),
});

export const gatewayConfigSchema = z
  .strictObject({
    listen: address.default(C.DEFAULT_LISTEN),
    admin: address.nullable().default(C.DEFAULT_ADMIN_LISTEN),
    upstreams: z.array(upstream).min(1, { message: 'at least one upstream is required' }).max(1_000),
    timeoutMs: positiveMs.default(C.DEFAULT_TIMEOUT_MS),
    routes: z.array(route).max(1_000).default([]),
    maxBodyBytes: z.number().int().min(0).max(2 ** 40).default(C.DEFAULT_MAX_BODY_BYTES),
    maxHeaderBytes: z.number().int().min(1_024).max(1024 * 1024).default(C.DEFAULT_MAX_HEADER_BYTES),
    drainTimeoutMs: positiveMs.default(C.DEFAULT_DRAIN_TIMEOUT_MS),
    limit: limit.default({
      initial: C.LIMIT_INITIAL,
      min: C.LIMIT_MIN,
      max: C.LIMIT_MAX,
      latencyTolerance: C.LIMIT_LATENCY_TOLERANCE,
    }),
    outlier: outlier.default({
      consecutiveFailures: C.DEFAULT_CONSECUTIVE_FAILURES,
      baseEjectionMs: C.DEFAULT_BASE_EJECTION_MS,
      maxEjectionMs: C.DEFAULT_MAX_EJECTION_MS,
      probeTimeoutMs: C.DEFAULT_PROBE_TIMEOUT_MS,
      hangMinMs: C.DEFAULT_HANG_MIN_MS,
      hangP99Factor: C.DEFAULT_HANG_P99_FACTOR,
      retryHung: true,
    }),
    retry: retry.default({
      budgetRatio: C.DEFAULT_RETRY_BUDGET_RATIO,
      minPerSecond: C.DEFAULT_RETRY_MIN_PER_SECOND,
      maxAttempts: C.DEFAULT_MAX_ATTEMPTS,
    }),
    queue: queue.default({ maxLength: C.DEFAULT_MAX_QUEUE }),
    healthCheck: healthCheck.nullable().default(null),
  })
  .refine((c) => c.queue.timeoutMs === undefined || c.queue.timeoutMs === null || c.queue.timeoutMs < c.timeoutMs, {
    message: 'queue.timeoutMs must be below timeoutMs, or queued requests die at the timeout',
    path: ['queue', 'timeoutMs'],
  })
  .transform((c) => ({
    ...c,
    queue: {
      maxLength: c.queue.maxLength,
      timeoutMs: c.queue.timeoutMs ?? null,
    },
  }));

/** What callers pass: every key but `upstreams` is optional. */
export type GatewayConfigInput = z.input<typeof gatewayConfigSchema>;
/** The validated config with every default filled in. */
export type GatewayConfig = z.output<typeof gatewayConfigSchema>;

export interface UpstreamSpec {
  /** Canonical origin, e.g. `http://127.0.0.1:8081`; the upstream's identity across reloads. */
  origin: string;
  weight: number;
}

/** Validates `input`; throws GatewayConfigError naming the first bad key. */
export function parseGatewayConfig(input: unknown): GatewayConfig {
  const result = gatewayConfigSchema.safeParse(input);
  if (result.success) {
    const origins = new Set<string>();
    result.data.upstreams.forEach((u, i) => {
      const origin = upstreamSpecOf(u).origin;
      if (origins.has(origin)) throw new GatewayConfigError(`upstreams[${i}]`, `duplicate upstream ${origin}`);
      origins.add(origin);
    });
    return result.data;
  }
  const issue = result.error.issues[0]!;
  throw new GatewayConfigError(formatPath(issue.path), issue.message, { cause: result.error });
}

/** Reads a YAML (or JSON, a subset of YAML) config file and validates it. */
export async function loadGatewayConfig(path: string): Promise<GatewayConfigInput> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    throw new GatewayConfigError('(file)', `cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    throw new GatewayConfigError('(file)', `${path} is not valid YAML: ${(err as Error).message}`, { cause: err });
  }
  parseGatewayConfig(doc);
  return doc as GatewayConfigInput;
}

export function upstreamSpecOf(u: GatewayConfig['upstreams'][number]): UpstreamSpec {
  if (typeof u === 'string') return { origin: originOf(u)!, weight: 1 };
  return { origin: originOf(u.url)!, weight: u.weight };
}

/** `host:port` -> parts; accepts `[::1]:80`, `:8080` (all interfaces) and `8080`. Null when malformed. */
export function parseAddress(s: string): { host: string; port: number } | null {
  const m = /^(?:(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]*):)?(\d{1,5})$/.exec(s.trim());
  if (!m) return null;
  const port = Number(m[2]);
  if (port > 65_535) return null;
  let host = m[1] ?? '';
  if (host.startsWith('[')) host = host.slice(1, -1);
  return { host: host === '' ? '0.0.0.0' : host, port };
}

function originOf(s: string): string | null {
  let url: URL;
  try {
    url = new URL(s);
  } catch {
    return null;
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') return null;
  if ((url.pathname !== '/' && url.pathname !== '') || url.search !== '' || url.hash !== '') return null;
  if (url.username !== '' || url.password !== '') return null;
  return url.origin;
}

function formatPath(path: ReadonlyArray<PropertyKey>): string {
  if (path.length === 0) return '(root)';
  let out = '';
  for (const p of path) out += typeof p === 'number' ? `[${p}]` : out === '' ? String(p) : `.${String(p)}`;
  return out;
}
