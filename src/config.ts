/**
 * Configuration from the environment. This is the only module that reads `process.env`.
 * A bad value throws a `ConfigError` naming the variable; `main.ts` prints it and exits with 1.
 */

import { loadManifest } from './engine/trusted-documents.js';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';

export interface Config {
  /** Origin of the Misskey server, e.g. `https://misskey.example`. `null` = embedded sandbox. */
  misskeyUrl: string | null;
  port: number;
  host: string;
  logLevel: LogLevel;
  /** Deadline of one upstream call, in milliseconds (connect + headers + body). */
  upstreamTimeoutMs: number;
  /** Maximum number of open sockets to the upstream. */
  upstreamConnections: number;
  /** Serve GraphiQL on GET /graphql. */
  graphiql: boolean;
  /** Operation limits, checked before execution (docs/security.md). */
  limits: LimitsConfig;
  /** Deadline of one GraphQL query or mutation, in ms: every upstream call of it ends by then. */
  operationTimeoutMs: number;
  /** Extra attempts of a read endpoint after a connection error or a 502/503/504 (0 = none). */
  upstreamRetries: number;
  /** Base delay of the retry backoff, in ms (full jitter, doubling per attempt). */
  upstreamRetryDelayMs: number;
  /** Consecutive upstream failures that open the circuit breaker (0 = no breaker). */
  breakerFailures: number;
  /** How long an open breaker fails fast before it lets one probe call through, in ms. */
  breakerCooldownMs: number;
  /** Graceful shutdown: how long in-flight operations may take before sockets are cut, in ms. */
  shutdownTimeoutMs: number;
  /** Graceful shutdown: how long `/ready` answers 503 before the listener closes, in ms. */
  shutdownDelayMs: number;
  /** Gateway rate limits (0 = off): operations per window per token and per client address. */
  rateLimit: { perToken: number; perIp: number; windowMs: number };
  /** Take the client address from the first `X-Forwarded-For` entry (behind a proxy). */
  trustProxy: boolean;
  /** Serve Prometheus metrics on GET /metrics. */
  metrics: boolean;
  /** Redis shared by the replicas (response cache, rate limits); `null` = in memory. */
  redisUrl: string | null;
  /** Staleness bound of the shared lite-user cache, in ms (0 = off). */
  userCacheTtlMs: number;
  /** Browser origins allowed to call /graphql cross-origin (never with credentials). */
  corsOrigins: CorsOrigins;
  /** Time a client has to send its request headers, in ms (then 408 and the socket closes). */
  httpHeadersTimeoutMs: number;
  /** Time a client has to send its whole request (headers and body), in ms. */
  httpRequestTimeoutMs: number;
  /** Open TCP connections one client address may hold (0 = no cap; off with TRUST_PROXY). */
  maxConnectionsPerIp: number;
  /** Trusted documents (PERSISTED_OPERATIONS): sha256 hash → document; null = none. */
  persistedOperations: ReadonlyMap<string, string> | null;
  /** Run documents outside the manifest too (ALLOW_ARBITRARY_OPERATIONS, default true). */
  allowArbitraryOperations: boolean;
  /** OTEL_EXPORTER_OTLP_ENDPOINT: where spans are sent over OTLP/HTTP; null = no tracing. */
  otlpEndpoint: string | null;
}

/** `*`: any origin, answered as `*`; `none`: no CORS headers at all; else exact origins. */
export type CorsOrigins = '*' | 'none' | readonly string[];

export interface LimitsConfig {
  /** Maximum nesting of selections. */
  maxDepth: number;
  /** Maximum aliases in one operation. */
  maxAliases: number;
  /** Maximum directives in one operation. */
  maxDirectives: number;
  /** Maximum lexical tokens of a document. */
  maxTokens: number;
  /** Maximum estimated cost: fields, with connections multiplied by their page size. */
  maxCost: number;
  /** Maximum number of selected fields (after expanding fragments). */
  maxFields: number;
  /** Maximum size of the GraphQL document text, in bytes. */
  maxDocumentBytes: number;
  /** Maximum operations in one batched HTTP request (0 = batching off). */
  maxBatch: number;
  /** Maximum HTTP request body, in bytes (413 above); multipart uploads have their own bound. */
  maxBodyBytes: number;
  /** Maximum file of a multipart upload, in bytes (Misskey's own per-user limit may be lower). */
  maxUploadBytes: number;
  /** Maximum websocket message, in bytes (the socket is closed with 1009 above). */
  wsMaxPayloadBytes: number;
  /** Maximum running subscriptions on one websocket. */
  wsMaxSubscriptions: number;
  /** A websocket that sends no `connection_init` within this many ms is closed with 4408. */
  wsInitTimeoutMs: number;
  /** Websockets one token may hold open at once (4429 above). */
  wsMaxSocketsPerToken: number;
  /** Websocket operations one token may run at once, across all its sockets. */
  wsMaxSubscriptionsPerToken: number;
  /** A websocket without a token that runs nothing for this many ms is closed with 4408. */
  wsIdleWithoutTokenMs: number;
}

