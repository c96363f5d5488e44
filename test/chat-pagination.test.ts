import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { type Stack, startStack } from './harness.js';

/**
 * Relay paging over Misskey id cursors. Edges are always newest first; `first`/`after` walk
 * towards older messages (`untilId`), `last`/`before` towards newer ones (`sinceId`, which
 * Misskey answers oldest first — the gateway turns it around).
 */
let stack: Stack;
let dave: { id: string; token: string };
let erin: { id: string; token: string };
let roomId: string;
/** The conversation dave ↔ erin, newest first. */
let conversation: string[];
/** The room's messages, newest first. */
let roomMessages: string[];

const COUNT = 23;

beforeAll(async () => {
  stack = await startStack({ sandbox: { rateLimits: false } });
  const store = stack.sandbox.store;
  const d = store.createUser('dave');
  const e = store.createUser('erin');
  dave = { id: d.user.id, token: d.token };
  erin = { id: e.user.id, token: e.token };
  for (const who of [dave, erin]) {
    await stack.rest('i/update', { chatScope: 'everyone' }, who.token);
  }
  const sent: string[] = [];
  for (let i = 0; i < COUNT; i++) {
    const [from, to] = i % 3 === 0 ? [erin, dave] : [dave, erin];
    const message = (await stack.rest(
      'chat/messages/create-to-user',
      { toUserId: to.id, text: `message ${i}` },
      from.token,
    )) as { id: string };
    sent.push(message.id);
  }
  conversation = [...sent].reverse();

  roomId = (
    (await stack.rest('chat/rooms/create', { name: 'paged' }, dave.token)) as { id: string }
  ).id;
  const inRoom: string[] = [];
  for (let i = 0; i < COUNT; i++) {
    const message = (await stack.rest(
      'chat/messages/create-to-room',
      { toRoomId: roomId, text: `room ${i}` },
      dave.token,
    )) as { id: string };
    inRoom.push(message.id);
  }
  roomMessages = [...inRoom].reverse();
});
beforeEach(() => {
  stack.sandbox.resetCalls();
});

interface Page {
  edges: { cursor: string; node: { id: string; text: string } }[];
  pageInfo: {
    hasNextPage: boolean;
    hasPreviousPage: boolean;
    startCursor: string | null;
    endCursor: string | null;
  };
}

const CONVERSATION = /* GraphQL */ `
  query ($u: ID!, $first: Int, $after: String, $last: Int, $before: String) {
    chatConversation(userId: $u, first: $first, after: $after, last: $last, before: $before) {
      edges { cursor node { id text } }
      pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
    }
  }
`;

async function page(variables: Record<string, unknown>): Promise<Page> {
  const res = await stack.gql<{ chatConversation: Page }>(
    CONVERSATION,
    { u: erin.id, ...variables },
    dave.token,
  );
  expect(res.errors).toBeUndefined();
  const result = res.data?.chatConversation;
  if (!result) {
    throw new Error('no page');
  }
  for (const edge of result.edges) {
    expect(edge.cursor).toBe(edge.node.id);
  }
  return result;
}

