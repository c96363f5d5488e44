import { type Client, createClient } from 'graphql-ws';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DEMO_TOKENS, demoUserIds, type Stack, startStack } from './harness.js';
import { until } from './support/until.js';

/** Short hub timings, as in test/subscriptions.test.ts. */
const STREAM = {
  pingIntervalMs: 250,
  pongTimeoutMs: 250,
  connectTimeoutMs: 600,
  readyTimeoutMs: 1_500,
  idleCloseMs: 100,
  backoff: { initialMs: 50, maxMs: 400 },
};

let stack: Stack;
let ids: Record<'admin' | 'alice' | 'bob' | 'carol', string>;
const clients: Client[] = [];
const stops: (() => void)[] = [];

beforeAll(async () => {
  stack = await startStack({ gateway: { stream: STREAM } });
  ids = demoUserIds(stack);
});

afterAll(async () => {
  await stack?.close();
});

beforeEach(async () => {
  await until(() => streaming().socketCount() === 0, 5_000, 'no upstream socket');
});

afterEach(async () => {
  for (const stop of stops.splice(0)) {
    stop();
  }
  await Promise.all(clients.splice(0).map((client) => client.dispose()));
  streaming().refuseUpgrades(null);
});

const streaming = () => stack.sandbox.streaming;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Result<T> {
  data?: T | null;
  errors?: { message: string; extensions?: Record<string, unknown> }[];
}

function subscribe<T>(token: string, query: string) {
  const client = createClient({
    url: stack.gateway.url.replace('http', 'ws'),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    lazy: true,
    connectionParams: { authorization: `Bearer ${token}` },
  });
  clients.push(client);
  const results: Result<T>[] = [];
  const stop = client.subscribe<T>(
    { query },
    {
      next: (value) => {
        results.push(value as Result<T>);
      },
      error: () => {},
      complete: () => {},
    },
  );
  stops.push(stop);
  return {
    results,
    stop,
    nth: (n: number, withinMs = 8_000) =>
      until(() => results.length >= n, withinMs, `${n} result(s)`).then(
        () => results[n - 1] as Result<T>,
      ),
  };
}

let rooms = 0;
/** A new room of bob's, with alice invited to it; returns the invitation id. */
async function inviteAlice(): Promise<{ id: string; roomId: string }> {
  const room = (await stack.sandbox.call(
    'chat/rooms/create',
    { name: `Invite ${++rooms}` },
    DEMO_TOKENS.bob,
  )) as { id: string };
  const invitation = (await stack.sandbox.call(
    'chat/rooms/invitations/create',
    { roomId: room.id, userId: ids.alice },
    DEMO_TOKENS.bob,
  )) as { id: string };
  return { id: invitation.id, roomId: room.id };
}

const INVITATIONS = `subscription {
  chatRoomInvitationReceived { id room { id name owner { username } } user { username } }
}`;

type InvitationResult = {
  chatRoomInvitationReceived: {
    id: string;
    room: { id: string; name: string; owner: { username: string } };
    user: { username: string };
  };
};

const UNREAD = 'subscription { chatUnreadChanged { hasUnreadChatMessages } }';
type UnreadResult = { chatUnreadChanged: { hasUnreadChatMessages: boolean } };

