import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { type AddressInfo, isIP, type Socket } from 'node:net';
import {
  type DocumentNode,
  type ExecutionArgs,
  type execute,
  GraphQLError,
  type GraphQLFormattedError,
  type subscribe,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import { type Logger, pino } from 'pino';
import { type WebSocket, WebSocketServer } from 'ws';
import { type Config, type CorsOrigins, DEFAULT_LIMITS, type LimitsConfig } from '../config.js';
import { GatewayRateLimit, type GatewayRateLimits, limitError } from '../engine/limits.js';
import { CSRF_HEADERS, gatewayPlugins } from '../engine/plugins.js';
import { createGraphiQL, type GraphiQLDefaults } from '../http/graphiql.js';
import { createUserCache } from '../loaders/user-cache.js';
import {
  createLogger,
  GatewayMetrics,
  requestIdFrom,
  requestScope,
  routeOf,
  statusLabel,
} from '../observability/index.js';
import {
  type Context,
  createContextFactory,
  credentialFrom,
  type InitialContext,
  tokenFrom,
} from '../schema/context.js';
import { ErrorCode, maskUnexpected } from '../schema/errors.js';
import { schema } from '../schema/index.js';
import { websocketAuth } from '../schema/subscriptions.js';
import { SharedRedis, type SharedRedisOptions } from '../state/redis.js';
import { MisskeyClient, type UpstreamCallEvent } from '../upstream/client.js';
import { StreamHub, type StreamHubOptions } from '../upstream/stream.js';
import { WebSocketAdmission } from '../websocket/admission.js';

export interface GatewayOptions {
  /** Origin of the Misskey server (or the sandbox). */
  misskeyUrl: string;
  port?: number;
  host?: string;
  logger?: Logger;
  upstreamTimeoutMs?: number;
  upstreamConnections?: number;
  graphiql?: boolean;
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
}

export interface Gateway {
  /** `http://host:port/graphql` */
  readonly url: string;
  readonly origin: string;
  readonly client: MisskeyClient;
  readonly yoga: YogaServerInstance<Record<string, unknown>, Context>;
  /** Prometheus metrics (null when `metrics: false`). */
  readonly metrics: GatewayMetrics | null;
  /** Closes websockets, the HTTP server and the upstream pool. */
  close(): Promise<void>;
}

type Enveloped = {
  execute: (args: ExecutionArgs) => ReturnType<typeof execute>;
  subscribe: (args: ExecutionArgs) => ReturnType<typeof subscribe>;
};

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
  };
}

