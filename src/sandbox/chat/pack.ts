import { createdAtOf } from '../ids.js';
import { packDriveFile, packUserLite } from '../pack.js';
import type { Store } from '../store.js';
import {
  type ChatInvitationRow,
  type ChatMembershipRow,
  type ChatMessageRow,
  type ChatRoomRow,
  chatState,
  invitationOf,
  membershipOf,
} from './state.js';

/**
 * Chat entities with the key sets of the recordings (../shared/misskey/recorded/chat.*.json).
 * `fileUserId`: Misskey embeds a message's file with `userId: null` when it packs the file by id
 * (create responses, user-timeline, show, history, stream events) and with the owner's id when the
 * file came joined with the messages (room-timeline, search).
 */
export type FileUserIdMode = 'owner' | 'null';

type Packed = Record<string, unknown>;

function userLite(store: Store, userId: string): Packed | null {
  const user = store.users.get(userId);
  return user ? packUserLite(store, user) : null;
}

function packFile(store: Store, fileId: string | null, mode: FileUserIdMode): Packed | null {
  if (fileId === null) {
    return null;
  }
  const file = store.driveFiles.get(fileId);
  return file ? packDriveFile(store, file, { userId: mode }) : null;
}

/** Reactions with their user; reactions of users that no longer exist are dropped. */
function reactionsWithUser(store: Store, message: ChatMessageRow): Packed[] {
  const reactions: Packed[] = [];
  for (const record of message.reactions) {
    const [userId = '', reaction = ''] = splitReaction(record);
    const user = userLite(store, userId);
    if (user) {
      reactions.push({ user, reaction });
    }
  }
  return reactions;
}

function splitReaction(record: string): [string, string] {
  const slash = record.indexOf('/');
  return [record.slice(0, slash), record.slice(slash + 1)];
}

/** `ChatRoom`; `viewer` null = packed without a viewer (`isMuted`/`invitationExists` false). */
export function packRoom(store: Store, room: ChatRoomRow, viewerId: string | null): Packed {
  const state = chatState(store);
  const other = viewerId !== null && viewerId !== room.ownerId;
  const membership = other ? membershipOf(state, room.id, viewerId) : undefined;
  const invitation = other ? invitationOf(state, room.id, viewerId) : undefined;
  return {
    id: room.id,
    createdAt: createdAtOf(room.id),
    name: room.name,
    description: room.description,
    ownerId: room.ownerId,
    owner: userLite(store, room.ownerId),
    isMuted: membership ? membership.isMuted : false,
    invitationExists: invitation !== undefined,
  };
}

/** `ChatMessage` (history, search, show, `newChatMessage`). */
export function packMessageDetailed(
  store: Store,
  message: ChatMessageRow,
  viewerId: string | null,
  fileUserId: FileUserIdMode,
): Packed {
  const packed: Packed = {
    id: message.id,
    createdAt: createdAtOf(message.id),
    text: message.text,
    fromUserId: message.fromUserId,
    fromUser: userLite(store, message.fromUserId),
    toUserId: message.toUserId,
  };
  if (message.toUserId !== null) {
    packed.toUser = userLite(store, message.toUserId);
  }
  packed.toRoomId = message.toRoomId;
  if (message.toRoomId !== null) {
    const room = chatState(store).rooms.get(message.toRoomId);
    packed.toRoom = room ? packRoom(store, room, viewerId) : null;
  }
  packed.fileId = message.fileId;
  packed.file = packFile(store, message.fileId, fileUserId);
  packed.reactions = reactionsWithUser(store, message);
  return packed;
}

/** `ChatMessageLiteFor1on1` (create-to-user, user-timeline, `chatUser` stream): no user objects. */
export function packMessageLiteFor1on1(store: Store, message: ChatMessageRow): Packed {
  return {
    id: message.id,
    createdAt: createdAtOf(message.id),
    text: message.text,
    fromUserId: message.fromUserId,
    toUserId: message.toUserId,
    fileId: message.fileId,
    file: packFile(store, message.fileId, 'null'),
    reactions: message.reactions.map((record) => ({ reaction: splitReaction(record)[1] })),
  };
}

/** `ChatMessageLiteForRoom` (create-to-room, room-timeline, `chatRoom` stream): no `toRoom`. */
export function packMessageLiteForRoom(
  store: Store,
  message: ChatMessageRow,
  fileUserId: FileUserIdMode,
): Packed {
  return {
    id: message.id,
    createdAt: createdAtOf(message.id),
    text: message.text,
    fromUserId: message.fromUserId,
    fromUser: userLite(store, message.fromUserId),
    toRoomId: message.toRoomId,
    fileId: message.fileId,
    file: packFile(store, message.fileId, fileUserId),
    reactions: reactionsWithUser(store, message),
  };
}

/** `ChatRoomInvitation`: `user` is the invitee, `room` is packed for the viewer. */
export function packInvitation(
  store: Store,
  invitation: ChatInvitationRow,
  viewerId: string,
): Packed {
  const room = chatState(store).rooms.get(invitation.roomId);
  return {
    id: invitation.id,
    createdAt: createdAtOf(invitation.id),
    roomId: invitation.roomId,
    room: room ? packRoom(store, room, viewerId) : null,
    userId: invitation.userId,
    user: userLite(store, invitation.userId),
  };
}

/** `ChatRoomMembership` with `user` (rooms/members) or `room` (rooms/joining). */
export function packMembership(
  store: Store,
  membership: ChatMembershipRow,
  viewerId: string,
  populate: 'user' | 'room',
): Packed {
  const packed: Packed = {
    id: membership.id,
    createdAt: createdAtOf(membership.id),
    userId: membership.userId,
  };
  if (populate === 'user') {
    packed.user = userLite(store, membership.userId);
  }
  packed.roomId = membership.roomId;
  if (populate === 'room') {
    const room = chatState(store).rooms.get(membership.roomId);
    packed.room = room ? packRoom(store, room, viewerId) : null;
  }
  return packed;
}