describe('chatRoomInvitationReceived', () => {
  it('delivers an invitation at once with its room and inviter, sharing main with chatMessageReceived', async () => {
    const invitations = subscribe<InvitationResult>(DEMO_TOKENS.alice, INVITATIONS);
    subscribe(DEMO_TOKENS.alice, 'subscription { chatMessageReceived { id } }');
    await until(() => streaming().channelCount('main', ids.alice) === 1, 5_000, 'main channel');
    const invited = await inviteAlice();
    const first = await invitations.nth(1, 3_000);
    expect(first.data?.chatRoomInvitationReceived).toEqual({
      id: invited.id,
      room: { id: invited.roomId, name: `Invite ${rooms}`, owner: { username: 'bob' } },
      user: { username: 'alice' },
    });
    await sleep(2_500); // Misskey's unreadNotification of the same invitation: not delivered again
    expect(invitations.results).toHaveLength(1);
    expect(streaming().socketCount(ids.alice)).toBe(1);
    expect(streaming().channelCount('main', ids.alice)).toBe(1);
  });

  it('catches up invitations received while the upstream socket was down, each once', async () => {
    const invitations = subscribe<InvitationResult>(DEMO_TOKENS.alice, INVITATIONS);
    await until(() => streaming().channelCount('main', ids.alice) === 1, 5_000, 'main channel');
    const before = await inviteAlice();
    await invitations.nth(1, 3_000);
    streaming().refuseUpgrades(503);
    streaming().drop(ids.alice);
    const during = [await inviteAlice(), await inviteAlice()];
    await sleep(300);
    streaming().refuseUpgrades(null);
    await invitations.nth(3, 5_000);
    const after = await inviteAlice();
    await invitations.nth(4, 3_000);
    await sleep(2_500); // unreadNotification frames of the live ones
    expect(invitations.results.map((r) => r.data?.chatRoomInvitationReceived.id)).toEqual([
      before.id,
      ...during.map((i) => i.id),
      after.id,
    ]);
    expect(invitations.results[1]?.data?.chatRoomInvitationReceived.room.owner.username).toBe(
      'bob',
    );
  });
});

describe('one main channel for all three subscriptions', () => {
  it('after a dropped socket, chatMessageReceived and chatRoomInvitationReceived both catch up, each once', async () => {
    // Leave no announced-but-unread message of earlier tests pending.
    await stack.gql(
      'query($u: ID!) { chatConversation(userId: $u, first: 1) { edges { cursor } } }',
      {
        u: ids.bob,
      },
    );
    const invitations = subscribe<InvitationResult>(DEMO_TOKENS.alice, INVITATIONS);
    const messages = subscribe<{ chatMessageReceived: { id: string; text: string } }>(
      DEMO_TOKENS.alice,
      'subscription { chatMessageReceived { id text } }',
    );
    const unread = subscribe<UnreadResult>(DEMO_TOKENS.alice, UNREAD);
    await unread.nth(1);
    await until(() => streaming().channelCount('main', ids.alice) === 1, 5_000, 'main channel');
    streaming().refuseUpgrades(503);
    streaming().drop(ids.alice);
    const sent = (await stack.sandbox.call(
      'chat/messages/create-to-user',
      { toUserId: ids.alice, text: 'away: message' },
      DEMO_TOKENS.bob,
    )) as { id: string };
    const invited = await inviteAlice();
    await sleep(300);
    streaming().refuseUpgrades(null);
    await messages.nth(1, 5_000);
    await invitations.nth(1, 5_000);
    await sleep(3_500); // Misskey's own frames would come now: none may duplicate
    expect(messages.results.map((r) => r.data?.chatMessageReceived.id)).toEqual([sent.id]);
    expect(invitations.results.map((r) => r.data?.chatRoomInvitationReceived.id)).toEqual([
      invited.id,
    ]);
    // The message catch-up read the conversation: the flag is re-read after it, not assumed.
    const me = await stack.gql<{ me: { hasUnreadChatMessages: boolean } }>(
      '{ me { hasUnreadChatMessages } }',
    );
    expect(unread.results.at(-1)?.data?.chatUnreadChanged.hasUnreadChatMessages).toBe(
      me.data?.me.hasUnreadChatMessages,
    );
    expect(streaming().socketCount(ids.alice)).toBe(1);
    expect(streaming().channelCount('main', ids.alice)).toBe(1);
  });
});

async function sendDm(text: string) {
  await stack.sandbox.call(
    'chat/messages/create-to-user',
    { toUserId: ids.alice, text },
    DEMO_TOKENS.bob,
  );
}

