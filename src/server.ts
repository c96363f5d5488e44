import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { ExecutionArgs, execute, subscribe } from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { createYoga, type YogaServerInstance } from 'graphql-yoga';
import { type Logger, pino } from 'pino';
import { WebSocketServer } from 'ws';
import type { Config } from './config.js';
import { type Context, createContextFactory, type InitialContext } from './context.js';
import { createGraphiQL, type GraphiQLDefaults } from './graphiql.js';
import { gatewayPlugins } from './plugins.js';
import { schema } from './schema/index.js';
import { MisskeyClient, type UpstreamCallEvent } from './upstream/client.js';

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
}

export interface Gateway {
  /** `http://host:port/graphql` */
  readonly url: string;
  readonly origin: string;
  readonly client: MisskeyClient;
  readonly yoga: YogaServerInstance<Record<string, unknown>, Context>;
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
    logger: pino({ level: config.logLevel }),
    upstreamTimeoutMs: config.upstreamTimeoutMs,
    upstreamConnections: config.upstreamConnections,
    graphiql: config.graphiql,
  };
}

/**
 * One HTTP server: Yoga on /graphql (HTTP, GraphiQL, SSE), graphql-ws on the same path for
 * websocket subscriptions (sharing Yoga's context factory and plugins), /health and /ready.
 */
export async function createGateway(options: GatewayOptions): Promise<Gateway> {
  const logger = options.logger ?? pino({ level: 'silent' });
  const client = new MisskeyClient(options.misskeyUrl, {
    timeoutMs: options.upstreamTimeoutMs,
    connections: options.upstreamConnections,
    onCall: options.onUpstreamCall,
  });
  const contextFactory = createContextFactory(client);

  const yoga = createYoga<Record<string, unknown>, Context>({
    schema,
    graphqlEndpoint: '/graphql',
    context: (initial: InitialContext) => contextFactory(initial),
    // GraphiQL is served below from local assets (see graphiql.ts), not by Yoga from a CDN.
    graphiql: false,
    landingPage: false,
    plugins: gatewayPlugins(),
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
  const http = createServer((req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/health') {
      sendJson(res, 200, { status: 'ok' });
      return;
    }
    if (path === '/ready') {
      if (!ready) {
        sendJson(res, 503, { status: 'shutting down' });
        return;
      }
      client.call('meta', {}, null, { timeoutMs: 2_000 }).then(
        () => sendJson(res, 200, { status: 'ready' }),
        (error: unknown) =>
          sendJson(res, 503, { status: 'upstream not ready', reason: (error as Error).name }),
      );
      return;
    }
    if (path === '/') {
      res.writeHead(302, { location: '/graphql' });
      res.end();
      return;
    }
    if (graphiql?.handle(req, res)) {
      return;
    }
    yoga(req, res);
  });
  const sockets = new Set<Socket>();
  http.on('connection', (socket) => {
    sockets.add(socket);
    socket.once('close', () => sockets.delete(socket));
  });

  const wss = new WebSocketServer({
    server: http,
    path: yoga.graphqlEndpoint,
    maxPayload: 64 * 1024,
  });
  const wsServer = useServer(
    {
      execute: (args) => (args.rootValue as Enveloped).execute(args),
      subscribe: (args) => (args.rootValue as Enveloped).subscribe(args),
      onSubscribe: async (ctx, _id, params) => {
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
        const args = {
          schema: envSchema,
          operationName: params.operationName,
          document: parse(params.query),
          variableValues: params.variables,
          contextValue: await envContext(),
          rootValue: { execute: envExecute, subscribe: envSubscribe },
        };
        const errors = validate(args.schema, args.document);
        if (errors.length > 0) {
          return errors;
        }
        return args;
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
    close: () => {
      closing ??= (async () => {
        ready = false;
        for (const socket of wss.clients) {
          socket.close(1001, 'Server shutting down');
        }
        await wsServer.dispose();
        await new Promise<void>((resolve) => wss.close(() => resolve()));
        const closed = new Promise<void>((resolve) => http.close(() => resolve()));
        http.closeIdleConnections();
        setTimeout(() => {
          for (const socket of sockets) {
            socket.destroy();
          }
        }, 5_000).unref();
        await closed;
        await client.close();
      })();
      return closing;
    },
  };
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
