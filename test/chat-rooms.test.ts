import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorCode as code, DEMO_TOKENS, demoUserIds, type Stack, startStack } from './harness.js';

let stack: Stack;
let bob: string;
let carol: string;

beforeAll(async () => {
  stack = await startStack({ sandbox: { rateLimits: false } });
  ({ bob, carol } = demoUserIds(stack));
});
beforeEach(() => {
  stack.sandbox.resetCalls();
});

interface Room {
  id: string;
  name: string;
  description: string;
  owner: { username: string };
  isMuted: boolean;
  invitationExists: boolean;
}

const ROOM = 'id name description owner { username } isMuted invitationExists';

async function createRoom(name: string, token: string = DEMO_TOKENS.alice): Promise<string> {
  return ((await stack.rest('chat/rooms/create', { name }, token)) as { id: string }).id;
}

/** Invites and joins through the sandbox (setup, not under test). */
async function addMember(
  roomId: string,
  userId: string,
  token: string,
  ownerToken: string = DEMO_TOKENS.alice,
) {
  await stack.rest('chat/rooms/invitations/create', { roomId, userId }, ownerToken);
  await stack.rest('chat/rooms/join', { roomId }, token);
}

describe('room lifecycle', () => {
  it('creates, updates and deletes a room', async () => {
    const created = await stack.gql<{ createChatRoom: Room }>(
      `mutation { createChatRoom(input: { name: "Project", description: "Coordination" }) { ${ROOM} } }`,
    );
    expect(created.errors).toBeUndefined();
    const room = created.data?.createChatRoom;
    expect(room).toMatchObject({
      name: 'Project',
      description: 'Coordination',
      owner: { username: 'alice' },
      isMuted: false,
      invitationExists: false,
    });
    expect(stack.sandbox.callCount()).toBe(1);

    const updated = await stack.gql<{ updateChatRoom: Room }>(
      `mutation ($id: ID!) { updateChatRoom(input: { id: $id, name: "Project — Active" }) { ${ROOM} } }`,
      { id: room?.id },
    );
    expect(updated.data?.updateChatRoom).toMatchObject({
      name: 'Project — Active',
      description: 'Coordination',
    });

    const deleted = await stack.gql<{ deleteChatRoom: string }>(
      'mutation ($id: ID!) { deleteChatRoom(id: $id) }',
      { id: room?.id },
    );
    expect(deleted.data?.deleteChatRoom).toBe(room?.id);
    const gone = await stack.gql<{ chatRoom: Room | null }>(
      `query ($id: ID!) { chatRoom(id: $id) { ${ROOM} } }`,
      { id: room?.id },
    );
    expect(gone.errors).toBeUndefined();
    expect(gone.data?.chatRoom).toBeNull();
  });

  it.each([
    ['an update with no fields', 'mutation { updateChatRoom(input: { id: "abc123" }) { id } }'],
    [
      'a name over 256 characters',
      `mutation { createChatRoom(input: { name: "${'n'.repeat(257)}" }) { id } }`,
    ],
    [
      'a description over 1024 characters',
      `mutation { createChatRoom(input: { name: "x", description: "${'d'.repeat(1025)}" }) { id } }`,
    ],
    ['a malformed id', 'mutation { deleteChatRoom(id: "no/such") }'],
  ])('refuses %s before any upstream call', async (_name, query) => {
    const res = await stack.gql(query);
    expect(code(res)).toBe('BAD_USER_INPUT');
    expect(stack.sandbox.callCount()).toBe(0);
  });

  it("updating or deleting someone else's room is NOT_FOUND", async () => {
    const roomId = await createRoom('bob only', DEMO_TOKENS.bob);
    const update = await stack.gql(
      'mutation ($id: ID!) { updateChatRoom(input: { id: $id, name: "hijack" }) { id } }',
      { id: roomId },
    );
    expect(update.errors?.[0]?.extensions).toMatchObject({
      code: 'NOT_FOUND',
      misskey: { code: 'NO_SUCH_ROOM' },
    });
    const del = await stack.gql('mutation ($id: ID!) { deleteChatRoom(id: $id) }', { id: roomId });
    expect(code(del)).toBe('NOT_FOUND');
  });
});

