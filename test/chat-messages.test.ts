import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_TOKENS, demoUserIds, type Stack, startStack } from './harness.js';

let stack: Stack;
let alice: string;
let bob: string;
let carol: string;

beforeAll(async () => {
  stack = await startStack({ sandbox: { rateLimits: false } });
  ({ alice, bob, carol } = demoUserIds(stack));
});
beforeEach(() => {
  stack.sandbox.resetCalls();
});

interface Message {
  id: string;
  text: string | null;
  fromUser: { username: string } | null;
  toUser: { username: string } | null;
  toRoom: { id: string; name: string } | null;
  reactions: { reaction: string; user: { username: string } | null }[];
  file: Record<string, unknown> | null;
  isRead: boolean | null;
}

const MESSAGE = /* GraphQL */ `
  fragment M on ChatMessage {
    id
    text
    fromUser { username }
    toUser { username }
    toRoom { id name }
    reactions { reaction user { username } }
    file { id name type size width height md5 url isSensitive }
    isRead
  }
`;

const SEND = /* GraphQL */ `
  mutation ($input: SendChatMessageInput!) { sendChatMessage(input: $input) { ...M } }
  ${MESSAGE}
`;

async function send(input: Record<string, unknown>, token: string = DEMO_TOKENS.alice) {
  return stack.gql<{ sendChatMessage: Message }>(SEND, { input }, token);
}

/** A direct message straight through the sandbox (setup, not under test). */
async function dm(from: keyof typeof DEMO_TOKENS, toUserId: string, text: string) {
  return (await stack.rest(
    'chat/messages/create-to-user',
    { toUserId, text },
    DEMO_TOKENS[from],
  )) as {
    id: string;
  };
}

/** An 8×8 PNG header: enough for the sandbox to read its size. */
function png(): Blob {
  const bytes = Buffer.alloc(33);
  bytes.writeUInt32BE(0x89504e47, 0);
  bytes.writeUInt32BE(0x0d0a1a0a, 4);
  bytes.writeUInt32BE(13, 8);
  bytes.write('IHDR', 12, 'ascii');
  bytes.writeUInt32BE(8, 16);
  bytes.writeUInt32BE(8, 20);
  return new Blob([bytes], { type: 'image/png' });
}

async function upload(token: string): Promise<string> {
  const form = new FormData();
  form.append('file', png(), 'pixel.png');
  form.append('comment', 'a pixel');
  const res = await fetch(`${stack.sandbox.origin}/api/drive/files/create`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: form,
  });
  expect(res.status).toBe(200);
  return ((await res.json()) as { id: string }).id;
}

