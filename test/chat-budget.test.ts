import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { CHAT_READ_CONCURRENCY } from '../src/loaders/chat.js';
import { DEMO_TOKENS, demoUserIds, type Stack, startStack } from './harness.js';

/**
 * Upstream call budgets of the chat graph, read from the sandbox's call counter: embedded users
 * and rooms prime the loaders, repeated lookups are made once, fan-out is bounded.
 */
let stack: Stack;
/** Start and end (performance.now()) of every upstream call the gateway made. */
const timings: { endpoint: string; start: number; end: number }[] = [];

let alice: string;
let bob: string;
let carol: string;

beforeAll(async () => {
  stack = await startStack({
    sandbox: { rateLimits: false },
    gateway: {
      onUpstreamCall: (event) => {
        const end = performance.now();
        timings.push({ endpoint: event.endpoint, start: end - event.durationMs, end });
      },
    },
  });
  ({ alice, bob, carol } = demoUserIds(stack));
});
beforeEach(() => {
  stack.sandbox.resetCalls();
  stack.sandbox.latencyMs = 0;
  timings.length = 0;
});

/** The largest number of calls to `endpoint` that were in flight at the same moment. */
function maxInFlight(endpoint: string): number {
  const points = timings
    .filter((t) => t.endpoint === endpoint)
    .flatMap((t) => [
      { at: t.start, delta: 1 },
      { at: t.end, delta: -1 },
    ])
    .sort((a, b) => a.at - b.at || a.delta - b.delta);
  let current = 0;
  let max = 0;
  for (const point of points) {
    current += point.delta;
    max = Math.max(max, current);
  }
  return max;
}

