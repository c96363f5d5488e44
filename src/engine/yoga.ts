import { createYoga, type Plugin, type YogaServerInstance } from 'graphql-yoga';
import type { Logger } from 'pino';
import type { LimitsConfig } from '../config.js';
import { type GatewayMetrics, requestIdOfError } from '../observability/index.js';
import type { Context, InitialContext } from '../schema/context.js';
import { maskUnexpected } from '../schema/errors.js';
import { schema } from '../schema/index.js';
import type { SharedRedis } from '../state/redis.js';
import type { GatewayRateLimit } from './limits.js';
import { gatewayPlugins } from './plugins.js';
import type { TrustedDocuments } from './trusted-documents.js';

export type Engine = YogaServerInstance<Record<string, unknown>, Context>;

export interface EngineOptions {
  limits: LimitsConfig;
  operationTimeoutMs?: number;
  metrics: GatewayMetrics | null;
  rateLimit: GatewayRateLimit;
  redis: SharedRedis | null;
  /** The upstream origin: part of every shared cache key. */
  namespace: string;
  context: (initial: InitialContext) => Context;
  logger: Logger;
  trustedDocuments?: TrustedDocuments | null;
  /** OpenTelemetry plugins (none when tracing is off). */
  tracing?: readonly Plugin<Record<string, unknown>>[];
}

/** The GraphQL engine: Yoga with the gateway's plugins, on `/graphql`. It serves HTTP (and SSE);
 *  the websocket front runs its operations through `getEnveloped`. */
export function createEngine(options: EngineOptions): Engine {
  const { limits, logger } = options;
  return createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    context: options.context,
    // GraphiQL is served by the HTTP front from local assets (http/graphiql.ts), not from a CDN.
    graphiql: false,
    landingPage: false,
    // CORS is answered by the HTTP front (only /graphql, never with credentials): Yoga's own
    // CORS reflects any Origin, `null` included, with allow-credentials.
    cors: false,
    plugins: gatewayPlugins({
      limits,
      operationTimeoutMs: options.operationTimeoutMs,
      metrics: options.metrics,
      rateLimit: options.rateLimit.enabled ? options.rateLimit : null,
      responseCache: { redis: options.redis, namespace: options.namespace },
      trustedDocuments: options.trustedDocuments ?? null,
      tracing: options.tracing,
    }),
    batching: limits.maxBatch > 0 ? { limit: limits.maxBatch } : false,
    // Bounded by the `requestBodies` plugin instead (uploads have a larger bound of their own).
    maxRequestBodySize: false,
    // The cost rule depends on variables: a validation result cannot be reused by document.
    parserAndValidationCache: { validationCache: false },
    maskedErrors: {
      isDev: false,
      // Upstream failures a resolver let through still get their code; anything else is a bug:
      // "Unexpected error." for the client, the real error in the log with the request id.
      maskError: maskUnexpected,
    },
    logging: {
      // Yoga logs at debug several times per request: build no line that nobody writes.
      debug: (...args) => {
        if (logger.isLevelEnabled('debug')) {
          logger.debug(args.map(String).join(' '));
        }
      },
      info: (...args) => logger.info(args.map(String).join(' ')),
      warn: (...args) => logger.warn(args.map(String).join(' ')),
      error: (...args) => {
        const reqId = requestIdOfError(args[0]);
        logger.error({ err: args[0], ...(reqId === undefined ? {} : { reqId }) }, 'graphql error');
      },
    },
  });
}