describe('sendChatMessage', () => {
  it('sends a direct message; sender and recipient cost one users/show call', async () => {
    const res = await send({ toUserId: bob, text: '  hello bob  ' });
    expect(res.errors).toBeUndefined();
    expect(res.data?.sendChatMessage).toMatchObject({
      text: 'hello bob',
      fromUser: { username: 'alice' },
      toUser: { username: 'bob' },
      toRoom: null,
      reactions: [],
      file: null,
      isRead: null,
    });
    expect(stack.sandbox.callCount('chat/messages/create-to-user')).toBe(1);
    expect(stack.sandbox.callCount('users/show')).toBe(1);
    expect(stack.sandbox.callCount()).toBe(2);
  });

  it('sends a file-only message and exposes the DriveFile', async () => {
    const fileId = await upload(DEMO_TOKENS.alice);
    stack.sandbox.resetCalls();
    const res = await send({ toUserId: bob, fileId });
    expect(res.errors).toBeUndefined();
    expect(res.data?.sendChatMessage.text).toBeNull();
    expect(res.data?.sendChatMessage.file).toMatchObject({
      id: fileId,
      name: 'pixel.png',
      type: 'image/png',
      size: 33,
      width: 8,
      height: 8,
      isSensitive: false,
    });
    expect(res.data?.sendChatMessage.file?.url).toMatch(/^http/);
  });

  it('accepts 2000 characters counted as code points (4000 UTF-16 units of emoji)', async () => {
    const text = '😀'.repeat(2000);
    const res = await send({ toUserId: bob, text });
    expect(res.errors).toBeUndefined();
    expect(res.data?.sendChatMessage.text).toBe(text);
  });

  it.each([
    ['no recipient', { text: 'hi' }],
    ['two recipients', { toUserId: 'abc123', toRoomId: 'abc123', text: 'hi' }],
    ['neither text nor file', { toUserId: 'abc123' }],
    ['empty text', { toUserId: 'abc123', text: '' }],
    ['blank text', { toUserId: 'abc123', text: '   \n ' }],
    ['text over 2000 characters', { toUserId: 'abc123', text: 'x'.repeat(2001) }],
    ['a malformed user id', { toUserId: 'not an id!', text: 'hi' }],
    ['a malformed room id', { toRoomId: '../etc', text: 'hi' }],
    ['a malformed file id', { toUserId: 'abc123', fileId: 'x-y' }],
  ])('refuses %s with BAD_USER_INPUT before any upstream call', async (_name, input) => {
    const res = await send(input);
    expect(res.data).toBeNull();
    expect(res.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(stack.sandbox.callCount()).toBe(0);
  });

  it('without a token is UNAUTHENTICATED before any upstream call', async () => {
    const res = await send({ toUserId: bob, text: 'hi' }, null as unknown as string);
    expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    expect(stack.sandbox.callCount()).toBe(0);
  });

  it('chat queries without a token are UNAUTHENTICATED before any upstream call', async () => {
    for (const query of [
      '{ chatHistory { id } }',
      '{ chatConversation(userId: "abc") { edges { cursor } } }',
      '{ ownedChatRooms { edges { cursor } } }',
      '{ chatRoomInvitations { edges { cursor } } }',
    ]) {
      const res = await stack.gql(query, {}, null);
      expect(res.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
    }
    expect(stack.sandbox.callCount()).toBe(0);
  });

  it('an unknown recipient is NOT_FOUND with the Misskey error attached', async () => {
    const res = await send({ toUserId: '0000000000000000', text: 'hi' });
    expect(res.errors?.[0]?.extensions).toMatchObject({
      code: 'NOT_FOUND',
      misskey: { code: 'NO_SUCH_USER', id: '11795c64-40ea-4198-b06e-3c873ed9039d', status: 400 },
    });
  });

  it("someone else's file is NOT_FOUND (NO_SUCH_FILE)", async () => {
    const bobsFile = await upload(DEMO_TOKENS.bob);
    const res = await send({ toUserId: bob, text: 'x', fileId: bobsFile });
    expect(res.errors?.[0]?.extensions).toMatchObject({
      code: 'NOT_FOUND',
      misskey: { code: 'NO_SUCH_FILE' },
    });
  });

  it("the recipient's chat scope is CHAT_SCOPE_DENIED, not a bare 500", async () => {
    const { user, token } = stack.sandbox.store.createUser('scoped1');
    await stack.rest('i/update', { chatScope: 'none' }, token);
    const res = await send({ toUserId: user.id, text: 'hi' });
    expect(res.errors?.[0]?.message).toMatch(/chat settings/);
    expect(res.errors?.[0]?.extensions).toMatchObject({
      code: 'CHAT_SCOPE_DENIED',
      misskey: { code: 'INTERNAL_ERROR', status: 500, reason: 'recipient is cannot chat (none)' },
    });
  });

  it('a recipient who blocked you is CHAT_BLOCKED', async () => {
    const { user, token } = stack.sandbox.store.createUser('blocker1');
    await stack.rest('i/update', { chatScope: 'everyone' }, token);
    await stack.rest('blocking/create', { userId: alice }, token);
    const res = await send({ toUserId: user.id, text: 'hi' });
    expect(res.errors?.[0]?.extensions?.code).toBe('CHAT_BLOCKED');
  });

  it('a room you are not in is CHAT_NOT_ROOM_MEMBER', async () => {
    const room = (await stack.rest('chat/rooms/create', { name: 'bobs' }, DEMO_TOKENS.bob)) as {
      id: string;
    };
    const res = await send({ toRoomId: room.id, text: 'let me in' });
    expect(res.errors?.[0]?.extensions).toMatchObject({
      code: 'CHAT_NOT_ROOM_MEMBER',
      misskey: { reason: 'you are not a member of the room' },
    });
  });

  it('sends to a room: the sender comes embedded (no users/show), the room loads on demand', async () => {
    const room = (await stack.rest('chat/rooms/create', { name: 'alices' })) as { id: string };
    stack.sandbox.resetCalls();
    const res = await send({ toRoomId: room.id, text: 'hello room' });
    expect(res.errors).toBeUndefined();
    expect(res.data?.sendChatMessage).toMatchObject({
      text: 'hello room',
      fromUser: { username: 'alice' },
      toUser: null,
      toRoom: { id: room.id, name: 'alices' },
    });
    expect(stack.sandbox.callCount('users/show')).toBe(0);
    expect(stack.sandbox.callCount('chat/rooms/show')).toBe(1);
  });
});

describe('reactions', () => {
  const REACT = /* GraphQL */ `
    mutation ($id: ID!, $reaction: String!) {
      reactToChatMessage(id: $id, reaction: $reaction) {
        messageId reaction message { ...M }
      }
    }
    ${MESSAGE}
  `;
  const UNREACT = /* GraphQL */ `
    mutation ($id: ID!, $reaction: String!) {
      unreactToChatMessage(id: $id, reaction: $reaction) { messageId reaction message { ...M } }
    }
    ${MESSAGE}
  `;

  it('the recipient reacts; the stored reaction and the updated message come back', async () => {
    const message = await dm('alice', bob, 'react to me');
    stack.sandbox.resetCalls();
    const res = await stack.gql<{
      reactToChatMessage: { messageId: string; reaction: string; message: Message };
    }>(REACT, { id: message.id, reaction: '❤️' }, DEMO_TOKENS.bob);
    expect(res.errors).toBeUndefined();
    expect(res.data?.reactToChatMessage).toMatchObject({
      messageId: message.id,
      reaction: '❤',
      message: { id: message.id, reactions: [{ reaction: '❤', user: { username: 'bob' } }] },
    });

    const undo = await stack.gql<{ unreactToChatMessage: { message: Message } }>(
      UNREACT,
      { id: message.id, reaction: '❤' },
      DEMO_TOKENS.bob,
    );
    expect(undo.errors).toBeUndefined();
    expect(undo.data?.unreactToChatMessage.message.reactions).toEqual([]);
  });

  it('in a direct conversation timeline the reactor is resolved as the recipient', async () => {
    const message = await dm('carol', bob, 'reactor test');
    await stack.rest(
      'chat/messages/react',
      { messageId: message.id, reaction: '👍' },
      DEMO_TOKENS.bob,
    );
    stack.sandbox.resetCalls();
    const res = await stack.gql<{
      chatConversation: { edges: { node: Message }[] };
    }>(
      `query ($u: ID!) { chatConversation(userId: $u, first: 1) { edges { node { ...M } } } } ${MESSAGE}`,
      { u: bob },
      DEMO_TOKENS.carol,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.chatConversation.edges[0]?.node.reactions).toEqual([
      { reaction: '👍', user: { username: 'bob' } },
    ]);
    expect(stack.sandbox.callCount('users/show')).toBe(1);
  });

  it.each(['notanemoji', '', 'heart', ':not valid:'])(
    'refuses %j as CHAT_INVALID_REACTION before any upstream call',
    async (reaction) => {
      const res = await stack.gql(REACT, { id: 'abc123', reaction }, DEMO_TOKENS.bob);
      expect(res.errors?.[0]?.extensions).toMatchObject({
        code: 'CHAT_INVALID_REACTION',
        argument: 'reaction',
      });
      expect(stack.sandbox.callCount()).toBe(0);
    },
  );

  it('an unknown custom emoji is CHAT_INVALID_REACTION from Misskey', async () => {
    const message = await dm('alice', bob, 'custom');
    const res = await stack.gql(REACT, { id: message.id, reaction: ':heart:' }, DEMO_TOKENS.bob);
    expect(res.errors?.[0]?.extensions).toMatchObject({
      code: 'CHAT_INVALID_REACTION',
      misskey: { reason: 'no such emoji' },
    });
    expect(stack.sandbox.callCount('chat/messages/react')).toBe(1);
  });

  it('reacting to your own message is CHAT_OWN_MESSAGE_REACTION', async () => {
    const message = await dm('alice', bob, 'mine');
    const res = await stack.gql(REACT, { id: message.id, reaction: '👍' });
    expect(res.errors?.[0]?.extensions?.code).toBe('CHAT_OWN_MESSAGE_REACTION');
  });

  it("reacting to someone else's conversation is CHAT_NOT_PARTICIPANT", async () => {
    const message = await dm('alice', bob, 'private');
    const res = await stack.gql(REACT, { id: message.id, reaction: '👍' }, DEMO_TOKENS.carol);
    expect(res.errors?.[0]?.extensions?.code).toBe('CHAT_NOT_PARTICIPANT');
  });

  it('an unknown message is NOT_FOUND (Misskey: EntityNotFound 500)', async () => {
    const res = await stack.gql(REACT, { id: '0000000000000000', reaction: '👍' });
    expect(res.errors?.[0]?.extensions).toMatchObject({
      code: 'NOT_FOUND',
      misskey: { code: 'INTERNAL_ERROR', status: 500 },
    });
  });
});

describe('lookups and deletion', () => {
  it('chatMessage(id) is null for an unknown message and for a malformed id is an error', async () => {
    const res = await stack.gql<{ chatMessage: Message | null }>(
      '{ chatMessage(id: "0000000000000000") { id } }',
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.chatMessage).toBeNull();
    const bad = await stack.gql('{ chatMessage(id: "a b") { id } }');
    expect(bad.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
  });

  it('the same message asked twice in one request is fetched once', async () => {
    const message = await dm('alice', bob, 'twice');
    stack.sandbox.resetCalls();
    const res = await stack.gql<{ a: Message; b: Message }>(
      `query ($id: ID!) { a: chatMessage(id: $id) { id text } b: chatMessage(id: $id) { id fromUser { username } } }`,
      { id: message.id },
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.a.text).toBe('twice');
    expect(res.data?.b.fromUser?.username).toBe('alice');
    expect(stack.sandbox.callCount('chat/messages/show')).toBe(1);
    expect(stack.sandbox.callCount('users/show')).toBe(0);
  });

  it('deleteChatMessage returns the id; deleting it again is NOT_FOUND', async () => {
    const message = await dm('alice', bob, 'delete me');
    const del = `mutation ($id: ID!) { deleteChatMessage(id: $id) }`;
    const res = await stack.gql<{ deleteChatMessage: string }>(del, { id: message.id });
    expect(res.data?.deleteChatMessage).toBe(message.id);
    const again = await stack.gql(del, { id: message.id });
    expect(again.errors?.[0]?.extensions).toMatchObject({
      code: 'NOT_FOUND',
      misskey: { code: 'NO_SUCH_MESSAGE' },
    });
  });
});

describe('history, search and read state', () => {
  it('chatHistory lists the latest message per conversation with isRead; reading clears it', async () => {
    const { token } = stack.sandbox.store.createUser('historian');
    const me = [...stack.sandbox.store.users.values()].find((u) => u.username === 'historian');
    await stack.rest('i/update', { chatScope: 'everyone' }, token);
    await dm('bob', me?.id ?? '', 'first from bob');
    await dm('bob', me?.id ?? '', 'second from bob');
    await dm('carol', me?.id ?? '', 'from carol');
    stack.sandbox.resetCalls();
    const q = `{ chatHistory(kind: DIRECT, first: 5) { ...M } } ${MESSAGE}`;
    const res = await stack.gql<{ chatHistory: Message[] }>(q, {}, token);
    expect(res.errors).toBeUndefined();
    expect(
      res.data?.chatHistory.map((m) => [
        m.text,
        m.fromUser?.username,
        m.toUser?.username,
        m.isRead,
      ]),
    ).toEqual([
      ['from carol', 'carol', 'historian', false],
      ['second from bob', 'bob', 'historian', false],
    ]);
    // History embeds every user: no users/show.
    expect(stack.sandbox.callCount()).toBe(1);

    // markAllChatMessagesRead clears only the global flag (Misskey): isRead stays false...
    const readAll = await stack.gql<{ markAllChatMessagesRead: boolean }>(
      'mutation { markAllChatMessagesRead }',
      {},
      token,
    );
    expect(readAll.data?.markAllChatMessagesRead).toBe(true);
    const after = await stack.gql<{ chatHistory: Message[] }>(q, {}, token);
    expect(after.data?.chatHistory.map((m) => m.isRead)).toEqual([false, false]);
    // ...while reading a conversation marks it read.
    await stack.gql(
      `query ($u: ID!) { chatConversation(userId: $u) { edges { cursor } } }`,
      { u: carol },
      token,
    );
    const read = await stack.gql<{ chatHistory: Message[] }>(q, {}, token);
    expect(read.data?.chatHistory.map((m) => m.isRead)).toEqual([true, false]);
  });

  it('chatHistory(kind: ROOM) carries the room; first above 100 is refused before any call', async () => {
    const room = (await stack.rest('chat/rooms/create', { name: 'history room' })) as {
      id: string;
    };
    await stack.rest('chat/messages/create-to-room', { toRoomId: room.id, text: 'room news' });
    stack.sandbox.resetCalls();
    const res = await stack.gql<{ chatHistory: Message[] }>(
      `{ chatHistory(kind: ROOM, first: 50) { ...M } } ${MESSAGE}`,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.chatHistory[0]).toMatchObject({
      text: 'room news',
      toRoom: { id: room.id, name: 'history room' },
      toUser: null,
    });
    expect(stack.sandbox.callCount()).toBe(1);

    stack.sandbox.resetCalls();
    const tooMany = await stack.gql('{ chatHistory(first: 101) { id } }');
    expect(tooMany.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(stack.sandbox.callCount()).toBe(0);
  });

  it('searchChatMessages finds text case-insensitively, in one call with users embedded', async () => {
    await dm('alice', carol, 'The Quarterly REPORT is ready');
    await dm('carol', alice, 'thanks for the report');
    stack.sandbox.resetCalls();
    const res = await stack.gql<{ searchChatMessages: Message[] }>(
      `query ($u: ID!) { searchChatMessages(query: "report", userId: $u, first: 10) { ...M } } ${MESSAGE}`,
      { u: carol },
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.searchChatMessages.map((m) => [m.text, m.fromUser?.username])).toEqual([
      ['thanks for the report', 'carol'],
      ['The Quarterly REPORT is ready', 'alice'],
    ]);
    expect(stack.sandbox.callCount()).toBe(1);
  });

  it('searchChatMessages refuses an empty query and both scopes before any call', async () => {
    const empty = await stack.gql('{ searchChatMessages(query: "") { id } }');
    expect(empty.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    const both = await stack.gql(
      '{ searchChatMessages(query: "x", userId: "abc", roomId: "def") { id } }',
    );
    expect(both.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(stack.sandbox.callCount()).toBe(0);
  });

  it('chatConversation with an unknown user is null', async () => {
    const res = await stack.gql<{ chatConversation: unknown }>(
      '{ chatConversation(userId: "0000000000000000") { edges { cursor } } }',
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.chatConversation).toBeNull();
  });

  it('User.chatMessages is the conversation with that user', async () => {
    await dm('bob', alice, 'via User.chatMessages');
    const res = await stack.gql<{
      user: { chatMessages: { edges: { node: Message }[] } };
    }>(
      `query ($u: ID!) { user(id: $u) { chatMessages(first: 1) { edges { node { ...M } } } } } ${MESSAGE}`,
      {
        u: bob,
      },
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.user.chatMessages.edges[0]?.node).toMatchObject({
      text: 'via User.chatMessages',
      fromUser: { username: 'bob' },
      toUser: { username: 'alice' },
    });
  });
});
