/**
 * The gateway's door: an adaptive HTTP/1.1 reverse proxy (startGateway), its config loader, and
 * the provider-side limiter middleware. Everything else in this folder is internal.
 */
export { startGateway, type RunningGateway, type StartOptions, type GatewayState, type UpstreamState } from './gateway.js';
export { loadGatewayConfig, parseGatewayConfig, type GatewayConfig, type GatewayConfigInput } from './config.js';
export { adaptiveLimiter, type AdaptiveLimiter, type AdaptiveLimiterOptions, type NodeHandler } from './limiter-middleware.js';
export { GatewayError, GatewayConfigError, GatewayArgumentError, GATEWAY_ERROR_CODES, type GatewayErrorCode } from './errors.js';
export { AdaptiveLimit, type LimitOptions } from './concurrency-limit.js';
export { LOAD_HINT_HEADER } from './constants.js';
