import type { Dispatcher } from 'undici';
import type { BenchData } from './seed.js';

/**
 * The benchmark's workloads, each done three ways that return the same `data`:
 * - S0, a hand-optimised REST client: the fewest calls, embedded objects used, lookups batched;
 * - S1, a naive REST client: one `users/show` per user reference, concurrently, embedded objects
 *   ignored (the N+1 pattern);
 * - S2, the gateway: one GraphQL operation;
 * - S4, the engine floor (bench/procs/floor.ts): the same operation on a bare Yoga + graphql-jit
 *   server with hand-written resolvers making S0's calls, where `floor` is set.
 * S0 and S1 run inside the REST process (bench/procs/rest.ts), which serves them over HTTP so the
 * load generator drives all three systems the same way.
 */

/** One authenticated Misskey call: `POST /api/<endpoint>`; throws on an HTTP error. */
export type UpstreamCall = (
  endpoint: string,
  params: Record<string, unknown>,
  token: string,
) => Promise<unknown>;

export type WorkloadId = 'a' | 'b' | 'c';
export type SystemId = 'S0' | 'S1' | 'S2' | 'S4';

export interface BenchRequest {
  token: string;
  variables: Record<string, unknown>;
}

export interface Workload {
  id: WorkloadId;
  title: string;
  /** The GraphQL operation the gateway (S2) runs. */
  query: string;
  /** The REST clients; `S1` is absent where a naive client would make the same calls as S0. */
  rest: Partial<Record<'S0' | 'S1', RestClient>>;
  /** S4 (the engine floor) answers this workload too. */
  floor?: boolean;
  /** The requests the load cycles through (different users, conversations, owners). */
  requests(data: BenchData): BenchRequest[];
}

export type RestClient = (
  call: UpstreamCall,
  token: string,
  variables: Record<string, unknown>,
) => Promise<unknown>;

interface UserShape {
  id: string;
  username: string;
  name: string | null;
}

const user = (u: UserShape): UserShape => ({ id: u.id, username: u.username, name: u.name });

// ---------------------------------------------------------------------------------------------
// (a) a one-call query

const me: RestClient = async (call, token) => ({
  me: user((await call('i', {}, token)) as UserShape),
});

// ---------------------------------------------------------------------------------------------
// (b) a 50-message conversation page with each message's sender

export const PAGE_SIZE = 50;

interface LiteMessage {
  id: string;
  text: string | null;
  createdAt: string;
  fromUserId: string;
}

function conversation(messages: LiteMessage[], users: Map<string, UserShape>): unknown {
  return {
    chatConversation: {
      edges: messages.map((m) => {
        const from = users.get(m.fromUserId);
        return {
          node: {
            id: m.id,
            text: m.text,
            createdAt: m.createdAt,
            fromUser: from ? user(from) : null,
          },
        };
      }),
    },
  };
}

const conversationS0: RestClient = async (call, token, variables) => {
  const page = (await call(
    'chat/messages/user-timeline',
    { userId: variables.userId, limit: PAGE_SIZE },
    token,
  )) as LiteMessage[];
  const ids = [...new Set(page.map((m) => m.fromUserId))];
  const users = (await call('users/show', { userIds: ids }, token)) as UserShape[];
  return conversation(page, new Map(users.map((u) => [u.id, u])));
};

const conversationS1: RestClient = async (call, token, variables) => {
  const page = (await call(
    'chat/messages/user-timeline',
    { userId: variables.userId, limit: PAGE_SIZE },
    token,
  )) as LiteMessage[];
  const users = (await Promise.all(
    page.map((m) => call('users/show', { userId: m.fromUserId }, token)),
  )) as UserShape[];
  return conversation(page, new Map(users.map((u) => [u.id, u])));
};

// ---------------------------------------------------------------------------------------------
// (c) 20 rooms with their owner and first 10 members

export const ROOMS = 20;
export const MEMBERS = 10;

interface RoomShape {
  id: string;
  name: string;
  ownerId: string;
  owner: UserShape;
}

interface MembershipShape {
  userId: string;
  user: UserShape;
}