export const DEFAULT_LIMITS: LimitsConfig = {
  maxDepth: 12,
  maxAliases: 30,
  maxDirectives: 20,
  maxTokens: 2_000,
  maxCost: 5_000,
  maxFields: 500,
  maxDocumentBytes: 32 * 1024,
  maxBatch: 10,
  maxBodyBytes: 64 * 1024,
  maxUploadBytes: 50 * 1024 * 1024,
  wsMaxPayloadBytes: 64 * 1024,
  wsMaxSubscriptions: 20,
  wsInitTimeoutMs: 3_000,
  wsMaxSocketsPerToken: 64,
  wsMaxSubscriptionsPerToken: 256,
  wsIdleWithoutTokenMs: 10_000,
};

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

const LOG_LEVELS: readonly LogLevel[] = [
  'fatal',
  'error',
  'warn',
  'info',
  'debug',
  'trace',
  'silent',
];

type Env = Readonly<Record<string, string | undefined>>;

function integer(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') {
    return fallback;
  }
  if (!/^\d+$/.test(raw.trim())) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max}, got "${raw}"`);
  }
  const value = Number(raw.trim());
  if (value < min || value > max) {
    throw new ConfigError(name, `must be a whole number from ${min} to ${max}, got ${value}`);
  }
  return value;
}

function boolean(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name]?.trim().toLowerCase();
  if (raw === undefined || raw === '') {
    return fallback;
  }
  if (['1', 'true', 'yes', 'on'].includes(raw)) {
    return true;
  }
  if (['0', 'false', 'no', 'off'].includes(raw)) {
    return false;
  }
  throw new ConfigError(name, `must be true or false, got "${env[name]}"`);
}

/**
 * A URL variable: null when unset; otherwise parsed, with one of `protocols`. `echo` says whether
 * the value may appear in the error (not for URLs that may hold a password).
 */
function url(
  env: Env,
  name: string,
  protocols: readonly string[],
  what: string,
  echo: boolean,
): { raw: string; url: URL } | null {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '') {
    return null;
  }
  let parsed: URL;
  try {
    parsed = new URL(raw);
  } catch {
    throw new ConfigError(name, `must be ${what}${echo ? `, got "${raw}"` : ''}`);
  }
  if (!protocols.includes(parsed.protocol)) {
    const names = protocols.map((p) => p.slice(0, -1)).join(' or ');
    throw new ConfigError(name, `must use ${names}, got "${parsed.protocol}"`);
  }
  return { raw, url: parsed };
}

function origin(env: Env, name: string): string | null {
  const parsed = url(
    env,
    name,
    ['http:', 'https:'],
    'an http(s) URL such as https://misskey.example',
    true,
  );
  if (parsed === null) {
    return null;
  }
  const { url: value } = parsed;
  if (value.username || value.password) {
    throw new ConfigError(name, 'must not contain credentials');
  }
  // Misskey serves /api and /streaming at the root of its origin.
  return value.origin;
}

function redisUrl(env: Env, name: string): string | null {
  const parsed = url(env, name, ['redis:', 'rediss:'], 'a URL such as redis://redis:6379/0', false);
  if (parsed === null) {
    return null;
  }
  const { raw, url: value } = parsed;
  if (value.hostname === '') {
    throw new ConfigError(name, 'must name a host, e.g. redis://redis:6379/0');
  }
  if (value.pathname.length > 1 && !/^\/\d{1,2}$/.test(value.pathname)) {
    throw new ConfigError(name, 'the path must be a database number, e.g. /0');
  }
  // The URL may hold a password: it is never echoed in an error or a log.
  return raw;
}

/** CORS_ORIGINS: unset or `*`, `none`, or comma-separated exact origins (`https://app.example`). */
function corsOrigins(env: Env, name: string): CorsOrigins {
  const raw = env[name]?.trim();
  if (raw === undefined || raw === '' || raw === '*') {
    return '*';
  }
  if (raw.toLowerCase() === 'none') {
    return 'none';
  }
  const origins = raw.split(',').map((entry) => entry.trim());
  for (const entry of origins) {
    let parsed: URL | null = null;
    try {
      parsed = new URL(entry);
    } catch {
      // Reported below.
    }
    // A browser's Origin header is exactly scheme://host[:port], lower case, default port left
    // out: anything else would never match, so it is a mistake worth stopping for.
    if (!parsed || !['http:', 'https:'].includes(parsed.protocol) || parsed.origin !== entry) {
      throw new ConfigError(
        name,
        `"${entry}" is not an exact origin such as https://app.example (no path, no trailing slash), nor "*" or "none" alone`,
      );
    }
  }
  return origins;
}