const flags = (results: Result<UnreadResult>[]) =>
  results.map((r) => r.data?.chatUnreadChanged.hasUnreadChatMessages);

describe('unread chat state', () => {
  it('me.hasUnreadChatMessages and chatHistory isRead follow Misskey', async () => {
    await stack.gql('mutation { markAllChatMessagesRead }');
    await stack.gql(
      'query($u: ID!) { chatConversation(userId: $u, first: 1) { edges { cursor } } }',
      {
        u: ids.bob,
      },
    );
    const read = await stack.gql<{
      me: { hasUnreadChatMessages: boolean };
      chatHistory: { isRead: boolean; fromUser: { username: string } }[];
    }>('{ me { hasUnreadChatMessages } chatHistory(first: 10) { isRead fromUser { username } } }');
    expect(read.errors).toBeUndefined();
    expect(read.data?.me.hasUnreadChatMessages).toBe(false);
    await sendDm('unread one');
    const unread = await stack.gql<{
      me: { hasUnreadChatMessages: boolean };
      chatHistory: { isRead: boolean; fromUser: { username: string } }[];
      user: { hasUnreadChatMessages: boolean | null };
    }>(
      'query($u: ID!) { me { hasUnreadChatMessages } chatHistory(first: 1) { isRead fromUser { username } } user(id: $u) { hasUnreadChatMessages } }',
      { u: ids.bob },
    );
    expect(unread.data?.me.hasUnreadChatMessages).toBe(true);
    expect(unread.data?.chatHistory[0]).toEqual({ isRead: false, fromUser: { username: 'bob' } });
    expect(unread.data?.user.hasUnreadChatMessages).toBeNull();
    await stack.gql('mutation { markAllChatMessagesRead }');
  });

  it('chatUnreadChanged: the current state, then each change (new message, read through the gateway)', async () => {
    await stack.gql('mutation { markAllChatMessagesRead }');
    const live = subscribe<UnreadResult>(DEMO_TOKENS.alice, UNREAD);
    expect((await live.nth(1)).data?.chatUnreadChanged.hasUnreadChatMessages).toBe(false);
    await sendDm('make it unread');
    await live.nth(2, 6_000); // Misskey's newChatMessage, ~3 s later
    stack.sandbox.resetCalls();
    await stack.gql('mutation { markAllChatMessagesRead }');
    await live.nth(3, 3_000);
    // The hub knows alice's token (her live subscription): only the subscription re-reads `i`
    // (once for the read; a slow machine can also see the message's re-read land after the reset).
    expect(stack.sandbox.callCount('i')).toBeGreaterThanOrEqual(1);
    expect(stack.sandbox.callCount('i')).toBeLessThanOrEqual(2);
    await sleep(300);
    expect(flags(live.results)).toEqual([false, true, false]);
    expect(streaming().socketCount(ids.alice)).toBe(1);
  });

  it('chatUnreadChanged re-reads `i` after an upstream reconnect (a message sent while away)', async () => {
    await stack.gql('mutation { markAllChatMessagesRead }');
    const live = subscribe<UnreadResult>(DEMO_TOKENS.alice, UNREAD);
    await live.nth(1);
    await until(() => streaming().channelCount('main', ids.alice) === 1, 5_000, 'main channel');
    const accepted = streaming().acceptedCount(ids.alice);
    streaming().refuseUpgrades(503);
    streaming().drop(ids.alice);
    await sendDm('while away');
    await sleep(300);
    streaming().refuseUpgrades(null);
    await live.nth(2, 5_000);
    await sleep(3_500); // no second `true` for the same state
    expect(flags(live.results)).toEqual([false, true]);
    expect(streaming().acceptedCount(ids.alice)).toBeGreaterThan(accepted);
    await stack.gql('mutation { markAllChatMessagesRead }');
  });
});