describe('chatRoom lookup', () => {
  it('is null for an unknown room and for a room you cannot see', async () => {
    const hidden = await createRoom('hidden', DEMO_TOKENS.bob);
    for (const id of ['0000000000000000', hidden]) {
      const res = await stack.gql<{ chatRoom: Room | null }>(
        `query ($id: ID!) { chatRoom(id: $id) { ${ROOM} } }`,
        { id },
      );
      expect(res.errors).toBeUndefined();
      expect(res.data?.chatRoom).toBeNull();
    }
  });

  it('is null too when only messages are selected (the timeline tells)', async () => {
    const hidden = await createRoom('hidden 2', DEMO_TOKENS.bob);
    const res = await stack.gql<{ chatRoom: unknown }>(
      'query ($id: ID!) { chatRoom(id: $id) { id messages { edges { cursor } } } }',
      { id: hidden },
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.chatRoom).toBeNull();
  });

  it('an invitee sees the room but not its members, messages or invitations', async () => {
    const roomId = await createRoom('invitee view');
    await stack.rest('chat/rooms/invitations/create', { roomId, userId: carol });
    const full = await stack.gql<{
      chatRoom: { invitationExists: boolean; members: null; messages: null; invitations: null };
    }>(
      `query ($id: ID!) { chatRoom(id: $id) {
        invitationExists members { edges { cursor } } messages { edges { cursor } }
        invitations { edges { cursor } } } }`,
      { id: roomId },
      DEMO_TOKENS.carol,
    );
    expect(full.errors).toBeUndefined();
    expect(full.data?.chatRoom).toEqual({
      invitationExists: true,
      members: null,
      messages: null,
      invitations: null,
    });
    // Selecting only messages gives the same answer (fast path falls back to rooms/show).
    const fast = await stack.gql<{ chatRoom: { id: string; messages: null } }>(
      'query ($id: ID!) { chatRoom(id: $id) { id messages { edges { cursor } } } }',
      { id: roomId },
      DEMO_TOKENS.carol,
    );
    expect(fast.errors).toBeUndefined();
    expect(fast.data?.chatRoom).toEqual({ id: roomId, messages: null });
  });
});

