import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { useGraphQlJit } from '@envelop/graphql-jit';
import { createSchema, createYoga } from 'graphql-yoga';
import { Pool } from 'undici';
import { loadConfig } from '../../src/config.js';
import { announceReady, serveCommands } from '../ipc.js';
import type { ServerReady } from '../protocol.js';
import { restCaller, type UpstreamCall } from '../workloads.js';
import { statsHandlers } from './stats.js';

/**
 * S4, the engine floor: a bare graphql-yoga server with graphql-jit and hand-written resolvers
 * for workloads (a) and (b), calling the upstream exactly as S0 does (same undici pool size, same
 * calls). No limits, metrics, logging, caches or error model: what any Yoga gateway pays at
 * least, so the gap between it and the gateway is the gateway's own cost.
 */
const typeDefs = /* GraphQL */ `
  type User { id: ID! username: String! name: String }
  type ChatMessage { id: ID! text: String createdAt: String! fromUser: User }
  type ChatMessageEdge { node: ChatMessage! }
  type ChatMessageConnection { edges: [ChatMessageEdge!]! }
  type Query {
    me: User
    chatConversation(userId: ID!, first: Int): ChatMessageConnection!
  }
`;

interface FloorContext {
  token: string;
}

interface Message {
  id: string;
  text: string | null;
  createdAt: string;
  fromUserId: string;
}

interface UserShape {
  id: string;
  username: string;
  name: string | null;
}

function resolvers(call: UpstreamCall) {
  return {
    me: (_root: unknown, _args: unknown, ctx: FloorContext) => call('i', {}, ctx.token),
    // The page, then its senders in one batched `users/show`: S0's two calls.
    chatConversation: async (
      _root: unknown,
      args: { userId: string; first?: number },
      ctx: FloorContext,
    ) => {
      const page = (await call(
        'chat/messages/user-timeline',
        { userId: args.userId, limit: args.first ?? 10 },
        ctx.token,
      )) as Message[];
      const ids = [...new Set(page.map((m) => m.fromUserId))];
      const users = (await call('users/show', { userIds: ids }, ctx.token)) as UserShape[];
      const byId = new Map(users.map((u) => [u.id, u]));
      return {
        edges: page.map((m) => ({ node: { ...m, fromUser: byId.get(m.fromUserId) ?? null } })),
      };
    },
  };
}

async function main(): Promise<void> {
  const upstream = process.env.MISSKEY_URL;
  if (!upstream) {
    throw new Error('MISSKEY_URL is required');
  }
  const connections = loadConfig(process.env).upstreamConnections;
  const pool = new Pool(upstream, { connections, pipelining: 1, keepAliveTimeout: 4_000 });
  const yoga = createYoga<Record<string, unknown>>({
    schema: createSchema<Record<string, unknown>>({
      typeDefs,
      resolvers: { Query: resolvers(restCaller(pool)) },
    }),
    plugins: [useGraphQlJit()],
    graphiql: false,
    landingPage: false,
    logging: false,
    context: ({ request }) => ({
      token: (request.headers.get('authorization') ?? '').replace(/^Bearer /, ''),
    }),
  });
  const server = createServer(yoga);
  server.keepAliveTimeout = 10_000;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  serveCommands(statsHandlers(() => pool.stats.connected));
  announceReady({ origin: `http://127.0.0.1:${port}` } satisfies ServerReady);
  const stop = () => {
    server.close();
    server.closeAllConnections();
    pool.destroy().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  console.error('bench floor:', error);
  process.exit(1);
});
