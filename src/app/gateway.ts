import { pino } from 'pino';
import { DEFAULT_LIMITS, type LimitsConfig } from '../config.js';
import { createEngine } from '../engine/yoga.js';
import { directPost } from '../http/direct-post.js';
import { createHttpFront } from '../http/front.js';
import { createWebSocketFront } from '../websocket/front.js';
import { listen, shutdown } from './lifecycle.js';
import type { Gateway, GatewayOptions } from './options.js';
import { createServices } from './services.js';

export { type Gateway, type GatewayOptions, gatewayOptionsFromConfig } from './options.js';

/**
 * The gateway: one HTTP server with Yoga on /graphql (HTTP, GraphiQL, SSE), graphql-ws on the
 * same path, /health, /ready and /metrics, in front of one Misskey.
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const limits: LimitsConfig = { ...DEFAULT_LIMITS, ...options.limits };
  const services = await createServices(options, logger);
  const engine = createEngine({
    limits,
    operationTimeoutMs: options.operationTimeoutMs,
    metrics: services.metrics,
    rateLimit: services.rateLimit,
    redis: services.redis,
    namespace: options.misskeyUrl,
    context: services.context,
    logger,
    trustedDocuments: options.trustedDocuments ?? null,
    tracing: services.tracing?.plugins,
  });
  // Trusted documents and tracing read the HTTP request in Yoga's hooks: those requests stay there.
  const direct =
    options.directPost === false || options.trustedDocuments || services.tracing
      ? null
      : directPost(engine, {
          maxBodyBytes: limits.maxBodyBytes,
          rateLimit: services.rateLimit.enabled ? services.rateLimit : null,
          onTaken: services.metrics ? () => services.metrics?.directRequests.inc() : undefined,
        });
  const http = createHttpFront(options, engine, services, direct);
  const websockets = createWebSocketFront(http.server, engine, services, {
    limits,
    trustProxy: options.trustProxy,
    trustedDocuments: options.trustedDocuments ?? null,
  });
  const origin = await listen(http.server, options.port ?? 0, options.host ?? '127.0.0.1');
  logger.debug({ origin, upstream: services.client.origin }, 'gateway listening');

  let closing: Promise<void> | undefined;
  return {
    url: `${origin}${engine.graphqlEndpoint}`,
    origin,
    client: services.client,
    yoga: engine,
    metrics: services.metrics,
    tracing: services.tracing,
    close: () => {
      closing ??= shutdown(
        { http, websockets, services },
        { delayMs: options.shutdownDelayMs, timeoutMs: options.shutdownTimeoutMs },
      );
      return closing;
    },
  };
}
