import type { YogaServerInstance } from 'graphql-yoga';
import type { Logger } from 'pino';
import type { Config, CorsOrigins, LimitsConfig } from '../config.js';
import type { GatewayRateLimits } from '../engine/limits.js';
import type { TrustedDocuments } from '../engine/trusted-documents.js';
import type { GraphiQLDefaults } from '../http/graphiql.js';
import { createLogger, type GatewayMetrics } from '../observability/index.js';
import type { Tracing } from '../observability/tracing.js';
import type { Context } from '../schema/context.js';
import type { SharedRedisOptions } from '../state/redis.js';
import type { MisskeyClient, UpstreamCallEvent } from '../upstream/client.js';
import type { StreamHubOptions } from '../upstream/stream.js';

/** What a gateway is started with (`gatewayOptionsFromConfig` maps the environment to it). */
export interface GatewayOptions {
  /** Origin of the Misskey server (or the sandbox). */
  misskeyUrl: string;
  port?: number;
  host?: string;
  logger?: Logger;
  upstreamTimeoutMs?: number;
  upstreamConnections?: number;
  graphiql?: boolean;
  /** Answer a plain JSON POST with a token without Yoga's HTTP layer (`http/direct-post.ts`;
   *  default true). Off: every request goes through Yoga (for comparing the two). */
  directPost?: boolean;
  /** Default headers and operations GraphiQL opens with (demo mode). */
  graphiqlDefaults?: GraphiQLDefaults;
  /** Observes every upstream call (tests count them; metrics use it). */
  onUpstreamCall?: (event: UpstreamCallEvent) => void;
  /** The stream hub's timings (ping, reconnect backoff, refused-channel timeout). */
  stream?: StreamHubOptions;
  /** Operation, body and websocket limits (default `DEFAULT_LIMITS`). */
  limits?: Partial<LimitsConfig>;
  /** Deadline of one query or mutation in ms (default 15 000). */
  operationTimeoutMs?: number;
  /** Extra attempts of read endpoints (default 2; 0 = none) and their backoff base in ms. */
  upstreamRetries?: number;
  upstreamRetryDelayMs?: number;
  /** Consecutive failures that open the breaker (default 5; 0 = no breaker) and its cooldown. */
  breakerFailures?: number;
  breakerCooldownMs?: number;
  /** close(): how long `/ready` says 503 before the listener closes (default 0), and how long
   *  in-flight operations may run before their sockets are cut (default 10 000). */
  shutdownDelayMs?: number;
  shutdownTimeoutMs?: number;
  /** The gateway's own rate limit (default off). */
  rateLimit?: GatewayRateLimits;
  /** Client address from `X-Forwarded-For` (default false). */
  trustProxy?: boolean;
  /** Serve `/metrics` (default true). */
  metrics?: boolean;
  /** Staleness bound of the shared cache of lite users, in ms (default 30 000; 0 = off). */
  userCacheTtlMs?: number;
  /** Redis shared by replicas for the response cache and the rate limit (default: memory). */
  redisUrl?: string | null;
  /** Command deadline and cooldown of the Redis connection. */
  redis?: SharedRedisOptions;
  /** Browser origins allowed on /graphql: `*` (default, answered as `*`), `none`, or a list.
   *  Credentials are never allowed: the gateway authenticates by bearer token, not cookies. */
  corsOrigins?: CorsOrigins;
  /** Time a client has to send its request headers (default 10 000 ms) and its whole request
   *  (default 30 000 ms); a response, e.g. an SSE stream, may last longer. */
  httpHeadersTimeoutMs?: number;
  httpRequestTimeoutMs?: number;
  /** Open connections per client address (default 256; 0 = no cap). Not applied with
   *  `trustProxy`: every connection then comes from the proxy. */
  maxConnectionsPerIp?: number;
  /** Trusted documents: persisted-query hashes resolved from this manifest, and with
   *  `allowArbitrary: false` nothing else runs (default: none, any document runs). */
  trustedDocuments?: TrustedDocuments | null;
  /** OTLP/HTTP endpoint (spans go to `<endpoint>/v1/traces`); unset: no tracing at all. */
  otlpEndpoint?: string | null;
  /** How long spans are buffered before they are sent, in ms (default 5000). */
  otlpExportDelayMs?: number;
}

export interface Gateway {
  /** `http://host:port/graphql` */
  readonly url: string;
  readonly origin: string;
  readonly client: MisskeyClient;
  readonly yoga: YogaServerInstance<Record<string, unknown>, Context>;
  /** Prometheus metrics (null when `metrics: false`). */
  readonly metrics: GatewayMetrics | null;
  /** OpenTelemetry tracing (null when no OTLP endpoint is configured). */
  readonly tracing: Tracing | null;
  /** Closes websockets, the HTTP server and the upstream pool. */
  close(): Promise<void>;
}

export function gatewayOptionsFromConfig(config: Config, misskeyUrl: string): GatewayOptions {
  return {
    misskeyUrl,
    port: config.port,
    host: config.host,
    logger: createLogger(config.logLevel),
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    upstreamConnections: config.upstreamConnections,
    graphiql: config.graphiql,
    limits: config.limits,
    operationTimeoutMs: config.operationTimeoutMs,
    upstreamRetries: config.upstreamRetries,
    upstreamRetryDelayMs: config.upstreamRetryDelayMs,
    breakerFailures: config.breakerFailures,
    breakerCooldownMs: config.breakerCooldownMs,
    shutdownDelayMs: config.shutdownDelayMs,
    shutdownTimeoutMs: config.shutdownTimeoutMs,
    rateLimit: config.rateLimit,
    trustProxy: config.trustProxy,
    metrics: config.metrics,
    redisUrl: config.redisUrl,
    userCacheTtlMs: config.userCacheTtlMs,
    corsOrigins: config.corsOrigins,
    httpHeadersTimeoutMs: config.httpHeadersTimeoutMs,
    httpRequestTimeoutMs: config.httpRequestTimeoutMs,
    maxConnectionsPerIp: config.maxConnectionsPerIp,
    trustedDocuments: config.persistedOperations
      ? {
          documents: config.persistedOperations,
          allowArbitrary: config.allowArbitraryOperations,
        }
      : null,
    otlpEndpoint: config.otlpEndpoint,
  };
}
