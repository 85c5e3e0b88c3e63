import { CirrusError } from '../common/errors.js';

/**
 * The gateway's error catalogue. Each code is stable and documented in docs/gateway.md (a test
 * keeps this list and the page in step). `status` is the HTTP status the gateway answers with
 * when the error ends a client request.
 */
export const GATEWAY_ERROR_CODES = {
  CIRRUS_GW_CONFIG_INVALID: 500,
  CIRRUS_GW_INVALID_ARGUMENT: 500,
  CIRRUS_GW_RELOAD_REJECTED: 500,
  CIRRUS_GW_BAD_REQUEST: 400,
  CIRRUS_GW_BODY_TOO_LARGE: 413,
  CIRRUS_GW_HEADERS_TOO_LARGE: 431,
  CIRRUS_GW_NO_UPSTREAM: 503,
  CIRRUS_GW_OVERLOADED: 503,
  CIRRUS_GW_QUEUE_TIMEOUT: 503,
  CIRRUS_GW_CLOSED: 503,
  CIRRUS_GW_TIMEOUT: 504,
  CIRRUS_GW_UPSTREAM_CONNECT: 502,
  CIRRUS_GW_UPSTREAM_RESET: 502,
  CIRRUS_GW_UPSTREAM_PROTOCOL: 502,
  CIRRUS_GW_UPSTREAM_STALLED: 504,
} as const;

export type GatewayErrorCode = keyof typeof GATEWAY_ERROR_CODES;

export class GatewayError extends CirrusError {
  declare readonly code: GatewayErrorCode;
  readonly status: number;

  constructor(code: GatewayErrorCode, message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.status = GATEWAY_ERROR_CODES[code];
  }
}

/** A config value failed validation; `path` names the key, e.g. `upstreams[1].url`. */
export class GatewayConfigError extends GatewayError {
  readonly path: string;

  constructor(path: string, message: string, options?: { cause?: unknown }) {
    super('CIRRUS_GW_CONFIG_INVALID', `${path}: ${message}`, options);
    this.path = path;
  }
}

/** A programmatic API was called with a bad argument; `argument` names it. Nothing changed. */
export class GatewayArgumentError extends GatewayError {
  readonly argument: string;

  constructor(argument: string, message: string) {
    super('CIRRUS_GW_INVALID_ARGUMENT', `${argument}: ${message}`);
    this.argument = argument;
  }
}
