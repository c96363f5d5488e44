import type { IncomingMessage, Server } from 'node:http';
import {
  type DocumentNode,
  type ExecutionArgs,
  type execute,
  GraphQLError,
  getOperationAST,
  type subscribe,
} from 'graphql';
import { useServer } from 'graphql-ws/use/ws';
import { type WebSocket, WebSocketServer } from 'ws';
import type { Services } from '../app/services.js';
import type { LimitsConfig } from '../config.js';
import { limitError } from '../engine/limits.js';
import { resolveDocument, type TrustedDocuments } from '../engine/trusted-documents.js';
import type { Engine } from '../engine/yoga.js';
import { clientIp } from '../http/client-ip.js';
import { credentialFrom, type InitialContext, tokenFrom } from '../schema/context.js';
import { websocketAuth } from '../schema/subscriptions.js';
import type { StreamHub } from '../upstream/stream.js';
import { WebSocketAdmission } from './admission.js';
import { parseFailure, withoutHttp } from './errors.js';
import { SetupSlots } from './setup-slots.js';

type Enveloped = {
  execute: (args: ExecutionArgs) => ReturnType<typeof execute>;
  subscribe: (args: ExecutionArgs) => ReturnType<typeof subscribe>;
  /** Gives back the operation's setup slot (a subscription's, once it holds one). */
  release: (() => void) | null;
};

/** What graphql-ws tells of a socket (the parts used here). */
interface SocketContext {
  subscriptions: Record<string, unknown>;
  connectionParams?: Readonly<Record<string, unknown>>;
  extra: { request: IncomingMessage; socket: WebSocket };
}

type SubscribePayload = {
  query: string;
  operationName?: string | null;
  variables?: Record<string, unknown> | null;
  extensions?: Record<string, unknown> | null;
};

export interface WebSocketFront {
  /** Closes every socket (1001), completing their operations, and stops accepting new ones. */
  close(): Promise<void>;
}

/**
 * graphql-ws on the HTTP server's `/graphql`: admission (credentials, per-token shares, per-socket
 * operations, the rate limit), then the engine's own parse, validate, context and execute, so a
 * websocket operation passes the same plugins and limits as an HTTP one.
 */
