import type { Sandbox } from '../src/sandbox/server.js';

/** How much data the benchmark seeds (the full run's sizes are `FULL_SIZES`). */
export interface SeedSizes {
  users: number;
  conversations: number;
  messagesPerConversation: number;
  rooms: number;
  membersPerRoom: number;
  /** Rooms are spread over this many owners (`ownedChatRooms(first: 20)` then has 20 rooms). */
  roomOwners: number;
}

/** 1,000 rooms of 10 members from a pool of 1,000 users: (d) runs 10,000 subscriptions, 10 on
 *  each of 1,000 sockets (one per user, so 1,000 upstream streaming sockets). */
export const FULL_SIZES: SeedSizes = {
  users: 1_205,
  conversations: 100,
  messagesPerConversation: 500,
  rooms: 1_000,
  membersPerRoom: 10,
  roomOwners: 5,
};

export const QUICK_SIZES: SeedSizes = {
  users: 60,
  conversations: 4,
  messagesPerConversation: 60,
  rooms: 6,
  membersPerRoom: 10,
  roomOwners: 2,
};

export interface SeededUser {
  id: string;
  token: string;
}

/** What the workloads need to know about the seeded data (sent from the sandbox process). */
export interface BenchData {
  sizes: SeedSizes;
  users: SeededUser[];
  /** Each conversation as seen by `a`: `a` reads its messages with `b`. */
  conversations: { a: SeededUser; b: SeededUser }[];
  owners: SeededUser[];
  rooms: { id: string; ownerId: string; members: SeededUser[] }[];
  seedMs: number;
}

/**
 * Seeds the benchmark data through the sandbox's own endpoints (in-process, no HTTP): users who
 * follow their conversation partner, conversations of alternating messages, and rooms with
 * invited members who joined. Users come from the store directly (`admin/accounts/create` would
 * only add password hashing to the seed time). The sandbox must run without rate limits.
 */
export async function seedBench(sandbox: Sandbox, sizes: SeedSizes): Promise<BenchData> {
  const started = performance.now();
  const needed = sizes.conversations * 2 + sizes.roomOwners + sizes.membersPerRoom;
  if (sizes.users < needed) {
    throw new Error(`bench seed: ${sizes.users} users are too few, ${needed} are needed`);
  }
  const users: SeededUser[] = [];
  for (let i = 0; i < sizes.users; i++) {
    const { user, token } = sandbox.store.createUser(`bench${i}`, { name: `Bench User ${i}` });
    users.push({ id: user.id, token });
  }
  const at = (i: number): SeededUser => users[i % users.length] as SeededUser;

  // Conversations: users 2k and 2k+1 follow each other (Misskey's default chat scope is mutual).
  const conversations: BenchData['conversations'] = [];
  for (let k = 0; k < sizes.conversations; k++) {
    const a = at(2 * k);
    const b = at(2 * k + 1);
    await sandbox.call('following/create', { userId: b.id }, a.token);
    await sandbox.call('following/create', { userId: a.id }, b.token);
    for (let m = 0; m < sizes.messagesPerConversation; m++) {
      const [from, to] = m % 2 === 0 ? [a, b] : [b, a];
      await sandbox.call(
        'chat/messages/create-to-user',
        { toUserId: to.id, text: `message ${m} of conversation ${k}` },
        from.token,
      );
    }
    conversations.push({ a, b });
  }

  // Rooms: round-robin over the owners; members are the users after the conversations and the
  // owners, each room taking the next `membersPerRoom` of them (wrapping around).
  const firstOwner = sizes.conversations * 2;
  const owners = Array.from({ length: sizes.roomOwners }, (_v, i) => at(firstOwner + i));
  const firstMember = firstOwner + sizes.roomOwners;
  const memberPool = users.slice(firstMember);
  const rooms: BenchData['rooms'] = [];
  for (let r = 0; r < sizes.rooms; r++) {
    const owner = owners[r % owners.length] as SeededUser;
    const room = (await sandbox.call(
      'chat/rooms/create',
      { name: `Bench room ${r}`, description: `Room ${r} of the benchmark` },
      owner.token,
    )) as { id: string };
    const members: SeededUser[] = [];
    for (let j = 0; j < sizes.membersPerRoom; j++) {
      const member = memberPool[(r * sizes.membersPerRoom + j) % memberPool.length] as SeededUser;
      await sandbox.call(
        'chat/rooms/invitations/create',
        { roomId: room.id, userId: member.id },
        owner.token,
      );
      await sandbox.call('chat/rooms/join', { roomId: room.id }, member.token);
      members.push(member);
    }
    rooms.push({ id: room.id, ownerId: owner.id, members });
  }
  return {
    sizes,
    users,
    conversations,
    owners,
    rooms,
    seedMs: Math.round(performance.now() - started),
  };
}