/** OTEL_EXPORTER_OTLP_ENDPOINT: an http(s) base URL (a collector's OTLP/HTTP port, e.g.
 *  http://otel-collector:4318); spans are POSTed to its /v1/traces. */
function otlpEndpoint(env: Env, name: string): string | null {
  const parsed = url(
    env,
    name,
    ['http:', 'https:'],
    'an http(s) URL such as http://otel-collector:4318',
    false,
  );
  if (parsed === null) {
    return null;
  }
  return parsed.raw.replace(/\/+$/, '');
}

/** PERSISTED_OPERATIONS: a manifest file (JSON object of sha256 hash → document), checked now. */
function persistedOperations(env: Env, name: string): ReadonlyMap<string, string> | null {
  const path = env[name]?.trim();
  if (path === undefined || path === '') {
    return null;
  }
  try {
    return loadManifest(path);
  } catch (error) {
    throw new ConfigError(name, (error as Error).message);
  }
}

export function loadConfig(env: Env = process.env): Config {
  const logLevel = (env.LOG_LEVEL?.trim().toLowerCase() || 'info') as LogLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      'LOG_LEVEL',
      `must be one of ${LOG_LEVELS.join(', ')}, got "${env.LOG_LEVEL}"`,
    );
  }
  const host = env.HOST?.trim() || '127.0.0.1';
  const d = DEFAULT_LIMITS;
  const upstreamTimeoutMs = integer(env, 'UPSTREAM_TIMEOUT_MS', 10_000, 100, 300_000);
  const operationTimeoutMs = integer(env, 'OPERATION_TIMEOUT_MS', 15_000, 100, 600_000);
  const shutdownTimeoutMs = integer(env, 'SHUTDOWN_TIMEOUT_MS', 10_000, 0, 600_000);
  const httpHeadersTimeoutMs = integer(env, 'HTTP_HEADERS_TIMEOUT_MS', 10_000, 100, 600_000);
  const httpRequestTimeoutMs = integer(env, 'HTTP_REQUEST_TIMEOUT_MS', 30_000, 100, 3_600_000);
  // Node refuses a headers timeout above the request timeout: say so by name.
  if (httpHeadersTimeoutMs > httpRequestTimeoutMs) {
    throw new ConfigError(
      'HTTP_HEADERS_TIMEOUT_MS',
      `must not exceed HTTP_REQUEST_TIMEOUT_MS (${httpRequestTimeoutMs}), got ${httpHeadersTimeoutMs}`,
    );
  }
  const persisted = persistedOperations(env, 'PERSISTED_OPERATIONS');
  const allowArbitraryOperations = boolean(env, 'ALLOW_ARBITRARY_OPERATIONS', true);
  if (!allowArbitraryOperations && persisted === null) {
    throw new ConfigError(
      'ALLOW_ARBITRARY_OPERATIONS',
      'false needs PERSISTED_OPERATIONS (the manifest of the operations that may run)',
    );
  }
  return {
    misskeyUrl: origin(env, 'MISSKEY_URL'),
    port: integer(env, 'PORT', 4000, 0, 65535),
    host,
    logLevel,
    upstreamTimeoutMs,
    upstreamConnections: integer(env, 'UPSTREAM_CONNECTIONS', 32, 1, 1024),
    graphiql: boolean(env, 'GRAPHIQL', true),
    limits: {
      maxDepth: integer(env, 'MAX_DEPTH', d.maxDepth, 1, 1_000),
      maxAliases: integer(env, 'MAX_ALIASES', d.maxAliases, 0, 10_000),
      maxDirectives: integer(env, 'MAX_DIRECTIVES', d.maxDirectives, 0, 10_000),
      maxTokens: integer(env, 'MAX_TOKENS', d.maxTokens, 10, 1_000_000),
      maxCost: integer(env, 'MAX_COST', d.maxCost, 1, 100_000_000),
      maxFields: integer(env, 'MAX_FIELDS', d.maxFields, 1, 1_000_000),
      maxDocumentBytes: integer(env, 'MAX_DOCUMENT_BYTES', d.maxDocumentBytes, 100, 16_777_216),
      maxBatch: integer(env, 'MAX_BATCH', d.maxBatch, 0, 1_000),
      maxBodyBytes: integer(env, 'MAX_BODY_BYTES', d.maxBodyBytes, 1_024, 104_857_600),
      maxUploadBytes: integer(env, 'MAX_UPLOAD_BYTES', d.maxUploadBytes, 1, 10_737_418_240),
      wsMaxPayloadBytes: integer(
        env,
        'WS_MAX_PAYLOAD_BYTES',
        d.wsMaxPayloadBytes,
        1_024,
        104_857_600,
      ),
      wsMaxSubscriptions: integer(env, 'WS_MAX_SUBSCRIPTIONS', d.wsMaxSubscriptions, 1, 10_000),
      wsInitTimeoutMs: integer(env, 'WS_INIT_TIMEOUT_MS', d.wsInitTimeoutMs, 100, 600_000),
      wsMaxSocketsPerToken: integer(
        env,
        'WS_MAX_SOCKETS_PER_TOKEN',
        d.wsMaxSocketsPerToken,
        1,
        100_000,
      ),
      wsMaxSubscriptionsPerToken: integer(
        env,
        'WS_MAX_SUBSCRIPTIONS_PER_TOKEN',
        d.wsMaxSubscriptionsPerToken,
        1,
        1_000_000,
      ),
      wsIdleWithoutTokenMs: integer(
        env,
        'WS_IDLE_WITHOUT_TOKEN_MS',
        d.wsIdleWithoutTokenMs,
        100,
        3_600_000,
      ),
    },
    operationTimeoutMs,
    upstreamRetries: integer(env, 'UPSTREAM_RETRIES', 2, 0, 10),
    upstreamRetryDelayMs: integer(env, 'UPSTREAM_RETRY_DELAY_MS', 100, 1, 60_000),
    breakerFailures: integer(env, 'BREAKER_FAILURES', 5, 0, 10_000),
    breakerCooldownMs: integer(env, 'BREAKER_COOLDOWN_MS', 5_000, 100, 3_600_000),
    shutdownTimeoutMs,
    shutdownDelayMs: integer(env, 'SHUTDOWN_DELAY_MS', 0, 0, 600_000),
    rateLimit: {
      perToken: integer(env, 'RATE_LIMIT_PER_TOKEN', 0, 0, 100_000_000),
      perIp: integer(env, 'RATE_LIMIT_PER_IP', 0, 0, 100_000_000),
      windowMs: integer(env, 'RATE_LIMIT_WINDOW_MS', 60_000, 100, 86_400_000),
    },
    trustProxy: boolean(env, 'TRUST_PROXY', false),
    metrics: boolean(env, 'METRICS', true),
    redisUrl: redisUrl(env, 'REDIS_URL'),
    userCacheTtlMs: integer(env, 'USER_CACHE_TTL_MS', 30_000, 0, 3_600_000),
    corsOrigins: corsOrigins(env, 'CORS_ORIGINS'),
    httpHeadersTimeoutMs,
    httpRequestTimeoutMs,
    maxConnectionsPerIp: integer(env, 'MAX_CONNECTIONS_PER_IP', 256, 0, 1_000_000),
    persistedOperations: persisted,
    allowArbitraryOperations,
    otlpEndpoint: otlpEndpoint(env, 'OTEL_EXPORTER_OTLP_ENDPOINT'),
  };
}