describe('upstream call budgets', () => {
  it('a conversation page of 50 messages with fromUser and toUser: 2 calls', async () => {
    for (let i = 0; i < 60; i++) {
      const [from, to] = i % 2 === 0 ? ['alice', bob] : ['bob', alice];
      await stack.rest(
        'chat/messages/create-to-user',
        { toUserId: to, text: `budget ${i}` },
        DEMO_TOKENS[from as 'alice' | 'bob'],
      );
    }
    stack.sandbox.resetCalls();
    const res = await stack.gql<{
      chatConversation: {
        edges: { node: { fromUser: { username: string }; toUser: { username: string } } }[];
      };
    }>(
      `query ($u: ID!) { chatConversation(userId: $u, first: 50) {
        edges { node { id text fromUser { id username name } toUser { id username name } } }
      } }`,
      { u: bob },
    );
    expect(res.errors).toBeUndefined();
    const edges = res.data?.chatConversation.edges ?? [];
    expect(edges).toHaveLength(50);
    expect(new Set(edges.map((e) => e.node.fromUser.username))).toEqual(new Set(['alice', 'bob']));
    expect(stack.sandbox.callCount('chat/messages/user-timeline')).toBe(1);
    expect(stack.sandbox.callCount('users/show')).toBe(1);
    expect(stack.sandbox.callCount()).toBe(2);
  });

  it('a room timeline page with senders and reaction users: 1 call', async () => {
    const roomId = (
      (await stack.rest('chat/rooms/create', { name: 'budget room' })) as { id: string }
    ).id;
    for (const [userId, token] of [
      [bob, DEMO_TOKENS.bob],
      [carol, DEMO_TOKENS.carol],
    ] as const) {
      await stack.rest('chat/rooms/invitations/create', { roomId, userId });
      await stack.rest('chat/rooms/join', { roomId }, token);
    }
    const tokens = [DEMO_TOKENS.alice, DEMO_TOKENS.bob, DEMO_TOKENS.carol];
    for (let i = 0; i < 30; i++) {
      const message = (await stack.rest(
        'chat/messages/create-to-room',
        { toRoomId: roomId, text: `room ${i}` },
        tokens[i % 3],
      )) as { id: string };
      // Each message gets reactions from the two members who did not write it.
      for (const token of tokens.filter((_t, j) => j !== i % 3)) {
        await stack.rest('chat/messages/react', { messageId: message.id, reaction: '👍' }, token);
      }
    }
    stack.sandbox.resetCalls();
    const res = await stack.gql<{
      chatRoom: {
        messages: {
          edges: {
            node: { fromUser: { username: string }; reactions: { user: { username: string } }[] };
          }[];
        };
      };
    }>(
      `query ($id: ID!) { chatRoom(id: $id) { id messages(first: 30) {
        edges { node { id text fromUser { username name avatarUrl }
          reactions { reaction user { username name } } } }
      } } }`,
      { id: roomId },
    );
    expect(res.errors).toBeUndefined();
    const edges = res.data?.chatRoom.messages.edges ?? [];
    expect(edges).toHaveLength(30);
    expect(edges.every((e) => e.node.reactions.length === 2)).toBe(true);
    expect(new Set(edges.flatMap((e) => e.node.reactions.map((r) => r.user.username)))).toEqual(
      new Set(['alice', 'bob', 'carol']),
    );
    expect(stack.sandbox.callCount('chat/messages/room-timeline')).toBe(1);
    expect(stack.sandbox.callCount()).toBe(1);

    // Asking for more of the room (here its name) costs the room itself, still no user call.
    stack.sandbox.resetCalls();
    const named = await stack.gql(
      `query ($id: ID!) { chatRoom(id: $id) { name messages(first: 30) {
        edges { node { fromUser { username } reactions { user { username } } } } } } }`,
      { id: roomId },
    );
    expect(named.errors).toBeUndefined();
    expect(stack.sandbox.callCount('users/show')).toBe(0);
    expect(stack.sandbox.callCount()).toBe(2);
  });

  it('20 owned rooms with owner and first 10 members: 1 + 20 calls, no user call, bounded', async () => {
    const owner = stack.sandbox.store.createUser('owner20');
    const extra = Array.from({ length: 12 }, (_v, i) => stack.sandbox.store.createUser(`m20x${i}`));
    const roomIds: string[] = [];
    for (let r = 0; r < 20; r++) {
      const roomId = (
        (await stack.rest('chat/rooms/create', { name: `room ${r}` }, owner.token)) as {
          id: string;
        }
      ).id;
      roomIds.push(roomId);
      // Room 0 gets 12 members (a second page exists), the others 2.
      const members = r === 0 ? extra : extra.slice(0, 2);
      for (const member of members) {
        await stack.rest(
          'chat/rooms/invitations/create',
          { roomId, userId: member.user.id },
          owner.token,
        );
        await stack.rest('chat/rooms/join', { roomId }, member.token);
      }
    }
    stack.sandbox.resetCalls();
    timings.length = 0;
    stack.sandbox.latencyMs = 20;
    const res = await stack.gql<{
      ownedChatRooms: {
        edges: {
          node: {
            id: string;
            owner: { username: string };
            members: {
              edges: { node: { user: { username: string } } }[];
              pageInfo: { hasNextPage: boolean };
            };
          };
        }[];
      };
    }>(
      `{ ownedChatRooms(first: 20) { edges { node {
        id name owner { username name }
        members(first: 10) { edges { node { createdAt user { username name } } } pageInfo { hasNextPage } }
      } } } }`,
      {},
      owner.token,
    );
    expect(res.errors).toBeUndefined();
    const rooms = res.data?.ownedChatRooms.edges ?? [];
    expect(rooms.map((e) => e.node.id)).toEqual([...roomIds].reverse());
    expect(rooms.every((e) => e.node.owner.username === 'owner20')).toBe(true);
    const first = rooms.find((e) => e.node.id === roomIds[0])?.node.members;
    expect(first?.edges).toHaveLength(10);
    expect(first?.pageInfo.hasNextPage).toBe(true);
    expect(
      rooms.filter((e) => e.node.id !== roomIds[0]).every((e) => e.node.members.edges.length === 2),
    ).toBe(true);

    expect(stack.sandbox.callCount('chat/rooms/owned')).toBe(1);
    expect(stack.sandbox.callCount('chat/rooms/members')).toBe(20);
    expect(stack.sandbox.callCount('users/show')).toBe(0);
    expect(stack.sandbox.callCount()).toBe(21);
    // In parallel, but never more than the bound at once.
    const inFlight = maxInFlight('chat/rooms/members');
    expect(inFlight).toBeGreaterThan(1);
    expect(inFlight).toBeLessThanOrEqual(CHAT_READ_CONCURRENCY);
  });

  it('the same room asked for twice in one request is fetched once', async () => {
    const roomId = ((await stack.rest('chat/rooms/create', { name: 'twice' })) as { id: string })
      .id;
    stack.sandbox.resetCalls();
    const res = await stack.gql<{ a: { name: string }; b: { owner: { username: string } } }>(
      `query ($id: ID!) {
        a: chatRoom(id: $id) { name }
        b: chatRoom(id: $id) { owner { username } description }
      }`,
      { id: roomId },
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.a.name).toBe('twice');
    expect(res.data?.b.owner.username).toBe('alice');
    expect(stack.sandbox.callCount('chat/rooms/show')).toBe(1);
    expect(stack.sandbox.callCount()).toBe(1);
  });

  it('the same user asked for twice in one request is fetched once', async () => {
    await stack.rest('chat/messages/create-to-user', { toUserId: carol, text: 'x' });
    stack.sandbox.resetCalls();
    const res = await stack.gql(
      `query ($u: ID!) {
        a: user(id: $u) { name }
        b: user(id: $u) { description }
        c: chatConversation(userId: $u, first: 5) { edges { node { toUser { followersCount } } } }
      }`,
      { u: carol },
    );
    expect(res.errors).toBeUndefined();
    expect(stack.sandbox.callCount('users/show')).toBe(1);
  });

  it('rooms embedded in one answer are not fetched again (history → toRoom, invitations → room)', async () => {
    const roomId = ((await stack.rest('chat/rooms/create', { name: 'embedded' })) as { id: string })
      .id;
    await stack.rest('chat/messages/create-to-room', { toRoomId: roomId, text: 'hi' });
    await stack.rest('chat/rooms/invitations/create', { roomId, userId: bob });
    stack.sandbox.resetCalls();
    const res = await stack.gql(
      `{ chatHistory(kind: ROOM) { toRoom { name owner { username } } fromUser { username } } }`,
    );
    expect(res.errors).toBeUndefined();
    expect(stack.sandbox.callCount()).toBe(1);

    stack.sandbox.resetCalls();
    const inbox = await stack.gql(
      '{ chatRoomInvitations { edges { node { user { username } room { name owner { username } } } } } }',
      {},
      DEMO_TOKENS.bob,
    );
    expect(inbox.errors).toBeUndefined();
    expect(stack.sandbox.callCount()).toBe(1);
  });
});
