import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { customEmojis, markChatRead } from '../src/sandbox/chat/state.js';
import type { StreamEvent } from '../src/sandbox/registry.js';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Sandbox, type SandboxOptions, startSandbox } from '../src/sandbox/server.js';

/**
 * The sandbox's chat over real HTTP, checked against what Misskey 2026.5.4 does
 * (../shared/misskey/API.md §1.2–1.5 and the recordings): cursor order, read state, the
 * invitation life cycle, who may see and write what, reaction normalisation, the exact error
 * codes, ids and 500 reasons, stream events and the demo seed.
 */

interface Answer {
  status: number;
  // biome-ignore lint/suspicious/noExplicitAny: response bodies are inspected field by field
  body: any;
  headers: Headers;
}

interface User {
  id: string;
  token: string;
}

const sandboxes: Sandbox[] = [];
let sandbox: Sandbox;
let counter = 0;

async function start(options: SandboxOptions = {}): Promise<Sandbox> {
  const started = await startSandbox({ port: 0, ...options });
  sandboxes.push(started);
  return started;
}

beforeAll(async () => {
  sandbox = await start();
});
afterAll(async () => {
  await Promise.all(sandboxes.map((s) => s.close()));
});

async function api(
  endpoint: string,
  params: Record<string, unknown> = {},
  token: string | null = null,
  on: Sandbox = sandbox,
): Promise<Answer> {
  const headers: Record<string, string> = { 'content-type': 'application/json' };
  if (token !== null) {
    headers.authorization = `Bearer ${token}`;
  }
  const res = await fetch(`${on.origin}/api/${endpoint}`, {
    method: 'POST',
    headers,
    body: JSON.stringify(params),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? null : JSON.parse(text), headers: res.headers };
}

/** 200 or 204, else the test fails with Misskey's error. */
// biome-ignore lint/suspicious/noExplicitAny: see Answer.body
async function ok(...args: Parameters<typeof api>): Promise<any> {
  const answer = await api(...args);
  if (answer.status !== 200 && answer.status !== 204) {
    throw new Error(`${args[0]}: ${answer.status} ${JSON.stringify(answer.body)}`);
  }
  return answer.body;
}

async function newUser(
  on: Sandbox = sandbox,
  options: { moderator?: boolean } = {},
): Promise<User> {
  counter++;
  const created = await ok(
    'admin/accounts/create',
    { username: `chat${counter}`, password: 'pw' },
    DEMO_TOKENS.admin,
    on,
  );
  if (options.moderator) {
    const row = on.store.users.get(created.id);
    if (row) {
      row.isModerator = true;
    }
  }
  return { id: created.id, token: created.token };
}

async function follow(a: User, b: User, on: Sandbox = sandbox): Promise<void> {
  await ok('following/create', { userId: b.id }, a.token, on);
}

async function friends(...users: User[]): Promise<void> {
  for (const a of users) {
    for (const b of users) {
      if (a !== b) {
        await follow(a, b);
      }
    }
  }
}

async function dm(from: User, to: User, text: string | null, extra = {}): Promise<Answer['body']> {
  return ok('chat/messages/create-to-user', { toUserId: to.id, text, ...extra }, from.token);
}

/** A room of `owner` with `members` invited and joined. */
async function roomWith(owner: User, members: User[], on: Sandbox = sandbox): Promise<string> {
  const room = await ok('chat/rooms/create', { name: `room ${counter}` }, owner.token, on);
  for (const member of members) {
    await ok(
      'chat/rooms/invitations/create',
      { roomId: room.id, userId: member.id },
      owner.token,
      on,
    );
    await ok('chat/rooms/join', { roomId: room.id }, member.token, on);
  }
  return room.id;
}

async function upload(user: User): Promise<string> {
  const form = new FormData();
  const png = Buffer.from(
    'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR42mPQqDiBFTEMLQkAAtVaAbl+5LMAAAAASUVORK5CYII=',
    'base64',
  );
  form.append('file', new Blob([png], { type: 'image/png' }), 'pixel.png');
  const res = await fetch(`${sandbox.origin}/api/drive/files/create`, {
    method: 'POST',
    headers: { authorization: `Bearer ${user.token}` },
    body: form,
  });
  return ((await res.json()) as { id: string }).id;
}

function setChatAvailability(user: User, value: 'readonly' | 'unavailable'): void {
  const roleId = `role-${value}`;
  sandbox.store.roles.set(roleId, {
    id: roleId,
    name: value,
    policies: { chatAvailability: { value } },
  });
  sandbox.store.users.get(user.id)?.roleIds.push(roleId);
}

function expectError(answer: Answer, status: number, code: string, id?: string): void {
  expect(answer.status).toBe(status);
  expect(answer.body.error.code).toBe(code);
  if (id !== undefined) {
    expect(answer.body.error.id).toBe(id);
  }
}

/** A 500 INTERNAL_ERROR whose reason (`info.e.message`) is `reason`. */
function expectReason(answer: Answer, reason: string | RegExp): void {
  expectError(answer, 500, 'INTERNAL_ERROR', '5d37dbcb-891e-41ca-a3d6-e690c97775ac');
  expect(answer.body.error.info.e.message).toMatch(reason);
}

const ids = (list: { id: string }[]) => list.map((x) => x.id);

describe('pagination of timelines', () => {
  it('is newest first, except a sinceId-only page which is oldest first', async () => {
    const [a, b] = [await newUser(), await newUser()];
    await friends(a, b);
    const sent: string[] = [];
    for (let i = 0; i < 12; i++) {
      sent.push((await dm(i % 2 ? b : a, i % 2 ? a : b, `m${i}`)).id);
    }
    const page = (params: Record<string, unknown>) =>
      ok('chat/messages/user-timeline', { userId: b.id, ...params }, a.token).then(ids);

    expect(await page({})).toEqual(sent.slice(2).reverse()); // default limit 10
    expect(await page({ limit: 100 })).toEqual([...sent].reverse());
    expect(await page({ untilId: sent[5], limit: 2 })).toEqual([sent[4], sent[3]]);
    expect(await page({ sinceId: sent[5], limit: 2 })).toEqual([sent[6], sent[7]]);
    expect(await page({ sinceId: sent[5], untilId: sent[9] })).toEqual([sent[8], sent[7], sent[6]]);
    // A date cursor is an id cursor of that millisecond; 0 means no cursor.
    const future = Date.now() + 60_000;
    expect(await page({ sinceDate: 1, limit: 3 })).toEqual(sent.slice(0, 3));
    expect(await page({ untilDate: future, limit: 3 })).toEqual(sent.slice(9).reverse());
    expect(await page({ sinceDate: 0, limit: 3 })).toEqual(sent.slice(9).reverse());
    expect(await page({ sinceId: sent[0], untilDate: future, limit: 2 })).toEqual([
      sent[11],
      sent[10],
    ]);

    const limitZero = await api('chat/messages/user-timeline', { userId: b.id, limit: 0 }, a.token);
    expectError(limitZero, 400, 'INVALID_PARAM');
    expect(limitZero.body.error.info.param).toBe('#/properties/limit/minimum');
  });

  it('pages room members, owned rooms and invitations by their own ids, 30 by default', async () => {
    const owner = await newUser();
    const members = [await newUser(), await newUser(), await newUser()];
    const roomId = await roomWith(owner, members);
    const list = await ok('chat/rooms/members', { roomId }, owner.token);
    expect(list.map((m: { userId: string }) => m.userId)).toEqual(ids(members).reverse());
    const first = list[2].id;
    const after = await ok('chat/rooms/members', { roomId, sinceId: first }, owner.token);
    expect(after.map((m: { userId: string }) => m.userId)).toEqual([
      members[1]?.id,
      members[2]?.id,
    ]);
    expect(Object.keys(list[0]).sort()).toEqual(['createdAt', 'id', 'roomId', 'user', 'userId']);
  });
});

describe('read state', () => {
  it('a timeline call reads a conversation; read-all clears only the global flag', async () => {
    const [a, b] = [await newUser(), await newUser()];
    await friends(a, b);
    await dm(a, b, 'are you there?');
    const unreadFlag = async () => (await ok('i', {}, b.token)).hasUnreadChatMessages;
    const isRead = async () => (await ok('chat/history', {}, b.token))[0].isRead;

    expect(await unreadFlag()).toBe(true);
    expect(await isRead()).toBe(false);
    // The sender's own side is read.
    expect((await ok('chat/history', {}, a.token))[0].isRead).toBe(true);

    await ok('chat/read-all', {}, b.token);
    expect(await unreadFlag()).toBe(false);
    expect(await isRead()).toBe(false);

    await ok('chat/messages/user-timeline', { userId: a.id, limit: 1 }, b.token);
    expect(await isRead()).toBe(true);

    await dm(a, b, 'again');
    expect(await unreadFlag()).toBe(true);
    markChatRead(sandbox.store, b.id, { otherId: a.id });
    expect(await unreadFlag()).toBe(false);
    expect(await isRead()).toBe(true);
  });

  it('rooms: every other unmuted member gets a marker, the owner too; leaving clears it', async () => {
    const owner = await newUser();
    const [m1, m2] = [await newUser(), await newUser()];
    const roomId = await roomWith(owner, [m1, m2]);
    await ok('chat/rooms/mute', { roomId, mute: true }, m2.token);
    await ok('chat/messages/create-to-room', { toRoomId: roomId, text: 'hello' }, m1.token);

    const history = async (user: User) => (await ok('chat/history', { room: true }, user.token))[0];
    expect((await history(owner)).isRead).toBe(false);
    expect((await history(m1)).isRead).toBe(true);
    expect((await history(m2)).isRead).toBe(true); // muted: no marker
    expect((await history(m2)).toRoom.isMuted).toBe(true);

    await ok('chat/messages/create-to-room', { toRoomId: roomId, text: 'hi' }, owner.token);
    expect((await history(m1)).isRead).toBe(false);
    await ok('chat/rooms/leave', { roomId }, m1.token);
    expect((await ok('i', {}, m1.token)).hasUnreadChatMessages).toBe(false);

    await ok('chat/messages/room-timeline', { roomId }, owner.token);
    expect((await history(owner)).isRead).toBe(true);
  });
});

describe('history', () => {
  it('lists the latest message of each conversation, newest first, without muted users', async () => {
    const [me, x, y, z] = [await newUser(), await newUser(), await newUser(), await newUser()];
    await friends(me, x, y, z);
    await dm(me, x, 'x1');
    await dm(y, me, 'y1');
    const lastX = await dm(x, me, 'x2');
    await dm(me, z, 'z1');
    const history = await ok('chat/history', {}, me.token);
    expect(history.map((m: { text: string }) => m.text)).toEqual(['z1', 'x2', 'y1']);
    expect(history[1].id).toBe(lastX.id);
    expect(history[0]).not.toHaveProperty('toRoom');
    expect(await ok('chat/history', { limit: 2 }, me.token)).toHaveLength(2);

    await ok('mute/create', { userId: z.id }, me.token);
    expect((await ok('chat/history', {}, me.token)).map((m: { text: string }) => m.text)).toEqual([
      'x2',
      'y1',
    ]);
    expect(await ok('chat/history', { room: true }, me.token)).toEqual([]);
  });
});

describe('messages', () => {
  it('stores text trimmed, "" as null, and embeds an own file with userId null', async () => {
    const [a, b] = [await newUser(), await newUser()];
    await friends(a, b);
    expect((await dm(a, b, '  sure thing  ')).text).toBe('sure thing');
    expect((await dm(a, b, '')).text).toBeNull();
    expect((await dm(a, b, '   ')).text).toBe('');
    expectError(
      await api('chat/messages/create-to-user', { toUserId: b.id, text: null }, a.token),
      400,
      'CONTENT_REQUIRED',
      '25587321-b0e6-449c-9239-f8925092942c',
    );

    const fileId = await upload(a);
    const withFile = await dm(a, b, null, { fileId });
    expect(withFile).toMatchObject({ text: null, fileId, file: { id: fileId, userId: null } });
    expect(Object.keys(withFile).sort()).toEqual(
      ['createdAt', 'file', 'fileId', 'fromUserId', 'id', 'reactions', 'text', 'toUserId'].sort(),
    );
    expectError(
      await api('chat/messages/create-to-user', { toUserId: a.id, text: 'x', fileId }, b.token),
      400,
      'NO_SUCH_FILE',
      '4372b8e2-185d-4146-8749-2f68864a3e5f',
    );

    // Room timeline and search embed the owner's id; show and user-timeline do not.
    const roomId = await roomWith(a, [b]);
    await ok('chat/messages/create-to-room', { toRoomId: roomId, text: 'pic', fileId }, a.token);
    const [inRoom] = await ok('chat/messages/room-timeline', { roomId, limit: 1 }, b.token);
    expect(inRoom.file.userId).toBe(a.id);
    const [found] = await ok('chat/messages/search', { query: 'PIC' }, b.token);
    expect(found.file.userId).toBe(a.id);
    expect((await ok('chat/messages/show', { messageId: withFile.id }, b.token)).file.userId).toBe(
      null,
    );
  });

  it('refuses per Misskey: chat scope, policies, blocks, with 500 reasons', async () => {
    const [a, b, c] = [await newUser(), await newUser(), await newUser()];
    await follow(c, a); // c follows a, a does not follow c
    expectReason(
      await api('chat/messages/create-to-user', { toUserId: c.id, text: 'hi' }, a.token),
      'recipient is cannot chat (mutual)',
    );
    // Once c has written to a, a may answer whatever c's scope.
    await ok('i/update', { chatScope: 'everyone' }, a.token);
    await dm(c, a, 'hello a');
    await ok('i/update', { chatScope: 'none' }, c.token);
    expect((await dm(a, c, 'hello c')).text).toBe('hello c');

    await ok('i/update', { chatScope: 'following' }, b.token);
    expectReason(
      await api('chat/messages/create-to-user', { toUserId: b.id, text: 'x' }, a.token),
      'recipient is cannot chat (following)',
    );
    await follow(b, a);
    await dm(a, b, 'now b follows me');

    await ok('blocking/create', { userId: a.id }, b.token);
    await ok('i/update', { chatScope: 'everyone' }, b.token);
    expectReason(
      await api('chat/messages/create-to-user', { toUserId: b.id, text: 'x' }, a.token),
      'blocked',
    );

    const unavailable = await newUser();
    await ok('i/update', { chatScope: 'everyone' }, unavailable.token);
    setChatAvailability(unavailable, 'unavailable');
    expectReason(
      await api('chat/messages/create-to-user', { toUserId: unavailable.id, text: 'x' }, a.token),
      'recipient is cannot chat (policy)',
    );
    expectReason(await api('chat/history', {}, unavailable.token), 'ROLE_PERMISSION_DENIED');

    const readonly = await newUser();
    setChatAvailability(readonly, 'readonly');
    expect((await api('chat/history', {}, readonly.token)).status).toBe(200);
    expectReason(
      await api('chat/rooms/create', { name: 'ro' }, readonly.token),
      'ROLE_PERMISSION_DENIED',
    );

    expectError(
      await api('chat/messages/create-to-user', { toUserId: a.id, text: 'me' }, a.token),
      400,
      'RECIPIENT_IS_YOURSELF',
      '17e2ba79-e22a-4cbc-bf91-d327643f4a7e',
    );
    expectError(
      await api(
        'chat/messages/create-to-user',
        { toUserId: 'au0000000000zzzz', text: 'x' },
        a.token,
      ),
      400,
      'NO_SUCH_USER',
      '11795c64-40ea-4198-b06e-3c873ed9039d',
    );
    expectError(await api('chat/history', {}, null), 401, 'CREDENTIAL_REQUIRED');
  });

  it('lets only the sender delete, and only participants or moderators show', async () => {
    const [a, b, c] = [await newUser(), await newUser(), await newUser()];
    const moderator = await newUser(sandbox, { moderator: true });
    await friends(a, b);
    const message = await dm(a, b, 'to be deleted');
    expect((await ok('chat/messages/show', { messageId: message.id }, b.token)).toUser.id).toBe(
      b.id,
    );
    expect((await ok('chat/messages/show', { messageId: message.id }, moderator.token)).id).toBe(
      message.id,
    );
    const hidden = '3710865b-1848-4da9-8d61-cfed15510b93';
    expectError(
      await api('chat/messages/show', { messageId: message.id }, c.token),
      400,
      'NO_SUCH_MESSAGE',
      hidden,
    );
    const notYours = '36b67f0e-66a6-414b-83df-992a55294f17';
    expectError(
      await api('chat/messages/delete', { messageId: message.id }, b.token),
      400,
      'NO_SUCH_MESSAGE',
      notYours,
    );
    expect((await api('chat/messages/delete', { messageId: message.id }, a.token)).status).toBe(
      204,
    );
    expectError(
      await api('chat/messages/show', { messageId: message.id }, a.token),
      400,
      'NO_SUCH_MESSAGE',
      hidden,
    );

    // In a room, a member who is not the author cannot show it; the owner cannot delete it.
    const roomId = await roomWith(a, [b]);
    const inRoom = await ok(
      'chat/messages/create-to-room',
      { toRoomId: roomId, text: 'x' },
      b.token,
    );
    expectError(
      await api('chat/messages/show', { messageId: inRoom.id }, a.token),
      400,
      'NO_SUCH_MESSAGE',
      hidden,
    );
    expectError(
      await api('chat/messages/delete', { messageId: inRoom.id }, a.token),
      400,
      'NO_SUCH_MESSAGE',
      notYours,
    );
    const shown = await ok('chat/messages/show', { messageId: inRoom.id }, b.token);
    expect(shown).toMatchObject({ toUserId: null, toRoomId: roomId, toRoom: { id: roomId } });
    expect(shown).not.toHaveProperty('toUser');
  });

  it('searches case-insensitively within a DM, a room, or all of mine', async () => {
    const [a, b, c] = [await newUser(), await newUser(), await newUser()];
    await friends(a, b, c);
    await dm(a, b, 'Meeting at 3');
    await dm(a, c, 'the meeting notes');
    await dm(b, c, 'a meeting a does not see');
    const roomId = await roomWith(a, [b]);
    await ok('chat/messages/create-to-room', { toRoomId: roomId, text: 'MEETING room' }, b.token);
    const texts = (list: { text: string }[]) => list.map((m) => m.text);

    expect(texts(await ok('chat/messages/search', { query: 'meeting' }, a.token))).toEqual([
      'MEETING room',
      'the meeting notes',
      'Meeting at 3',
    ]);
    expect(
      texts(await ok('chat/messages/search', { query: 'meeting', userId: b.id }, a.token)),
    ).toEqual(['Meeting at 3']);
    expect(
      texts(await ok('chat/messages/search', { query: 'meeting', roomId, limit: 1 }, b.token)),
    ).toEqual(['MEETING room']);
    expectError(
      await api('chat/messages/search', { query: 'meeting', roomId }, c.token),
      400,
      'NO_SUCH_ROOM',
      '460b3669-81b0-4dc9-a997-44442141bf83',
    );
    expectError(await api('chat/messages/search', { query: '' }, a.token), 400, 'INVALID_PARAM');
  });
});

describe('reactions', () => {
  it('normalises emoji, keeps duplicates, and unreact removes every copy', async () => {
    const [a, b] = [await newUser(), await newUser()];
    await friends(a, b);
    const message = await dm(a, b, 'react to me');
    const react = (reaction: string, who = b) =>
      api('chat/messages/react', { messageId: message.id, reaction }, who.token);
    customEmojis(sandbox.store).add('blobcat');

    for (const reaction of ['❤️', '❤', 'nice 👍!', '👩‍💻', ':blobcat@.:', '🇯🇵']) {
      expect((await react(reaction)).status).toBe(204);
    }
    const reactions = async () =>
      (await ok('chat/messages/show', { messageId: message.id }, a.token)).reactions.map(
        (r: { reaction: string; user: { id: string } }) => r.reaction,
      );
    expect(await reactions()).toEqual(['❤', '❤', '👍', '👩‍💻', ':blobcat:', '🇯🇵']);

    expect(
      (await api('chat/messages/unreact', { messageId: message.id, reaction: '❤️' }, b.token))
        .status,
    ).toBe(204);
    expect(await reactions()).toEqual(['👍', '👩‍💻', ':blobcat:', '🇯🇵']);
    // A custom emoji that no longer exists can still be removed.
    customEmojis(sandbox.store).delete('blobcat');
    await ok('chat/messages/unreact', { messageId: message.id, reaction: ':blobcat:' }, b.token);
    expect(await reactions()).toEqual(['👍', '👩‍💻', '🇯🇵']);
    const [lite] = await ok('chat/messages/user-timeline', { userId: b.id, limit: 1 }, a.token);
    expect(lite.reactions).toEqual([{ reaction: '👍' }, { reaction: '👩‍💻' }, { reaction: '🇯🇵' }]);

    expectReason(await react(':blobcat:'), 'no such emoji');
    expectReason(await react('notanemoji'), 'invalid emoji');
    expectReason(await react('👍', a), 'cannot react to own message');
    const outsider = await newUser();
    expectReason(await react('👍', outsider), 'cannot react to others message');
    expectReason(
      await api('chat/messages/react', { messageId: 'au0000000000zzzz', reaction: '👍' }, b.token),
      'Could not find any entity of type "MiChatMessage" matching: {\n    "id": "au0000000000zzzz"\n}',
    );
  });
});

describe('rooms and invitations', () => {
  it('follows the invitation life cycle: inbox, ignore, outbox, join, leave, re-invite', async () => {
    const [owner, invitee, stranger] = [await newUser(), await newUser(), await newUser()];
    const room = await ok('chat/rooms/create', { name: 'Alpha' }, owner.token);
    expect(room).toMatchObject({ description: '', isMuted: false, invitationExists: false });
    const roomId = room.id;

    const invitation = await ok(
      'chat/rooms/invitations/create',
      { roomId, userId: invitee.id },
      owner.token,
    );
    expect(invitation).toMatchObject({ userId: invitee.id, user: { id: invitee.id }, roomId });
    expect(invitation.room.invitationExists).toBe(false); // packed for the owner
    const [inbox] = await ok('chat/rooms/invitations/inbox', {}, invitee.token);
    expect(inbox.id).toBe(invitation.id);
    expect(inbox.room.invitationExists).toBe(true);

    // Only the owner, members, invitees and moderators see the room.
    const noRoom = '857ae02f-8759-4d20-9adb-6e95fffe4fd7';
    expectError(
      await api('chat/rooms/show', { roomId }, stranger.token),
      400,
      'NO_SUCH_ROOM',
      noRoom,
    );
    expect((await ok('chat/rooms/show', { roomId }, invitee.token)).invitationExists).toBe(true);

    expect((await api('chat/rooms/invitations/ignore', { roomId }, invitee.token)).status).toBe(
      204,
    );
    expect(await ok('chat/rooms/invitations/inbox', {}, invitee.token)).toEqual([]);
    expect(ids(await ok('chat/rooms/invitations/outbox', { roomId }, owner.token))).toEqual([
      invitation.id,
    ]);
    expect((await ok('chat/rooms/show', { roomId }, invitee.token)).invitationExists).toBe(true);
    expectReason(
      await api('chat/rooms/invitations/create', { roomId, userId: invitee.id }, owner.token),
      'already invited',
    );

    // An ignored invitation still lets the invitee join, and the join consumes it.
    expect((await api('chat/rooms/join', { roomId }, invitee.token)).status).toBe(204);
    expect(await ok('chat/rooms/invitations/outbox', { roomId }, owner.token)).toEqual([]);
    expectReason(await api('chat/rooms/join', { roomId }, invitee.token), /MiChatRoomInvitation/);
    expectReason(
      await api('chat/rooms/invitations/create', { roomId, userId: invitee.id }, owner.token),
      'already member',
    );
    const [joined] = await ok('chat/rooms/joining', {}, invitee.token);
    expect(joined).toMatchObject({ roomId, userId: invitee.id, room: { id: roomId } });
    expect(joined).not.toHaveProperty('user');
    expect(await ok('chat/rooms/joining', {}, owner.token)).toEqual([]);
    expect(ids(await ok('chat/rooms/owned', {}, owner.token))).toContain(roomId);

    await ok('chat/rooms/mute', { roomId, mute: true }, invitee.token);
    expect((await ok('chat/rooms/show', { roomId }, invitee.token)).isMuted).toBe(true);

    expect((await api('chat/rooms/leave', { roomId }, invitee.token)).status).toBe(204);
    expectError(
      await api('chat/rooms/show', { roomId }, invitee.token),
      400,
      'NO_SUCH_ROOM',
      noRoom,
    );
    expect(
      (await api('chat/rooms/invitations/create', { roomId, userId: invitee.id }, owner.token))
        .status,
    ).toBe(200);
  });

  it('answers misuse with Misskey errors: ids per endpoint and TypeORM 500s', async () => {
    const [owner, member, other] = [await newUser(), await newUser(), await newUser()];
    const roomId = await roomWith(owner, [member]);
    const unknown = 'au0000000000zzzz';

    expectReason(
      await api('chat/rooms/leave', { roomId }, owner.token),
      `Could not find any entity of type "MiChatRoomMembership" matching: {\n    "roomId": "${roomId}",\n    "userId": "${owner.id}"\n}`,
    );
    expectReason(
      await api('chat/rooms/mute', { roomId, mute: true }, owner.token),
      /MiChatRoomMembership/,
    );
    expectReason(await api('chat/rooms/join', { roomId }, other.token), /MiChatRoomInvitation/);
    expectReason(
      await api('chat/rooms/invitations/ignore', { roomId }, other.token),
      /MiChatRoomInvitation/,
    );
    expectReason(
      await api('chat/rooms/invitations/create', { roomId, userId: owner.id }, owner.token),
      'yourself',
    );
    expectReason(
      await api('chat/rooms/invitations/create', { roomId, userId: unknown }, owner.token),
      /violates foreign key constraint/,
    );
    expectReason(
      await api('chat/rooms/update', { roomId }, owner.token),
      /update values are not defined/,
    );
    expectReason(
      await api('chat/messages/create-to-room', { toRoomId: roomId, text: 'x' }, other.token),
      'you are not a member of the room',
    );

    const cases: [string, Record<string, unknown>, User, string][] = [
      ['chat/rooms/update', { roomId, name: 'x' }, member, 'fcdb0f92-bda6-47f9-bd05-343e0e020932'],
      ['chat/rooms/delete', { roomId }, member, 'd4e3753d-97bf-4a19-ab8e-21080fbc0f4b'],
      ['chat/rooms/members', { roomId }, other, '7b9fe84c-eafc-4d21-bf89-485458ed2c18'],
      [
        'chat/rooms/invitations/create',
        { roomId, userId: other.id },
        member,
        '916f9507-49ba-4e90-b57f-1fd4deaa47a5',
      ],
      ['chat/rooms/invitations/outbox', { roomId }, member, 'a3c6b309-9717-4316-ae94-a69b53437237'],
      ['chat/messages/room-timeline', { roomId }, other, 'c4d9f88c-9270-4632-b032-6ed8cee36f7f'],
      [
        'chat/messages/create-to-room',
        { toRoomId: unknown, text: 'x' },
        owner,
        '8098520d-2da5-4e8f-8ee1-df78b55a4ec6',
      ],
      ['chat/rooms/show', { roomId: unknown }, owner, '857ae02f-8759-4d20-9adb-6e95fffe4fd7'],
    ];
    for (const [endpoint, params, user, id] of cases) {
      expectError(await api(endpoint, params, user.token), 400, 'NO_SUCH_ROOM', id);
    }

    // Moderators may read any room's timeline and delete it, but not list its members.
    const moderator = await newUser(sandbox, { moderator: true });
    expect((await api('chat/messages/room-timeline', { roomId }, moderator.token)).status).toBe(
      200,
    );
    expect((await api('chat/rooms/show', { roomId }, moderator.token)).status).toBe(200);
    expect((await api('chat/rooms/members', { roomId }, moderator.token)).status).toBe(400);
    expect((await api('chat/rooms/delete', { roomId }, moderator.token)).status).toBe(204);
    expect(await ok('chat/rooms/joining', {}, member.token)).toEqual([]);
    expect(await ok('chat/history', { room: true }, member.token)).toEqual([]);
  });

  it('holds 50 members besides the owner', async () => {
    const roomy = await start({ seed: 'demo', rateLimits: false });
    const owner = await newUser(roomy);
    const roomId = (await ok('chat/rooms/create', { name: 'big' }, owner.token, roomy)).id;
    const people: User[] = [];
    for (let i = 0; i < 52; i++) {
      people.push(await newUser(roomy));
    }
    for (const person of people.slice(0, 49)) {
      await ok('chat/rooms/invitations/create', { roomId, userId: person.id }, owner.token, roomy);
      await ok('chat/rooms/join', { roomId }, person.token, roomy);
    }
    const [fiftieth, late, refused] = people.slice(49) as [User, User, User];
    for (const person of [fiftieth, late]) {
      await ok('chat/rooms/invitations/create', { roomId, userId: person.id }, owner.token, roomy);
    }
    await ok('chat/rooms/join', { roomId }, fiftieth.token, roomy);
    expectReason(await api('chat/rooms/join', { roomId }, late.token, roomy), 'room is full');
    expectReason(
      await api(
        'chat/rooms/invitations/create',
        { roomId, userId: refused.id },
        owner.token,
        roomy,
      ),
      'room is full',
    );
    expect(await ok('chat/rooms/members', { roomId, limit: 100 }, owner.token, roomy)).toHaveLength(
      50,
    );
  });

  it('limits room creation to 10 a day per user', async () => {
    const user = await newUser();
    for (let i = 0; i < 10; i++) {
      await ok('chat/rooms/create', { name: `r${i}` }, user.token);
    }
    const refused = await api('chat/rooms/create', { name: 'one too many' }, user.token);
    expectError(refused, 429, 'RATE_LIMIT_EXCEEDED', 'd5826d14-3982-4d2e-8011-b9e9f02499ef');
    expect(refused.body.error.info.total).toBe(10);
    expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(86_000);
  });
});

describe('stream events', () => {
  it('publishes DM and room events, newChatMessage ~3 s later only if unread, invitations', async () => {
    const [a, b, c] = [await newUser(), await newUser(), await newUser()];
    await friends(a, b, c);
    const roomId = await roomWith(a, [b]);
    const events: (StreamEvent & { at: number })[] = [];
    // Earlier tests' timers fire too: only this test's users count.
    const mine = new Set([a, b, c].map((u) => `mainStream:${u.id}`));
    const listener = (event: StreamEvent) => events.push({ ...event, at: Date.now() });
    sandbox.events.on('event', listener);
    try {
      const started = Date.now();
      const unread = await dm(a, b, 'unread');
      const read = await dm(a, c, 'read in time');
      await ok('chat/messages/user-timeline', { userId: a.id }, c.token);
      await ok('chat/messages/react', { messageId: unread.id, reaction: '🎉' }, b.token);
      const inRoom = await ok(
        'chat/messages/create-to-room',
        { toRoomId: roomId, text: 'hi' },
        b.token,
      );
      await ok('chat/messages/react', { messageId: inRoom.id, reaction: '👍' }, a.token);
      await ok('chat/messages/delete', { messageId: inRoom.id }, b.token);
      const invitation = await ok(
        'chat/rooms/invitations/create',
        { roomId, userId: c.id },
        a.token,
      );

      const of = (stream: string, type: string) =>
        events.filter((e) => e.stream === stream && e.type === type);
      expect(of(`chatUserStream:${a.id}-${b.id}`, 'message')[0]?.body).toEqual(unread);
      expect(of(`chatUserStream:${b.id}-${a.id}`, 'message')[0]?.body).toEqual(unread);
      expect(of(`chatUserStream:${a.id}-${b.id}`, 'react')[0]?.body).toEqual({
        messageId: unread.id,
        reaction: '🎉',
      });
      expect(of(`chatRoomStream:${roomId}`, 'message')[0]?.body).toEqual(inRoom);
      expect(of(`chatRoomStream:${roomId}`, 'react')[0]?.body).toMatchObject({
        messageId: inRoom.id,
        user: { id: a.id },
        reaction: '👍',
      });
      expect(of(`chatRoomStream:${roomId}`, 'deleted')[0]?.body).toBe(inRoom.id);
      const notification = of(`mainStream:${c.id}`, 'notification')[0]?.body as Record<
        string,
        unknown
      >;
      expect(notification).toMatchObject({
        type: 'chatRoomInvitationReceived',
        userId: a.id,
        invitation: { id: invitation.id, room: { invitationExists: true } },
      });
      expect(events.some((e) => e.type === 'newChatMessage' && mine.has(e.stream))).toBe(false);

      await new Promise((resolve) => setTimeout(resolve, 3_300));
      const newMessages = events.filter((e) => e.type === 'newChatMessage' && mine.has(e.stream));
      // b's DM and a's room message (the owner is notified like any member); c had read.
      expect(newMessages.map((e) => [e.stream, (e.body as { id: string }).id]).sort()).toEqual(
        [
          [`mainStream:${b.id}`, unread.id],
          [`mainStream:${a.id}`, inRoom.id],
        ].sort(),
      );
      expect(newMessages.every((e) => e.at - started >= 2_900)).toBe(true);
      expect(newMessages.find((e) => e.stream === `mainStream:${b.id}`)?.body).toMatchObject({
        fromUser: { id: a.id },
        toUser: { id: b.id },
        toRoomId: null,
        reactions: [],
      });
      expect(
        events.some(
          (e) => (e.body as { id?: string })?.id === read.id && e.type === 'newChatMessage',
        ),
      ).toBe(false);
      expect(of(`mainStream:${c.id}`, 'unreadNotification')[0]?.body).toEqual(notification);
      expect((await ok('i', {}, c.token)).unreadNotificationsCount).toBeGreaterThan(0);
    } finally {
      sandbox.events.off('event', listener);
    }
  });
});

describe('demo seed', () => {
  it('has the alice–bob conversation, Project Alpha and a pending invitation, all read', async () => {
    const demo = sandbox.demo;
    if (!demo) {
      throw new Error('demo data expected');
    }
    const { alice, bob, carol } = demo.users;
    const conversation = await ok(
      'chat/messages/user-timeline',
      { userId: bob.id, limit: 100 },
      alice.token,
    );
    expect(conversation).toHaveLength(65);
    expect(conversation[0].id).toBe(demo.ids.directLatestMessage);
    expect(
      conversation.some((m: { fileId: string | null }) => m.fileId === demo.ids.chatFile),
    ).toBe(true);
    expect(conversation.some((m: { reactions: unknown[] }) => m.reactions.length > 0)).toBe(true);

    const room = await ok('chat/rooms/show', { roomId: demo.ids.room }, carol.token);
    expect(room).toMatchObject({ name: 'Project Alpha', ownerId: alice.id });
    const members = await ok('chat/rooms/members', { roomId: demo.ids.room }, alice.token);
    expect(members.map((m: { userId: string }) => m.userId).sort()).toEqual(
      [bob.id, carol.id].sort(),
    );
    expect(
      await ok('chat/messages/room-timeline', { roomId: demo.ids.room, limit: 100 }, bob.token),
    ).toHaveLength(12);

    const [pending] = await ok('chat/rooms/invitations/inbox', {}, alice.token);
    expect(pending).toMatchObject({
      id: demo.ids.pendingInvitation,
      roomId: demo.ids.pendingInvitationRoom,
    });
    expect((await ok('i', {}, alice.token)).hasUnreadChatMessages).toBe(false);
  });
});