export function createWebSocketFront(
  server: Server,
  engine: Engine,
  services: Services,
  options: {
    limits: LimitsConfig;
    trustProxy?: boolean;
    trustedDocuments?: TrustedDocuments | null;
  },
): WebSocketFront {
  const { limits } = options;
  const { metrics } = services;
  const wss = new WebSocketServer({
    server,
    path: engine.graphqlEndpoint,
    maxPayload: limits.wsMaxPayloadBytes,
  });
  const admission = trackSockets(wss, limits, services);
  const admit = operationAdmission(services, options);
  const wsAuth = websocketAuth(services.stream);
  const setups = new SetupSlots();
  const graphqlWs = useServer(
    {
      execute: (args) => (args.rootValue as Enveloped).execute(args),
      subscribe: subscribeReleasing,
      onOperation: () => {
        metrics?.activeSubscriptions.inc();
      },
      onComplete: (ctx, id) => {
        metrics?.activeSubscriptions.dec();
        admission.end(ctx.extra.socket, id);
      },
      onError: (_ctx, _id, _payload, errors) => errors.map(withoutHttp),
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
        const refused = await admit(ctx);
        if (refused) {
          return [refused];
        }
        const forbidden = await wsAuth.onSubscribe(ctx, params);
        if (forbidden) {
          return forbidden;
        }
        const prepared = await prepare(engine, ctx, params, options.trustedDocuments ?? null);
        if (Array.isArray(prepared)) {
          return prepared;
        }
        const args = prepared as ExecutionArgs;
        const credential = credentialFrom({
          connectionParams: ctx.connectionParams ?? {},
          params: params as InitialContext['params'],
        });
        const token = credential.kind === 'token' ? credential.token : null;
        const gone = await takeSetupSlot(setups, services.stream, ctx, id, args, token);
        if (gone) {
          return gone;
        }
        // Counted against the token's share last: a refused operation never holds a place.
        const overShare =
          credential.kind === 'token'
            ? admission.start(ctx.extra.socket, id, credential.token)
            : null;
        if (overShare) {
          (args.rootValue as Enveloped).release?.();
          return [overShare];
        }
        return args;
      },
    },
    wss,
  );
  return {
    close: async () => {
      for (const socket of wss.clients) {
        socket.close(1001, 'Server shutting down');
      }
      await graphqlWs.dispose();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/** The engine's subscribe, then the operation's setup slot given back (see setup-slots.ts). */
async function subscribeReleasing(args: ExecutionArgs) {
  const root = args.rootValue as Enveloped;
  try {
    return await root.subscribe(args);
  } finally {
    root.release?.();
    root.release = null;
  }
}

/**
 * Waits for a setup slot when the operation is a subscription, and leaves its release on the
 * root value for `subscribeReleasing` (graphql-ws finds the operation as this does, then always
 * subscribes). The hub keeps the token meanwhile, so a long wait does not cost a second `i` (the
 * token's check at connection_init told the hub its user id). An operation its client completed,
 * or whose socket closed, while it waited gives its slot back at once and answers nothing
 * (graphql-ws sends nothing for an operation it has forgotten): the errors returned are unseen.
 */
async function takeSetupSlot(
  setups: SetupSlots,
  hub: StreamHub,
  ctx: SocketContext,
  id: string,
  args: ExecutionArgs,
  token: string | null,
): Promise<readonly GraphQLError[] | null> {
  if (getOperationAST(args.document, args.operationName)?.operation !== 'subscription') {
    return null;
  }
  const unhold = token === null ? null : hub.hold(token);
  const slot = await setups.acquire();
  const release = () => {
    slot();
    unhold?.();
  };
  if (!(id in ctx.subscriptions)) {
    release();
    return [new GraphQLError('The operation was completed before it started.')];
  }
  (args.rootValue as Enveloped).release = release;
  return null;
}

/** Counts open sockets (metrics) and gives each to the per-token admission. */
function trackSockets(
  wss: WebSocketServer,
  limits: LimitsConfig,
  services: Services,
): WebSocketAdmission {
  const admission = new WebSocketAdmission(limits);
  wss.on('connection', (socket) => {
    services.metrics?.wsConnections.inc();
    admission.opened(socket);
    socket.once('close', () => {
      services.metrics?.wsConnections.dec();
      admission.closed(socket);
    });
  });
  return admission;
}

/** Limits of a websocket operation, checked before it is parsed: per-socket count, rate. */
function operationAdmission(
  services: Services,
  options: { limits: LimitsConfig; trustProxy?: boolean },
): (ctx: SocketContext) => Promise<GraphQLError | null> {
  const { limits } = options;
  return async (ctx) => {
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
    if (!services.rateLimit.enabled) {
      return null;
    }
    return services.rateLimit.check(
      tokenFrom({ connectionParams: ctx.connectionParams }),
      clientIp(ctx.extra.request, options.trustProxy ?? false),
    );
  };
}

/** The engine's parse, validate and context for one websocket operation: its execution
 *  arguments, or the errors to answer (coded like Yoga codes them on HTTP). */
async function prepare(
  engine: Engine,
  ctx: SocketContext,
  params: SubscribePayload,
  trusted: TrustedDocuments | null,
): Promise<ExecutionArgs | readonly GraphQLError[]> {
  if (trusted) {
    // What Yoga's persisted-operations plugin does over HTTP (its onParams hook does not run
    // here): a known hash becomes its document; with arbitrary operations off, anything else is
    // refused before it is parsed.
    const resolved = resolveDocument(trusted, params);
    if (resolved instanceof GraphQLError) {
      return [resolved];
    }
    params = { ...params, query: resolved.query };
  }
  const initial = initialContext(ctx, params);
  const enveloped = engine.getEnveloped(initial);
  let document: DocumentNode;
  try {
    document = enveloped.parse(params.query);
  } catch (error) {
    // Thrown here, graphql-ws would close the socket (4500): answer like HTTP does instead.
    return [parseFailure(error)];
  }
  let errors: readonly GraphQLError[];
  try {
    errors = enveloped.validate(enveloped.schema, document);
  } catch (error) {
    return [parseFailure(error, 'GRAPHQL_VALIDATION_FAILED')];
  }
  if (errors.length > 0) {
    return errors;
  }
  return {
    schema: enveloped.schema,
    operationName: params.operationName,
    document,
    variableValues: params.variables,
    contextValue: await enveloped.contextFactory(),
    rootValue: { execute: enveloped.execute, subscribe: enveloped.subscribe, release: null },
  };
}

/** The operation's initial context: graphql-ws's context and the request, written as one
 *  literal so every operation's context shares one object shape (a spread of graphql-ws's
 *  context gave each its own). */
function initialContext(ctx: SocketContext, params: SubscribePayload) {
  const socketContext = ctx as SocketContext & {
    connectionInitReceived?: boolean;
    acknowledged?: boolean;
  };
  return {
    connectionInitReceived: socketContext.connectionInitReceived,
    acknowledged: socketContext.acknowledged,
    subscriptions: ctx.subscriptions,
    extra: ctx.extra,
    req: ctx.extra.request,
    socket: ctx.extra.socket,
    params,
    connectionParams: ctx.connectionParams,
  };
}
