import type { Logger } from 'pino';
import { GatewayRateLimit } from '../engine/limits.js';
import { createUserCache, type UserCache } from '../loaders/user-cache.js';
import { GatewayMetrics, statusLabel } from '../observability/index.js';
import type { Tracing } from '../observability/tracing.js';
import { type Context, createContextFactory, type InitialContext } from '../schema/context.js';
import type { SharedRedis } from '../state/redis.js';
import { MisskeyClient } from '../upstream/client.js';
import { StreamHub } from '../upstream/stream.js';
import type { GatewayOptions } from './options.js';

/** What every front shares: the upstream client and stream hub, Redis, caches, metrics. */
export interface Services {
  readonly logger: Logger;
  readonly metrics: GatewayMetrics | null;
  readonly client: MisskeyClient;
  readonly redis: SharedRedis | null;
  readonly rateLimit: GatewayRateLimit;
  readonly userCache: UserCache | null;
  readonly stream: StreamHub;
  /** A request's context (HTTP or websocket operation). */
  readonly context: (initial: InitialContext) => Context;
  /** OpenTelemetry tracing (null unless an OTLP endpoint is configured: nothing installed). */
  readonly tracing: Tracing | null;
}

/** Tracing (OpenTelemetry) and Redis (ioredis) are loaded only when configured: a gateway without
 *  them does not hold their code in memory. */
export async function createServices(options: GatewayOptions, logger: Logger): Promise<Services> {
  const metrics =
    options.metrics === false
      ? null
      : new GatewayMetrics(() => {
          const sockets = client.sockets();
          return {
            sockets: sockets.connected,
            queued: sockets.pending,
            breaker: client.breakerState,
          };
        });
  const tracing = options.otlpEndpoint
    ? (await import('../observability/tracing.js')).createTracing({
        endpoint: options.otlpEndpoint,
        exportDelayMs: options.otlpExportDelayMs,
      })
    : null;
  const client: MisskeyClient = upstreamClient(options, logger, metrics, tracing);
  const redis = options.redisUrl
    ? new (await import('../state/redis.js')).SharedRedis(options.redisUrl, logger, options.redis)
    : null;
  const rateLimit = new GatewayRateLimit(
    options.rateLimit ?? { perToken: 0, perIp: 0, windowMs: 60_000 },
    () => metrics?.rateLimited.inc(),
    redis,
  );
  const userCache = createUserCache({
    ttlMs: options.userCacheTtlMs ?? 30_000,
    redis,
    namespace: options.misskeyUrl,
  });
  const stream = new StreamHub(client, {
    ...options.stream,
    onLog: (event, details) => {
      logger.debug(details, `stream: ${event}`);
      options.stream?.onLog?.(event, details);
    },
  });
  const contextFactory = createContextFactory(client, userCache);
  const context = (initial: InitialContext) => Object.assign(contextFactory(initial), { stream });
  return { logger, metrics, client, redis, rateLimit, userCache, stream, context, tracing };
}

/** The one undici client to Misskey, with retries, the breaker, the operation's deadline and
 *  caller, and every call counted in the metrics and the debug log. */
function upstreamClient(
  options: GatewayOptions,
  logger: Logger,
  metrics: GatewayMetrics | null,
  tracing: Tracing | null,
): MisskeyClient {
  const retries = options.upstreamRetries ?? 2;
  const breakerFailures = options.breakerFailures ?? 5;
  return new MisskeyClient(options.misskeyUrl, {
    timeoutMs: options.upstreamTimeoutMs,
    connections: options.upstreamConnections,
    retry: retries > 0 ? { retries, baseDelayMs: options.upstreamRetryDelayMs ?? 100 } : undefined,
    breaker:
      breakerFailures > 0
        ? {
            failureThreshold: breakerFailures,
            cooldownMs: options.breakerCooldownMs ?? 5_000,
            onStateChange: (state) => logger.warn({ breaker: state }, 'upstream circuit breaker'),
          }
        : undefined,
    trace: tracing?.upstream,
    onCall: (event) => {
      metrics?.upstreamCalls.inc({
        endpoint: event.endpoint,
        outcome: event.error ?? 'ok',
        status: statusLabel(event.status),
      });
      metrics?.upstreamDuration.observe({ endpoint: event.endpoint }, event.durationMs / 1000);
      // Built only when written: at the default level no call pays for the line.
      if (logger.isLevelEnabled('debug')) {
        logger.debug(
          {
            ...(event.requestId === undefined ? {} : { reqId: event.requestId }),
            endpoint: event.endpoint,
            status: event.status,
            ms: Math.round(event.durationMs),
            attempt: event.attempt,
            ...(event.error ? { error: event.error } : {}),
          },
          'upstream call',
        );
      }
      options.onUpstreamCall?.(event);
    },
    onRefused: ({ endpoint, reason }) => {
      metrics?.upstreamRefused.inc({ endpoint, reason });
      logger.debug({ endpoint, reason }, 'upstream call refused');
    },
  });
}