describe('membership', () => {
  it('members lists joined users newest first, without the owner; owner is separate', async () => {
    const roomId = await createRoom('members');
    await addMember(roomId, bob, DEMO_TOKENS.bob);
    await addMember(roomId, carol, DEMO_TOKENS.carol);
    stack.sandbox.resetCalls();
    const res = await stack.gql<{
      chatRoom: {
        owner: { username: string };
        members: {
          edges: {
            cursor: string;
            node: { id: string; user: { username: string }; room: { id: string } };
          }[];
        };
      };
    }>(
      `query ($id: ID!) { chatRoom(id: $id) {
        owner { username }
        members(first: 10) { edges { cursor node { id createdAt user { username } room { id } } } }
      } }`,
      { id: roomId },
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.chatRoom.owner.username).toBe('alice');
    const edges = res.data?.chatRoom.members.edges ?? [];
    expect(edges.map((e) => e.node.user.username)).toEqual(['carol', 'bob']);
    expect(edges.every((e) => e.cursor === e.node.id && e.node.room.id === roomId)).toBe(true);
    // rooms/show + rooms/members; member users come embedded.
    expect(stack.sandbox.callCount()).toBe(2);
  });

  it('joinedChatRooms lists memberships only; owned rooms are in ownedChatRooms', async () => {
    const { user, token } = stack.sandbox.store.createUser('joiner');
    const owned = await createRoom('joiner owns', token);
    const joined = await createRoom('joiner joined', DEMO_TOKENS.bob);
    await addMember(joined, user.id, token, DEMO_TOKENS.bob);
    stack.sandbox.resetCalls();
    const res = await stack.gql<{
      joinedChatRooms: {
        edges: { cursor: string; node: { id: string; room: Room; user: { username: string } } }[];
      };
      ownedChatRooms: { edges: { node: Room }[] };
    }>(
      `{ joinedChatRooms { edges { cursor node { id room { ${ROOM} } user { username } } } }
         ownedChatRooms { edges { node { ${ROOM} } } } }`,
      {},
      token,
    );
    expect(res.errors).toBeUndefined();
    expect(res.data?.joinedChatRooms.edges.map((e) => e.node.room.id)).toEqual([joined]);
    expect(res.data?.joinedChatRooms.edges[0]?.node.room.owner.username).toBe('bob');
    expect(res.data?.joinedChatRooms.edges[0]?.node.user.username).toBe('joiner');
    expect(res.data?.ownedChatRooms.edges.map((e) => e.node.id)).toEqual([owned]);
  });

  it('joinChatRoom returns the room; leaveChatRoom returns its id', async () => {
    const roomId = await createRoom('join me');
    await stack.rest('chat/rooms/invitations/create', { roomId, userId: bob });
    const join = await stack.gql<{ joinChatRoom: Room }>(
      `mutation ($id: ID!) { joinChatRoom(id: $id) { ${ROOM} } }`,
      { id: roomId },
      DEMO_TOKENS.bob,
    );
    expect(join.errors).toBeUndefined();
    expect(join.data?.joinChatRoom).toMatchObject({ id: roomId, invitationExists: false });

    const again = await stack.gql(
      'mutation ($id: ID!) { joinChatRoom(id: $id) { id } }',
      { id: roomId },
      DEMO_TOKENS.bob,
    );
    expect(code(again)).toBe('CHAT_ALREADY_MEMBER');

    const leave = await stack.gql<{ leaveChatRoom: string }>(
      'mutation ($id: ID!) { leaveChatRoom(id: $id) }',
      { id: roomId },
      DEMO_TOKENS.bob,
    );
    expect(leave.data?.leaveChatRoom).toBe(roomId);
    const leaveAgain = await stack.gql(
      'mutation ($id: ID!) { leaveChatRoom(id: $id) }',
      { id: roomId },
      DEMO_TOKENS.bob,
    );
    expect(leaveAgain.errors?.[0]?.extensions).toMatchObject({
      code: 'CHAT_NOT_ROOM_MEMBER',
      misskey: { code: 'INTERNAL_ERROR', status: 500 },
    });
  });

  it('joining without an invitation is CHAT_NOT_INVITED; the owner joining is CHAT_ALREADY_MEMBER', async () => {
    const roomId = await createRoom('closed');
    const stranger = await stack.gql(
      'mutation ($id: ID!) { joinChatRoom(id: $id) { id } }',
      { id: roomId },
      DEMO_TOKENS.carol,
    );
    expect(stranger.errors?.[0]?.extensions).toMatchObject({
      code: 'CHAT_NOT_INVITED',
      misskey: { code: 'INTERNAL_ERROR' },
    });
    const owner = await stack.gql('mutation ($id: ID!) { joinChatRoom(id: $id) { id } }', {
      id: roomId,
    });
    expect(code(owner)).toBe('CHAT_ALREADY_MEMBER');
  });

  it('the owner cannot leave or mute (CHAT_OWNER_CANNOT_LEAVE / _MUTE)', async () => {
    const roomId = await createRoom('mine to keep');
    const leave = await stack.gql('mutation ($id: ID!) { leaveChatRoom(id: $id) }', { id: roomId });
    expect(leave.errors?.[0]?.extensions).toMatchObject({
      code: 'CHAT_OWNER_CANNOT_LEAVE',
      misskey: { code: 'INTERNAL_ERROR', status: 500 },
    });
    const mute = await stack.gql(
      'mutation ($id: ID!) { setChatRoomMuted(id: $id, muted: true) { id } }',
      { id: roomId },
    );
    expect(code(mute)).toBe('CHAT_OWNER_CANNOT_MUTE');
  });

  it('setChatRoomMuted returns the room with the new flag', async () => {
    const roomId = await createRoom('mutable');
    await addMember(roomId, bob, DEMO_TOKENS.bob);
    const mute = `mutation ($id: ID!, $m: Boolean!) { setChatRoomMuted(id: $id, muted: $m) { id isMuted } }`;
    const on = await stack.gql<{ setChatRoomMuted: Room }>(
      mute,
      { id: roomId, m: true },
      DEMO_TOKENS.bob,
    );
    expect(on.data?.setChatRoomMuted).toEqual({ id: roomId, isMuted: true });
    const off = await stack.gql<{ setChatRoomMuted: Room }>(
      mute,
      { id: roomId, m: false },
      DEMO_TOKENS.bob,
    );
    expect(off.data?.setChatRoomMuted).toEqual({ id: roomId, isMuted: false });
  });

  it('a full room (50 members) is CHAT_ROOM_FULL', async () => {
    const roomId = await createRoom('crowded');
    for (let i = 0; i < 50; i++) {
      const { user, token } = stack.sandbox.store.createUser(`crowd${i}`);
      await addMember(roomId, user.id, token);
    }
    const res = await stack.gql(
      'mutation ($r: ID!, $u: ID!) { inviteToChatRoom(roomId: $r, userId: $u) { id } }',
      { r: roomId, u: bob },
    );
    expect(res.errors?.[0]?.extensions).toMatchObject({
      code: 'CHAT_ROOM_FULL',
      misskey: { reason: 'room is full' },
    });
  });
});

