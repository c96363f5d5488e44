import { createHash, randomUUID } from 'node:crypto';
import { markNotificationsRead } from '../chat/state.js';
import type { DemoSeeder } from '../demo.js';

/** An 8×8 PNG: the demo attachment. */
const DEMO_PNG = Buffer.from(
  'iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAAEUlEQVR42mPQqDiBFTEMLQkAAtVaAbl+5LMAAAAASUVORK5CYII=',
  'base64',
);

const DM_LINES = [
  'Morning! Did you see the new build?',
  'Yes, the chat page loads much faster now.',
  'The GraphQL gateway batches the user lookups.',
  'Nice. One users/show call instead of twenty?',
  'Exactly one. I counted.',
  'Can we ship it on Friday?',
  'If the contract tests stay green, sure.',
  'They are green. Want the screenshot?',
  'Please.',
  'Lunch first though.',
  'Ramen?',
  'Ramen.',
  'Back. Where were we?',
];

const ROOM_LINES = [
  'Welcome to Project Alpha!',
  'Thanks for the invite.',
  'Happy to be here.',
  'Agenda: schema review, then pagination.',
  'I pushed the connection types.',
  'Cursors are Misskey ids, right?',
  'Yes, after maps to untilId.',
  'And before maps to sinceId, ascending.',
  'Good catch, we reverse those pages.',
  'Streaming next?',
  'Tomorrow. Meeting at 10?',
  'See you at 10.',
];

/**
 * Demo chat data, built through the chat endpoints: a 65-message conversation between alice and
 * bob (some with reactions, a few with a picture), the room "Project Alpha" owned by alice with
 * bob and carol as members and a dozen messages, and a room of bob's whose invitation to alice is
 * left pending. Everything is read at the end, so no `newChatMessage` or `unreadNotification`
 * from the seed reaches a socket opened right after start.
 */
export const seedChat: DemoSeeder = async (sandbox, demo) => {
  const call: Call = (endpoint, params, token) =>
    sandbox.call(endpoint, params, token) as Promise<{ id: string }>;
  const fileId = seedFile(sandbox.store, demo);
  await seedConversation(call, demo, fileId);
  await seedRoom(call, demo);
  await seedPendingInvitation(call, demo);
  // Everything read: no late announcement of the seed reaches a socket opened after start.
  const { alice, bob, carol } = demo.users;
  await call('chat/messages/user-timeline', { userId: bob.id, limit: 1 }, alice.token);
  await call('chat/messages/user-timeline', { userId: alice.id, limit: 1 }, bob.token);
  for (const person of [alice, bob, carol]) {
    await call('chat/messages/room-timeline', { roomId: demo.ids.room, limit: 1 }, person.token);
    markNotificationsRead(sandbox.store, person.id);
  }
};

type Call = (
  endpoint: string,
  params: Record<string, unknown>,
  token: string,
) => Promise<{ id: string }>;
type Demo = Parameters<DemoSeeder>[1];

const REACTIONS = ['👍', '❤', '🎉', '😆'];

/** alice's whiteboard photo, stored directly: drive/files/create needs a multipart upload,
 *  which in-process calls cannot send. */
function seedFile(store: Parameters<DemoSeeder>[0]['store'], demo: Demo): string {
  const fileId = store.ids.gen();
  store.driveFiles.set(fileId, {
    id: fileId,
    userId: demo.users.alice.id,
    name: 'whiteboard.png',
    type: 'image/png',
    md5: createHash('md5').update(DEMO_PNG).digest('hex'),
    size: DEMO_PNG.length,
    comment: 'photo of the whiteboard',
    isSensitive: false,
    properties: { width: 8, height: 8 },
    blurhash: 'e3IsOm.A=u.A=v.AD+WB9bWB=tWBf6WBf6.A9bWB9HWB=uWBf6WBf6',
    accessKey: randomUUID(),
  });
  demo.ids.chatFile = fileId;
  return fileId;
}

/** 65 messages between alice and bob, some with the photo, every fifth reacted to. */
async function seedConversation(call: Call, demo: Demo, fileId: string): Promise<void> {
  const { alice, bob } = demo.users;
  for (let i = 0; i < 65; i++) {
    const [from, to] = i % 2 === 0 ? [alice, bob] : [bob, alice];
    const withFile = from === alice && i % 20 === 10;
    const message = await call(
      'chat/messages/create-to-user',
      {
        toUserId: to.id,
        text: `${DM_LINES[i % DM_LINES.length]}${i >= DM_LINES.length ? ` (${i + 1})` : ''}`,
        ...(withFile ? { fileId } : {}),
      },
      from.token,
    );
    if (i % 5 === 1) {
      await call(
        'chat/messages/react',
        { messageId: message.id, reaction: REACTIONS[i % REACTIONS.length] },
        to.token,
      );
    }
    if (i === 0) {
      demo.ids.directFirstMessage = message.id;
    }
    demo.ids.directLatestMessage = message.id;
  }
}

/** alice's room with bob and carol as members, and its messages and reactions. */
async function seedRoom(call: Call, demo: Demo): Promise<void> {
  const { alice, bob, carol } = demo.users;
  const room = await call(
    'chat/rooms/create',
    { name: 'Project Alpha', description: 'Planning the GraphQL gateway' },
    alice.token,
  );
  demo.ids.room = room.id;
  for (const member of [bob, carol]) {
    await call(
      'chat/rooms/invitations/create',
      { roomId: room.id, userId: member.id },
      alice.token,
    );
    await call('chat/rooms/join', { roomId: room.id }, member.token);
  }
  const people = [alice, bob, carol];
  for (let i = 0; i < ROOM_LINES.length; i++) {
    const from = people[i % people.length] ?? alice;
    const message = await call(
      'chat/messages/create-to-room',
      { toRoomId: room.id, text: ROOM_LINES[i] },
      from.token,
    );
    if (i % 3 === 0) {
      for (const reactor of people.filter((p) => p !== from)) {
        await call(
          'chat/messages/react',
          { messageId: message.id, reaction: REACTIONS[i % REACTIONS.length] },
          reactor.token,
        );
      }
    }
    demo.ids.roomLatestMessage = message.id;
  }
}

/** bob's lounge, whose invitation to alice is left pending. */
async function seedPendingInvitation(call: Call, demo: Demo): Promise<void> {
  const { alice, bob } = demo.users;
  const lounge = await call(
    'chat/rooms/create',
    { name: "Bob's lounge", description: 'Off-topic' },
    bob.token,
  );
  const pending = await call(
    'chat/rooms/invitations/create',
    { roomId: lounge.id, userId: alice.id },
    bob.token,
  );
  demo.ids.pendingInvitationRoom = lounge.id;
  demo.ids.pendingInvitation = pending.id;
}
