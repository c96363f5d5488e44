import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { BreakerState } from '../upstream/policy.js';

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

/**
 * The gateway's Prometheus metrics, in their own registry (one per gateway, so tests can run
 * several). Yoga's prometheus plugin adds the `graphql_envelop_*` metrics to the same registry.
 */
export class GatewayMetrics {
  readonly registry = new Registry();
  readonly upstreamCalls = new Counter({
    name: 'misskey_upstream_calls_total',
    help: 'Requests sent to Misskey, retries included, by endpoint and outcome.',
    labelNames: ['endpoint', 'outcome', 'status'] as const,
    registers: [this.registry],
  });
  readonly upstreamDuration = new Histogram({
    name: 'misskey_upstream_call_duration_seconds',
    help: 'Duration of requests to Misskey, by endpoint.',
    labelNames: ['endpoint'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    registers: [this.registry],
  });
  readonly upstreamRefused = new Counter({
    name: 'misskey_upstream_refused_total',
    help: 'Calls refused without a request: circuit-open or deadline (the operation ran out of time).',
    labelNames: ['endpoint', 'reason'] as const,
    registers: [this.registry],
  });
  readonly breakerState: Gauge;
  readonly upstreamSockets: Gauge;
  readonly upstreamQueued: Gauge;
  readonly activeSubscriptions = new Gauge({
    name: 'graphql_ws_active_subscriptions',
    help: 'GraphQL operations running on websockets (subscriptions until they complete).',
    registers: [this.registry],
  });
  readonly wsConnections = new Gauge({
    name: 'graphql_ws_open_connections',
    help: 'Open graphql-ws websockets.',
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'gateway_http_request_duration_seconds',
    help: 'HTTP requests answered, by route and status (websocket upgrades not included).',
    labelNames: ['route', 'status'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });
  readonly connectionsRefused = new Counter({
    name: 'gateway_connections_refused_total',
    help: 'TCP connections closed at once: their client address held MAX_CONNECTIONS_PER_IP.',
    registers: [this.registry],
  });
  readonly introspectionCache = new Counter({
    name: 'gateway_introspection_cache_total',
    help: 'Introspection-only operations, by outcome: hit (answered from the cache) or miss.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly introspectionCacheEntries = new Gauge({
    name: 'gateway_introspection_cache_entries',
    help: 'Introspection answers held in the cache (bounded).',
    registers: [this.registry],
  });
  readonly directRequests = new Counter({
    name: 'gateway_direct_requests_total',
    help: "JSON POSTs of one operation with a token, answered without Yoga's HTTP layer.",
    registers: [this.registry],
  });
  readonly rateLimited = new Counter({
    name: 'gateway_rate_limited_total',
    help: 'Operations refused by the gateway rate limit.',
    registers: [this.registry],
  });

  /** `sample` is read at scrape time: the upstream pool's sockets and the breaker state. */
  constructor(sample: () => { sockets: number; queued: number; breaker: BreakerState }) {
    const registers = [this.registry];
    this.breakerState = new Gauge({
      name: 'misskey_upstream_breaker_state',
      help: 'Circuit breaker state: 0 closed, 1 half-open, 2 open.',
      registers,
      collect() {
        this.set(BREAKER_VALUE[sample().breaker]);
      },
    });
    this.upstreamSockets = new Gauge({
      name: 'misskey_upstream_open_sockets',
      help: 'Open sockets to Misskey (the pool is bounded by UPSTREAM_CONNECTIONS).',
      registers,
      collect() {
        this.set(sample().sockets);
      },
    });
    this.upstreamQueued = new Gauge({
      name: 'misskey_upstream_queued_requests',
      help: 'Requests waiting for a free socket to Misskey.',
      registers,
      collect() {
        this.set(sample().queued);
      },
    });
  }
}

/** Route label of an HTTP path: only known routes, so clients cannot grow the label set. */
export function routeOf(path: string): string {
  return ['/graphql', '/health', '/ready', '/metrics', '/'].includes(path) ? path : 'other';
}

/** Upstream statuses the gateway tells apart (success, Misskey's error answers, proxies). */
const KNOWN_STATUSES = new Set([
  200, 204, 400, 401, 403, 404, 409, 413, 418, 422, 429, 500, 502, 503, 504,
]);

/**
 * Status label of an upstream answer: the upstream may answer any number, so only known
 * statuses are kept as such, anything else becomes its class (`5xx`), keeping the series bounded.
 */
export function statusLabel(status: number | null): string {
  if (status === null) {
    return 'none';
  }
  if (KNOWN_STATUSES.has(status)) {
    return String(status);
  }
  return status >= 100 && status < 600 ? `${Math.floor(status / 100)}xx` : 'other';
}