describe('invitations', () => {
  const INVITE = `mutation ($r: ID!, $u: ID!) {
    inviteToChatRoom(roomId: $r, userId: $u) { id createdAt room { id name owner { username } } user { username } }
  }`;

  it('invites; the invitee sees it in chatRoomInvitations, the owner in ChatRoom.invitations', async () => {
    const roomId = await createRoom('party');
    const invited = await stack.gql<{
      inviteToChatRoom: {
        id: string;
        room: { id: string; owner: { username: string } };
        user: { username: string };
      };
    }>(INVITE, { r: roomId, u: carol });
    expect(invited.errors).toBeUndefined();
    const invitation = invited.data?.inviteToChatRoom;
    expect(invitation).toMatchObject({
      room: { id: roomId, owner: { username: 'alice' } },
      user: { username: 'carol' },
    });

    const inbox = await stack.gql<{
      chatRoomInvitations: { edges: { cursor: string; node: { id: string; room: Room } }[] };
    }>(
      `{ chatRoomInvitations(first: 10) { edges { cursor node { id room { ${ROOM} } } } } }`,
      {},
      DEMO_TOKENS.carol,
    );
    const mine = inbox.data?.chatRoomInvitations.edges.find((e) => e.node.id === invitation?.id);
    expect(mine?.cursor).toBe(invitation?.id);
    expect(mine?.node.room).toMatchObject({ id: roomId, invitationExists: true });

    const outbox = await stack.gql<{
      chatRoom: { invitations: { edges: { node: { id: string; user: { username: string } } }[] } };
    }>(
      'query ($id: ID!) { chatRoom(id: $id) { invitations { edges { node { id user { username } } } } } }',
      { id: roomId },
    );
    expect(outbox.data?.chatRoom.invitations.edges.map((e) => e.node.user.username)).toEqual([
      'carol',
    ]);

    // Ignoring hides it from the inbox; the owner still sees it and cannot invite again.
    const ignored = await stack.gql<{ ignoreChatRoomInvitation: string }>(
      'mutation ($r: ID!) { ignoreChatRoomInvitation(roomId: $r) }',
      { r: roomId },
      DEMO_TOKENS.carol,
    );
    expect(ignored.data?.ignoreChatRoomInvitation).toBe(roomId);
    const inboxAfter = await stack.gql<{
      chatRoomInvitations: { edges: { node: { id: string } }[] };
    }>('{ chatRoomInvitations { edges { node { id } } } }', {}, DEMO_TOKENS.carol);
    expect(inboxAfter.data?.chatRoomInvitations.edges.map((e) => e.node.id)).not.toContain(
      invitation?.id,
    );
    const reinvite = await stack.gql(INVITE, { r: roomId, u: carol });
    expect(reinvite.errors?.[0]?.extensions).toMatchObject({
      code: 'CHAT_ALREADY_INVITED',
      misskey: { reason: 'already invited' },
    });
    // An ignored invitation still lets the invitee join.
    const join = await stack.gql<{ joinChatRoom: Room }>(
      'mutation ($id: ID!) { joinChatRoom(id: $id) { id } }',
      { id: roomId },
      DEMO_TOKENS.carol,
    );
    expect(join.data?.joinChatRoom.id).toBe(roomId);
  });

  it.each([
    ['an existing member', 'CHAT_ALREADY_MEMBER', 'member'],
    ['yourself', 'CHAT_INVITE_SELF', 'self'],
    ['an unknown user', 'NOT_FOUND', 'unknown'],
  ])('inviting %s is %s', async (_name, expected, who) => {
    const roomId = await createRoom(`invite ${who}`);
    await addMember(roomId, bob, DEMO_TOKENS.bob);
    const userId =
      who === 'member'
        ? bob
        : who === 'self'
          ? stack.sandbox.demo?.users.alice.id
          : '0000000000000000';
    const res = await stack.gql(INVITE, { r: roomId, u: userId });
    expect(res.errors?.[0]?.extensions).toMatchObject({
      code: expected,
      misskey: { code: 'INTERNAL_ERROR', status: 500 },
    });
  });

  it('inviting to a room you do not own is NOT_FOUND; ignoring without an invitation is CHAT_NOT_INVITED', async () => {
    const roomId = await createRoom('not yours', DEMO_TOKENS.bob);
    const invite = await stack.gql(INVITE, { r: roomId, u: carol });
    expect(invite.errors?.[0]?.extensions).toMatchObject({
      code: 'NOT_FOUND',
      misskey: { code: 'NO_SUCH_ROOM' },
    });
    const ignore = await stack.gql('mutation ($r: ID!) { ignoreChatRoomInvitation(roomId: $r) }', {
      r: roomId,
    });
    expect(code(ignore)).toBe('CHAT_NOT_INVITED');
  });
});
