import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Services } from '../app/services.js';
import type { CorsOrigins } from '../config.js';
import type { Engine } from '../engine/yoga.js';
import { bindScope, requestIdFrom, routeOf, unredacted } from '../observability/index.js';
import { clientIp } from './client-ip.js';
import { connectionCap, httpTimeouts } from './connections.js';
import { graphqlFront } from './cors.js';
import type { DirectPost } from './direct-post.js';
import { createGraphiQL, type GraphiQLDefaults } from './graphiql.js';
import { readiness } from './readiness.js';
import { sendJson } from './send-json.js';

export interface HttpFrontOptions {
  graphiql?: boolean;
  graphiqlDefaults?: GraphiQLDefaults;
  corsOrigins?: CorsOrigins;
  trustProxy?: boolean;
  maxConnectionsPerIp?: number;
  httpHeadersTimeoutMs?: number;
  httpRequestTimeoutMs?: number;
}

export interface HttpFront {
  readonly server: Server;
  /** Open TCP connections (cut at the end of a graceful shutdown). */
  readonly sockets: ReadonlySet<Socket>;
  /** From now on `/ready` says 503 and every answer closes its connection. */
  drain(): void;
}

/**
 * The HTTP front: `/health`, `/ready`, `/` → `/graphql`, GraphiQL, CORS and the method check of
 * `/graphql`, then the engine. Every request gets a scope with its id (echoed as X-Request-Id, on
 * its log lines) and address, and ends with one access log line and one duration sample.
 */
export function createHttpFront(
  options: HttpFrontOptions,
  engine: Engine,
  services: Services,
  direct: DirectPost | null = null,
): HttpFront {
  let ready = true;
  const route = router(options, engine, services, () => ready, direct);
  const { metrics } = services;
  // Every field of the access line is a scalar of the gateway's own (see the line below).
  const accessLog = unredacted(services.logger);
  const server = createServer(httpTimeouts(options), (req, res) => {
    const requestId = requestIdFrom(req.headers['x-request-id']);
    const started = performance.now();
    const path = routeOf((req.url ?? '/').split('?')[0] ?? '/');
    res.setHeader('x-request-id', requestId);
    if (!ready) {
      res.setHeader('connection', 'close');
    }
    res.once('close', () => {
      const ms = performance.now() - started;
      metrics?.httpDuration.observe({ route: path, status: String(res.statusCode) }, ms / 1000);
      // The path without the query string: GET variables stay out of the log.
      accessLog.info(
        {
          reqId: requestId,
          method: req.method,
          path,
          status: res.statusCode,
          ms: Math.round(ms),
          ...(res.writableFinished ? {} : { aborted: true }),
        },
        'request',
      );
    });
    bindScope(req, { requestId, ip: clientIp(req, options.trustProxy ?? false) });
    route(req, res);
  });
  const sockets = trackSockets(server, options, services);
  return {
    server,
    sockets,
    drain: () => {
      ready = false;
    },
  };
}

function router(
  options: HttpFrontOptions,
  engine: Engine,
  services: Services,
  isReady: () => boolean,
  direct: DirectPost | null,
): (req: IncomingMessage, res: ServerResponse) => void {
  const graphiql =
    options.graphiql === false ? null : createGraphiQL(options.graphiqlDefaults, '/graphql');
  const corsOrigins = options.corsOrigins ?? '*';
  const { redis, client } = services;
  return (req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') {
      // Redis is reported, never required: without it the gateway serves uncached, local limits.
      sendJson(res, 200, { status: 'ok', ...(redis ? { redis: redis.state } : {}) });
      return;
    }
    if (path === '/ready') {
      if (!isReady()) {
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
    if (path === engine.graphqlEndpoint && !graphqlFront(req, res, corsOrigins)) {
      return;
    }
    if (graphiql?.handle(req, res) || direct?.(req, res)) {
      return;
    }
    engine(req, res);
  };
}

/** Keeps the open connections (for shutdown), refusing those over the per-address cap. */
function trackSockets(server: Server, options: HttpFrontOptions, services: Services): Set<Socket> {
  const sockets = new Set<Socket>();
  const admit = connectionCap(options.trustProxy ? 0 : (options.maxConnectionsPerIp ?? 256));
  server.on('connection', (socket: Socket) => {
    if (!admit(socket)) {
      // Over the cap: no byte is read or answered, the client learns from the reset.
      socket.destroy();
      services.metrics?.connectionsRefused.inc();
      return;
    }
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });
  return sockets;
}