/**
 * One HTTP server: Yoga on /graphql (HTTP, GraphiQL, SSE), graphql-ws on the same path for
 * websocket subscriptions (sharing Yoga's context factory and plugins), /health and /ready.
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const limits: LimitsConfig = { ...DEFAULT_LIMITS, ...options.limits };
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
  const retries = options.upstreamRetries ?? 2;
  const breakerFailures = options.breakerFailures ?? 5;
  const client: MisskeyClient = new MisskeyClient(options.misskeyUrl, {
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
    deadline: () => requestScope.getStore()?.deadline,
    caller: () => requestScope.getStore()?.ip,
    onCall: (event) => {
      const outcome = event.error ?? 'ok';
      metrics?.upstreamCalls.inc({
        endpoint: event.endpoint,
        outcome,
        status: statusLabel(event.status),
      });
      metrics?.upstreamDuration.observe({ endpoint: event.endpoint }, event.durationMs / 1000);
      logger.debug(
        {
          endpoint: event.endpoint,
          status: event.status,
          ms: Math.round(event.durationMs),
          attempt: event.attempt,
          ...(event.error ? { error: event.error } : {}),
        },
        'upstream call',
      );
      options.onUpstreamCall?.(event);
    },
    onRefused: ({ endpoint, reason }) => {
      metrics?.upstreamRefused.inc({ endpoint, reason });
      logger.debug({ endpoint, reason }, 'upstream call refused');
    },
  });
  const redis = options.redisUrl ? new SharedRedis(options.redisUrl, logger, options.redis) : null;
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
  const contextFactory = createContextFactory(client, userCache);
  const stream = new StreamHub(client, {
    ...options.stream,
    onLog: (event, details) => {
      logger.debug(details, `stream: ${event}`);
      options.stream?.onLog?.(event, details);
    },
  });
  const wsAuth = websocketAuth(stream);

  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    context: (initial: InitialContext) => Object.assign(contextFactory(initial), { stream }),
    // GraphiQL is served below from local assets (see graphiql.ts), not by Yoga from a CDN.
    graphiql: false,
    landingPage: false,
    // CORS is answered in `route` (only /graphql, never with credentials): Yoga's own CORS
    // reflects any Origin, `null` included, with allow-credentials.
    cors: false,
    plugins: gatewayPlugins({
      limits,
      operationTimeoutMs: options.operationTimeoutMs,
      metrics,
      rateLimit: rateLimit.enabled ? rateLimit : null,
      responseCache: { redis, namespace: options.misskeyUrl },
    }),
    batching: limits.maxBatch > 0 ? { limit: limits.maxBatch } : false,
    maxRequestBodySize: limits.maxBodyBytes,
    // The cost rule depends on variables: a validation result cannot be reused by document.
    parserAndValidationCache: { validationCache: false },
    maskedErrors: {
      isDev: false,
      // Upstream failures a resolver let through still get their code; anything else is a bug:
      // "Unexpected error." for the client, the real error in the log with the request id.
      maskError: maskUnexpected,
    },
    logging: {
      debug: (...args) => logger.debug(args.map(String).join(' ')),
      info: (...args) => logger.info(args.map(String).join(' ')),
      warn: (...args) => logger.warn(args.map(String).join(' ')),
      error: (...args) => logger.error({ err: args[0] }, 'graphql error'),
    },
  });

  const graphiql =
    options.graphiql === false ? null : createGraphiQL(options.graphiqlDefaults, '/graphql');
  let ready = true;
  const corsOrigins = options.corsOrigins ?? '*';
  const route = (req: IncomingMessage, res: ServerResponse): void => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') {
      // Redis is reported, never required: without it the gateway serves uncached, local limits.
      sendJson(res, 200, { status: 'ok', ...(redis ? { redis: redis.state } : {}) });
      return;
    }
    if (path === '/ready') {
      if (!ready) {
        sendJson(res, 503, { status: 'shutting down' });
        return;
      }
      void readiness(client).then(({ status, body }) => sendJson(res, status, body));
      return;
    }
    if (path === '/') {
      res.writeHead(302, { location: '/graphql' });
      res.end();
      return;
    }
    if (path === yoga.graphqlEndpoint && !graphqlFront(req, res, corsOrigins)) {
      return;
    }
    if (graphiql?.handle(req, res)) {
      return;
    }
    yoga(req, res);
  };
  // Every request runs in a scope with its id (echoed as X-Request-Id, on every log line) and
  // ends with one access log line (path without the query string: GET variables stay out).
  const http = createServer(httpTimeouts(options), (req: IncomingMessage, res: ServerResponse) => {
    const requestId = requestIdFrom(req.headers['x-request-id']);
    const started = performance.now();
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    res.setHeader('x-request-id', requestId);
    if (!ready) {
      res.setHeader('connection', 'close');
    }
    res.once('close', () => {
      const ms = performance.now() - started;
      metrics?.httpDuration.observe(
        { route: routeOf(path), status: String(res.statusCode) },
        ms / 1000,
      );
      logger.info(
        {
          reqId: requestId,
          method: req.method,
          path: routeOf(path),
          status: res.statusCode,
          ms: Math.round(ms),
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
    requestScope.run({ requestId, ip: clientIp(req, options.trustProxy ?? false) }, () =>
      route(req, res),
    );
  });
  const sockets = new Set<Socket>();
  const admitConnection = connectionCap(
    options.trustProxy ? 0 : (options.maxConnectionsPerIp ?? 256),
  );
  http.on('connection', (socket: Socket) => {
    if (!admitConnection(socket)) {
      // Over the cap: no byte is read or answered, the client learns from the reset.
      socket.destroy();
      metrics?.connectionsRefused.inc();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  const wss = new WebSocketServer({
    server: http,
    path: yoga.graphqlEndpoint,
    maxPayload: limits.wsMaxPayloadBytes,
  });
  const admission = new WebSocketAdmission(limits);
  wss.on('connection', (socket) => {
    metrics?.wsConnections.inc();
    admission.opened(socket);
    socket.once('close', () => {
      metrics?.wsConnections.dec();
      admission.closed(socket);
    });
  });
  /** Limits of a websocket operation, checked before it is parsed: per-socket count, rate. */
  const admitWsOperation = async (ctx: {
    subscriptions: Record<string, unknown>;
    connectionParams?: Readonly<Record<string, unknown>>;
    extra: { request: IncomingMessage };
  }): Promise<GraphQLError | null> => {
    // graphql-ws registers the new operation's id before onSubscribe runs.
    const running = Object.keys(ctx.subscriptions).length;
    if (running > limits.wsMaxSubscriptions) {
      return limitError(
        'subscriptions',
        limits.wsMaxSubscriptions,
        `A websocket may run ${limits.wsMaxSubscriptions} operations at once.`,
        running,
      );
    }
    if (!rateLimit.enabled) {
      return null;
    }
    return rateLimit.check(
      tokenFrom({ connectionParams: ctx.connectionParams }),
      clientIp(ctx.extra.request, options.trustProxy ?? false),
    );
  };
  /** Counts the operation against its token's share (the token is verified by now). */
  const startWsOperation = (
    ctx: {
      connectionParams?: Readonly<Record<string, unknown>>;
      extra: { socket: WebSocket };
    },
    id: string,
    params: InitialContext['params'],
  ): GraphQLError | null => {
    const credential = credentialFrom({ connectionParams: ctx.connectionParams ?? {}, params });
    return credential.kind === 'token'
      ? admission.start(ctx.extra.socket, id, credential.token)
      : null;
  };
  const wsServer = useServer(
    {
      execute: (args) => (args.rootValue as Enveloped).execute(args),
      onOperation: () => {
        metrics?.activeSubscriptions.inc();
      },
      onComplete: (ctx, id) => {
        metrics?.activeSubscriptions.dec();
        admission.end(ctx.extra.socket, id);
      },
      // `extensions.http` steers HTTP statuses; it means nothing on a websocket.
      onError: (_ctx, _id, _payload, errors) => errors.map(withoutHttp),
      subscribe: (args) => (args.rootValue as Enveloped).subscribe(args),
      connectionInitWaitTimeout: limits.wsInitTimeoutMs,
      onConnect: async (ctx) => {
        if (!(await wsAuth.onConnect(ctx))) {
          return false;
        }
        const credential = credentialFrom({ connectionParams: ctx.connectionParams ?? {} });
        return admission.connected(
          ctx.extra.socket,
          credential.kind === 'token' ? credential.token : null,
        );
      },
      onSubscribe: async (ctx, id, params) => {
        const refused = await admitWsOperation(ctx);
        if (refused) {
          return [refused];
        }
        const forbidden = await wsAuth.onSubscribe(ctx, params);
        if (forbidden) {
          return forbidden;
        }
        const {
          schema: envSchema,
          execute: envExecute,
          subscribe: envSubscribe,
          contextFactory: envContext,
          parse,
          validate,
        } = yoga.getEnveloped({
          ...ctx,
          req: ctx.extra.request,
          socket: ctx.extra.socket,
          params,
          connectionParams: ctx.connectionParams,
        });
        let document: DocumentNode;
        try {
          document = parse(params.query);
        } catch (error) {
          // Thrown here, graphql-ws would close the socket (4500): answer like HTTP does instead.
          return [parseFailure(error)];
        }
        const args = {
          schema: envSchema,
          operationName: params.operationName,
          document,
          variableValues: params.variables,
          contextValue: await envContext(),
          rootValue: { execute: envExecute, subscribe: envSubscribe },
        };
        let errors: readonly GraphQLError[];
        try {
          errors = validate(args.schema, args.document);
        } catch (error) {
          // Thrown here, graphql-ws would close the socket (4500): answer like HTTP does instead.
          return [parseFailure(error, 'GRAPHQL_VALIDATION_FAILED')];
        }
        if (errors.length > 0) {
          return errors;
        }
        const overShare = startWsOperation(ctx, id, params as InitialContext['params']);
        return overShare ? [overShare] : args;
      },
    },
    wss,
  );

  await new Promise<void>((resolve, reject) => {
    http.once('error', reject);
    http.listen(options.port ?? 0, options.host ?? '127.0.0.1', () => {
      http.off('error', reject);
      resolve();
    });
  });
  const address = http.address() as AddressInfo;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  const origin = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${address.port}`;
  logger.debug({ origin, upstream: client.origin }, 'gateway listening');

  let closing: Promise<void> | undefined;
  return {
    url: `${origin}${yoga.graphqlEndpoint}`,
    origin,
    client,
    yoga,
    metrics,
    // Graceful: /ready turns 503 (for shutdownDelayMs), websockets close with 1001 (their
    // subscriptions complete), the listener closes, in-flight HTTP operations finish and their
    // keep-alive sockets close; whatever still runs after shutdownTimeoutMs is cut. Then the
    // upstream pool closes.
    close: () => {
      closing ??= (async () => {
        ready = false;
        const started = Date.now();
        const bound = options.shutdownTimeoutMs ?? 10_000;
        logger.info({ inFlightSockets: sockets.size }, 'shutting down');
        if ((options.shutdownDelayMs ?? 0) > 0) {
          await delay(options.shutdownDelayMs ?? 0);
        }
        for (const socket of wss.clients) {
          socket.close(1001, 'Server shutting down');
        }
        await wsServer.dispose();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        await stream.close();
        const closed = new Promise<void>((resolve) => http.close(() => resolve()));
        http.closeIdleConnections();
        // A keep-alive socket becomes idle once its in-flight request is answered.
        const idle = setInterval(() => http.closeIdleConnections(), 25);
        const cut = setTimeout(() => {
          logger.warn({ sockets: sockets.size }, 'shutdown bound reached: cutting sockets');
          for (const socket of sockets) {
            socket.destroy();
          }
        }, bound);
        await closed;
        clearInterval(idle);
        clearTimeout(cut);
        const left = Math.max(0, bound - (Date.now() - started));
        const drained = await Promise.race([
          client.close().then(() => true),
          delay(left).then(() => false),
        ]);
        if (!drained) {
          await client.destroy();
        }
        await redis?.close();
        logger.info({ ms: Date.now() - started }, 'gateway closed');
      })();
      return closing;
    },
  };
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A parse or validation failure of a websocket operation, coded like Yoga codes it on HTTP. */
function parseFailure(error: unknown, code = 'GRAPHQL_PARSE_FAILED'): GraphQLError {
  if (!(error instanceof GraphQLError)) {
    return new GraphQLError('The document could not be checked.', { extensions: { code } });
  }
  // In place, as Yoga codes HTTP parse errors: Yoga caches this very error object by document,
  // and an HTTP request for the same document must get the code too.
  (error.extensions as Record<string, unknown>).code ??= code;
  return error;
}

function withoutHttp(error: GraphQLError): GraphQLFormattedError {
  const { http: _http, ...extensions } = error.extensions ?? {};
  const json = error.toJSON();
  return Object.keys(extensions).length > 0
    ? { ...json, extensions }
    : { ...json, extensions: undefined };
}

/** The client address: the socket's peer, or the first `X-Forwarded-For` entry behind a proxy
 *  when it is an IP address (anything else is client text and must not become a key). */
function clientIp(req: IncomingMessage, trustProxy: boolean): string {
  if (trustProxy) {
    const forwarded = req.headers['x-forwarded-for'];
    const first = (Array.isArray(forwarded) ? forwarded[0] : forwarded)
      ?.slice(0, 64)
      .split(',')[0]
      ?.trim();
    if (first && isIP(first) !== 0) {
      return first;
    }
  }
  return req.socket.remoteAddress ?? 'unknown';
}

/** /ready answers within this, whatever the upstream pool does. */
const READY_TIMEOUT_MS = 2_000;

/**
 * Whether Misskey answers `meta` within READY_TIMEOUT_MS. The answer comes from a timer of its
 * own, for a pool so wedged that the call never settles; the call itself has a deadline (no retry
 * outlives it) and, a little later, an abort signal, so a wedged call is still cleaned up (the
 * call's own timeout comes first and counts for the breaker, as before). On a timeout, requests
 * queued for a socket are reported: upstream calls are stuck, not just slow.
 */
async function readiness(
  client: MisskeyClient,
): Promise<{ status: number; body: Record<string, unknown> }> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), READY_TIMEOUT_MS);
  });
  const probe = client
    .call('meta', {}, null, {
      timeoutMs: READY_TIMEOUT_MS,
      deadline: Date.now() + READY_TIMEOUT_MS,
      signal: AbortSignal.timeout(READY_TIMEOUT_MS + 250),
    })
    .then(
      () => null,
      (error: unknown) => (error as Error).name,
    );
  const failure = await Promise.race([probe, expired]);
  clearTimeout(timer);
  if (failure === null) {
    return { status: 200, body: { status: 'ready' } };
  }
  const timedOut = ['timeout', 'UpstreamTimeoutError', 'CallerAbortedError'].includes(failure);
  const queued = client.sockets().pending;
  return {
    status: 503,
    body: {
      status: 'upstream not ready',
      reason: timedOut ? 'timeout' : failure,
      ...(timedOut && queued > 0 ? { queued } : {}),
    },
  };
}

/**
 * Deadlines of receiving a request (Node's defaults, 60 s for headers and 300 s in all, let a
 * byte-by-byte sender hold a socket for minutes). Node checks them every
 * `connectionsCheckingInterval` (default 30 s), so that runs at a quarter of the shorter one.
 */
function httpTimeouts(options: GatewayOptions): {
  headersTimeout: number;
  requestTimeout: number;
  connectionsCheckingInterval: number;
} {
  const requestTimeout = options.httpRequestTimeoutMs ?? 30_000;
  // Node refuses a headers timeout above the request timeout.
  const headersTimeout = Math.min(options.httpHeadersTimeoutMs ?? 10_000, requestTimeout);
  const connectionsCheckingInterval = Math.min(1_000, Math.max(25, headersTimeout / 4));
  return { headersTimeout, requestTimeout, connectionsCheckingInterval };
}

/**
 * Counts open TCP connections per client address (websocket upgrades included: they stay HTTP
 * connections); the returned check says whether a new socket fits under `cap` (0 = no cap).
 */
function connectionCap(cap: number): (socket: Socket) => boolean {
  const open = new Map<string, number>();
  return (socket) => {
    if (cap <= 0) {
      return true;
    }
    const address = socket.remoteAddress ?? 'unknown';
    const count = open.get(address) ?? 0;
    if (count >= cap) {
      return false;
    }
    open.set(address, count + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) {
        open.set(address, left);
      } else {
        open.delete(address);
      }
    });
    return true;
  };
}

/** Request headers a cross-origin page may send to /graphql (the preflight's answer). */
const CORS_ALLOW_HEADERS = ['authorization', 'content-type', 'x-request-id', ...CSRF_HEADERS];
/** Response headers beyond the CORS-safelisted ones that such a page may read. */
const CORS_EXPOSE_HEADERS = ['x-request-id', 'retry-after'];

/**
 * The CORS headers for a request from `origin`. Never `allow-credentials`: tokens travel in
 * `Authorization`, so no cookie-bearing request needs to be allowed. The `null` origin (sandboxed
 * frames, local files) is never allowed.
 */
export function corsHeaders(
  policy: CorsOrigins,
  origin: string | undefined,
  preflight: boolean,
): Record<string, string> {
  if (policy === 'none') {
    return {};
  }
  // With a list, the answer depends on the Origin: caches must keep one copy per origin.
  const headers: Record<string, string> = policy === '*' ? {} : { vary: 'Origin' };
  if (origin === undefined || origin === 'null' || (policy !== '*' && !policy.includes(origin))) {
    return headers;
  }
  headers['access-control-allow-origin'] = policy === '*' ? '*' : origin;
  if (preflight) {
    headers['access-control-allow-methods'] = 'GET, POST';
    headers['access-control-allow-headers'] = CORS_ALLOW_HEADERS.join(', ');
    headers['access-control-max-age'] = '600';
  } else {
    headers['access-control-expose-headers'] = CORS_EXPOSE_HEADERS.join(', ');
  }
  return headers;
}

/**
 * What /graphql answers before Yoga sees the request: CORS headers, the preflight, and 405 for
 * any method but GET and POST. False when the request is answered.
 */
function graphqlFront(req: IncomingMessage, res: ServerResponse, policy: CorsOrigins): boolean {
  const preflight = req.method === 'OPTIONS';
  for (const [name, value] of Object.entries(corsHeaders(policy, req.headers.origin, preflight))) {
    res.setHeader(name, value);
  }
  if (preflight) {
    res.writeHead(204, { allow: 'GET, POST, OPTIONS', 'content-length': 0 });
    res.end();
    return false;
  }
  if (req.method !== 'GET' && req.method !== 'POST') {
    res.setHeader('allow', 'GET, POST');
    sendJson(res, 405, {
      errors: [
        {
          message: 'Only GET and POST are allowed on /graphql.',
          extensions: { code: ErrorCode.BAD_REQUEST },
        },
      ],
    });
    return false;
  }
  return true;
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