function rooms(list: RoomShape[], owners: UserShape[], members: UserShape[][]): unknown {
  return {
    ownedChatRooms: {
      edges: list.map((room, i) => ({
        node: {
          id: room.id,
          name: room.name,
          owner: user(owners[i] as UserShape),
          members: { edges: (members[i] ?? []).map((m) => ({ node: { user: user(m) } })) },
        },
      })),
    },
  };
}

const roomsS0: RestClient = async (call, token) => {
  const list = (await call('chat/rooms/owned', { limit: ROOMS }, token)) as RoomShape[];
  const memberships = (await Promise.all(
    list.map((room) => call('chat/rooms/members', { roomId: room.id, limit: MEMBERS }, token)),
  )) as MembershipShape[][];
  return rooms(
    list,
    list.map((room) => room.owner),
    memberships.map((page) => page.map((m) => m.user)),
  );
};

const roomsS1: RestClient = async (call, token) => {
  const list = (await call('chat/rooms/owned', { limit: ROOMS }, token)) as RoomShape[];
  const perRoom = await Promise.all(
    list.map(async (room) => {
      const [owner, page] = await Promise.all([
        call('users/show', { userId: room.ownerId }, token) as Promise<UserShape>,
        call('chat/rooms/members', { roomId: room.id, limit: MEMBERS }, token) as Promise<
          MembershipShape[]
        >,
      ]);
      const members = (await Promise.all(
        page.map((m) => call('users/show', { userId: m.userId }, token)),
      )) as UserShape[];
      return { owner, members };
    }),
  );
  return rooms(
    list,
    perRoom.map((r) => r.owner),
    perRoom.map((r) => r.members),
  );
};

// ---------------------------------------------------------------------------------------------

export const WORKLOADS: readonly Workload[] = [
  {
    id: 'a',
    title: '(a) one-call query: `me`',
    query: 'query Me { me { id username name } }',
    rest: { S0: me },
    floor: true,
    requests: (data) => data.users.map((u) => ({ token: u.token, variables: {} })),
  },
  {
    id: 'b',
    title: `(b) a ${PAGE_SIZE}-message conversation page with fromUser`,
    query: /* GraphQL */ `query Conversation($userId: ID!) {
  chatConversation(userId: $userId, first: ${PAGE_SIZE}) {
    edges { node { id text createdAt fromUser { id username name } } }
  }
}`,
    rest: { S0: conversationS0, S1: conversationS1 },
    floor: true,
    requests: (data) =>
      data.conversations.map((c) => ({ token: c.a.token, variables: { userId: c.b.id } })),
  },
  {
    id: 'c',
    title: `(c) ${ROOMS} rooms with owner and ${MEMBERS} members each`,
    query: /* GraphQL */ `query Rooms {
  ownedChatRooms(first: ${ROOMS}) {
    edges { node {
      id name owner { id username name }
      members(first: ${MEMBERS}) { edges { node { user { id username name } } } }
    } }
  }
}`,
    rest: { S0: roomsS0, S1: roomsS1 },
    requests: (data) => data.owners.map((o) => ({ token: o.token, variables: {} })),
  },
];

/** `POST /api/<endpoint>` on a keep-alive undici dispatcher (what S0 and S1 call Misskey with). */
export function restCaller(dispatcher: Dispatcher): UpstreamCall {
  return async (endpoint, params, token) => {
    const res = await dispatcher.request({
      method: 'POST',
      path: `/api/${endpoint}`,
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(params),
    });
    if (res.statusCode === 204) {
      await res.body.dump();
      return null;
    }
    const body = await res.body.text();
    if (res.statusCode >= 400) {
      throw new Error(`${endpoint}: HTTP ${res.statusCode} ${body.slice(0, 200)}`);
    }
    return JSON.parse(body);
  };
}

/** The HTTP request the load sends to a system for one `BenchRequest`. */
export function httpRequestFor(
  workload: Workload,
  system: SystemId,
  request: BenchRequest,
): { path: string; headers: Record<string, string>; body: string } {
  const headers = {
    'content-type': 'application/json',
    authorization: `Bearer ${request.token}`,
  };
  if (system === 'S2' || system === 'S4') {
    return {
      path: '/graphql',
      headers,
      body: JSON.stringify({ query: workload.query, variables: request.variables }),
    };
  }
  return {
    path: `/${system.toLowerCase()}/${workload.id}`,
    headers,
    body: JSON.stringify(request.variables),
  };
}