describe('chatConversation paging', () => {
  it('walks the whole conversation with first/after: every message once, newest first', async () => {
    const seen: string[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const p: Page = await page({ first: 5, after });
      pages++;
      expect(p.pageInfo.hasPreviousPage).toBe(after !== null);
      seen.push(...p.edges.map((e) => e.node.id));
      if (!p.pageInfo.hasNextPage) {
        break;
      }
      after = p.pageInfo.endCursor;
    }
    expect(seen).toEqual(conversation);
    expect(pages).toBe(Math.ceil(COUNT / 5));
    // One user-timeline call per page (limit = first + 1 tells whether another page exists).
    expect(stack.sandbox.callCount('chat/messages/user-timeline')).toBe(pages);
    expect(stack.sandbox.callCount()).toBe(pages);
  });

  it('walks it with last/before from the oldest: every message once, each page newest first', async () => {
    const pagesSeen: string[][] = [];
    let before: string | null = null;
    for (;;) {
      const p: Page = await page({ last: 4, before });
      expect(p.pageInfo.hasNextPage).toBe(before !== null);
      const ids = p.edges.map((e) => e.node.id);
      // Within a page, newest first like every connection here.
      expect(ids).toEqual([...ids].sort().reverse());
      pagesSeen.push(ids);
      if (!p.pageInfo.hasPreviousPage) {
        break;
      }
      before = p.pageInfo.startCursor;
    }
    // Oldest page first; reversing each page and concatenating gives the conversation in order.
    const oldestFirst = pagesSeen.flatMap((ids) => [...ids].reverse());
    expect(oldestFirst).toEqual([...conversation].reverse());
    expect(pagesSeen.length).toBe(Math.ceil(COUNT / 4));
    expect(stack.sandbox.callCount('chat/messages/user-timeline')).toBe(pagesSeen.length);
  });

  it('pages exactly at the end report no further page', async () => {
    const all = await page({ first: COUNT });
    expect(all.edges).toHaveLength(COUNT);
    expect(all.pageInfo.hasNextPage).toBe(false);
    const oldest = await page({ last: COUNT });
    expect(oldest.pageInfo.hasPreviousPage).toBe(false);
    const short = await page({ first: COUNT - 1 });
    expect(short.pageInfo.hasNextPage).toBe(true);
  });

  it('first with after and before returns the messages strictly between, newest first', async () => {
    // Newest first: `after` [5] means older than it, `before` [15] newer than it.
    const p = await page({ first: 50, after: conversation[5], before: conversation[15] });
    expect(p.edges.map((e) => e.node.id)).toEqual(conversation.slice(6, 15));
  });

  it('first: 100 (the maximum) asks for 100 and probes once for a 101st', async () => {
    const frank = stack.sandbox.store.createUser('frank');
    const gina = stack.sandbox.store.createUser('gina');
    await stack.rest('i/update', { chatScope: 'everyone' }, gina.token);
    const say = () =>
      stack.rest(
        'chat/messages/create-to-user',
        { toUserId: gina.user.id, text: 'x' },
        frank.token,
      );
    for (let i = 0; i < 100; i++) {
      await say();
    }
    const query = async () => {
      stack.sandbox.resetCalls();
      const res = await stack.gql<{ chatConversation: Page }>(
        CONVERSATION,
        { u: gina.user.id, first: 100 },
        frank.token,
      );
      expect(res.errors).toBeUndefined();
      return res.data?.chatConversation;
    };
    const exact = await query();
    expect(exact?.edges).toHaveLength(100);
    expect(exact?.pageInfo.hasNextPage).toBe(false);
    expect(stack.sandbox.callCount('chat/messages/user-timeline')).toBe(2);
    await say();
    const more = await query();
    expect(more?.edges).toHaveLength(100);
    expect(more?.pageInfo.hasNextPage).toBe(true);
    expect(stack.sandbox.callCount('chat/messages/user-timeline')).toBe(2);
  });

  it.each([
    ['first above 100', { first: 101 }],
    ['last above 100', { last: 101 }],
    ['a negative first', { first: -1 }],
    ['first and last together', { first: 2, last: 2 }],
    ['last with after', { last: 2, after: 'abc' }],
    ['a malformed after cursor', { first: 2, after: 'not a cursor!' }],
    ['a malformed before cursor', { last: 2, before: '../x' }],
  ])('refuses %s with BAD_USER_INPUT before any upstream call', async (_name, variables) => {
    const res = await stack.gql(CONVERSATION, { u: erin.id, ...variables }, dave.token);
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(stack.sandbox.callCount()).toBe(0);
  });
});

describe('ChatRoom.messages paging', () => {
  const ROOM = /* GraphQL */ `
    query ($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
      chatRoom(id: $id) {
        id
        messages(first: $first, after: $after, last: $last, before: $before) {
          edges { cursor node { id text } }
          pageInfo { hasNextPage hasPreviousPage startCursor endCursor }
        }
      }
    }
  `;

  async function roomPage(variables: Record<string, unknown>): Promise<Page> {
    const res = await stack.gql<{ chatRoom: { messages: Page } }>(
      ROOM,
      { id: roomId, ...variables },
      dave.token,
    );
    expect(res.errors).toBeUndefined();
    const result = res.data?.chatRoom.messages;
    if (!result) {
      throw new Error('no page');
    }
    return result;
  }

  it('walks the room both ways, one upstream call per page', async () => {
    const older: string[] = [];
    let after: string | null = null;
    let calls = 0;
    for (;;) {
      const p: Page = await roomPage({ first: 10, after });
      calls++;
      older.push(...p.edges.map((e) => e.node.id));
      if (!p.pageInfo.hasNextPage) {
        break;
      }
      after = p.pageInfo.endCursor;
    }
    expect(older).toEqual(roomMessages);
    expect(stack.sandbox.callCount()).toBe(calls);

    const newer: string[][] = [];
    let before: string | null = null;
    for (;;) {
      const p: Page = await roomPage({ last: 10, before });
      newer.push(p.edges.map((e) => e.node.id));
      if (!p.pageInfo.hasPreviousPage) {
        break;
      }
      before = p.pageInfo.startCursor;
    }
    expect(newer.flatMap((ids) => [...ids].reverse())).toEqual([...roomMessages].reverse());
  });
});
