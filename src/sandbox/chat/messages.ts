import { apiError, internalError } from '../errors.js';
import { packUserLite } from '../pack.js';
import type { EndpointContext, EndpointDef } from '../registry.js';
import type { Store, UserRow } from '../store.js';
import { packMessageDetailed, packMessageLiteFor1on1, packMessageLiteForRoom } from './pack.js';
import {
  type ChatMessageRow,
  type ChatRoomRow,
  type ChatState,
  chatState,
  isRoomMember,
  isUnread,
  markChatRead,
  membershipsOfRoom,
  setUnread,
} from './state.js';
import {
  byIdDesc,
  type CursorParams,
  canChat,
  checkChatAvailability,
  entityNotFound,
  isModerator,
  normalizeReaction,
  paginate,
} from './support.js';

const HOUR = 3_600_000;
const MAX_REACTIONS_PER_MESSAGE = 100;
/** Misskey publishes `newChatMessage` this long after a message if it is still unread. */
const NEW_MESSAGE_DELAY_MS = 3_000;

function ownFile(store: Store, user: UserRow, fileId: string | undefined): string | null | false {
  if (fileId === undefined) {
    return null;
  }
  const file = store.driveFiles.get(fileId);
  return file && file.userId === user.id ? file.id : false;
}

/** Misskey stores `text.trim()`, and an empty string as null. */
function storedText(text: string | null | undefined): string | null {
  return text ? text.trim() : null;
}

function isDirectBetween(message: ChatMessageRow, a: string, b: string): boolean {
  return (
    message.toRoomId === null &&
    ((message.fromUserId === a && message.toUserId === b) ||
      (message.fromUserId === b && message.toUserId === a))
  );
}

/** Misskey's `createMessageToUser` after the endpoint's own checks. */
function sendToUser(
  ctx: EndpointContext,
  from: UserRow,
  to: UserRow,
  text: string | null,
  fileId: string | null,
): ChatMessageRow {
  const { store } = ctx;
  const state = chatState(store);
  if (from.id === to.id) {
    throw internalError('yourself');
  }
  const otherApprovedMe = state.approvals.has(`${to.id}>${from.id}`);
  if (!otherApprovedMe) {
    const follows = store.isFollowing(from.id, to.id);
    const followed = store.isFollowing(to.id, from.id);
    const allowed =
      to.chatScope === 'everyone' ||
      (to.chatScope === 'followers' && follows) ||
      (to.chatScope === 'following' && followed) ||
      (to.chatScope === 'mutual' && follows && followed);
    if (!allowed) {
      throw internalError(`recipient is cannot chat (${to.chatScope})`);
    }
  }
  if (!canChat(store, to, 'write')) {
    throw internalError('recipient is cannot chat (policy)');
  }
  if (store.isBlocking(to.id, from.id)) {
    throw internalError('blocked');
  }
  const message: ChatMessageRow = {
    id: store.ids.gen(),
    fromUserId: from.id,
    toUserId: to.id,
    toRoomId: null,
    text,
    fileId,
    reactions: [],
  };
  state.messages.set(message.id, message);
  state.approvals.add(`${from.id}>${to.id}`);
  setUnread(state, to.id, { otherId: from.id }, message.id);

  const lite = packMessageLiteFor1on1(store, message);
  ctx.publish({ stream: `chatUserStream:${from.id}-${to.id}`, type: 'message', body: lite });
  ctx.publish({ stream: `chatUserStream:${to.id}-${from.id}`, type: 'message', body: lite });

  // Packed from the message as inserted, like Misskey's timer, even if it changed since.
  const inserted = { ...message, reactions: [] };
  ctx.later(NEW_MESSAGE_DELAY_MS, () => {
    if (!isUnread(state, to.id, { otherId: from.id })) {
      return;
    }
    ctx.publish({
      stream: `mainStream:${to.id}`,
      type: 'newChatMessage',
      body: packMessageDetailed(store, inserted, to.id, 'null'),
    });
  });
  return message;
}

/** Misskey's `createMessageToRoom` after the endpoint's own checks. */
function sendToRoom(
  ctx: EndpointContext,
  from: UserRow,
  room: ChatRoomRow,
  text: string | null,
  fileId: string | null,
): ChatMessageRow {
  const { store } = ctx;
  const state = chatState(store);
  const members = membershipsOfRoom(state, room.id)
    .map((m) => ({ userId: m.userId, isMuted: m.isMuted }))
    .concat({ userId: room.ownerId, isMuted: false });
  if (!members.some((m) => m.userId === from.id)) {
    throw internalError('you are not a member of the room');
  }
  const others = members.filter((m) => m.userId !== from.id);
  const message: ChatMessageRow = {
    id: store.ids.gen(),
    fromUserId: from.id,
    toUserId: null,
    toRoomId: room.id,
    text,
    fileId,
    reactions: [],
  };
  state.messages.set(message.id, message);
  ctx.publish({
    stream: `chatRoomStream:${room.id}`,
    type: 'message',
    body: packMessageLiteForRoom(store, message, 'null'),
  });
  for (const member of others) {
    if (!member.isMuted) {
      setUnread(state, member.userId, { roomId: room.id }, message.id);
    }
  }

  const inserted = { ...message, reactions: [] };
  ctx.later(NEW_MESSAGE_DELAY_MS, () => {
    // Misskey reads the marker of every other member, muted ones included (an older unread
    // marker of a member who muted the room since still counts).
    const unread = others.filter((m) => isUnread(state, m.userId, { roomId: room.id }));
    if (unread.length === 0) {
      return;
    }
    // Packed without a viewer: `toRoom.isMuted` and `invitationExists` are false for everyone.
    const packed = packMessageDetailed(store, inserted, null, 'null');
    for (const member of unread) {
      ctx.publish({ stream: `mainStream:${member.userId}`, type: 'newChatMessage', body: packed });
    }
  });
  return message;
}

function roomOfMessage(state: ChatState, message: ChatMessageRow): ChatRoomRow | null {
  if (message.toRoomId === null) {
    return null;
  }
  const room = state.rooms.get(message.toRoomId);
  if (!room) {
    throw entityNotFound('MiChatRoom', { id: message.toRoomId });
  }
  return room;
}

function publishReaction(
  ctx: EndpointContext,
  message: ChatMessageRow,
  room: ChatRoomRow | null,
  type: 'react' | 'unreact',
  user: UserRow,
  reaction: string,
): void {
  if (room) {
    ctx.publish({
      stream: `chatRoomStream:${room.id}`,
      type,
      body: { messageId: message.id, user: packUserLite(ctx.store, user), reaction },
    });
    return;
  }
  const body = { messageId: message.id, reaction };
  ctx.publish({ stream: `chatUserStream:${message.fromUserId}-${message.toUserId}`, type, body });
  ctx.publish({ stream: `chatUserStream:${message.toUserId}-${message.fromUserId}`, type, body });
}

/** The latest message of each DM conversation (`room: false`) or room, newest first. */
function history(store: Store, user: UserRow, room: boolean, limit: number): ChatMessageRow[] {
  const state = chatState(store);
  const latest: ChatMessageRow[] = [];
  const seen = new Set<string>();
  const messages = [...state.messages.values()].sort(byIdDesc);
  if (room) {
    const roomIds = new Set<string>();
    for (const r of state.rooms.values()) {
      if (isRoomMember(state, r, user.id)) {
        roomIds.add(r.id);
      }
    }
    for (const message of messages) {
      if (latest.length >= limit) {
        break;
      }
      const roomId = message.toRoomId;
      if (roomId !== null && roomIds.has(roomId) && !seen.has(roomId)) {
        seen.add(roomId);
        latest.push(message);
      }
    }
    return latest;
  }
  for (const message of messages) {
    if (latest.length >= limit) {
      break;
    }
    if (message.toRoomId !== null || message.toUserId === null) {
      continue;
    }
    if (message.fromUserId !== user.id && message.toUserId !== user.id) {
      continue;
    }
    // Conversations with users I mute are left out (blocks are not).
    if (store.isMuting(user.id, message.fromUserId) || store.isMuting(user.id, message.toUserId)) {
      continue;
    }
    const otherId = message.fromUserId === user.id ? message.toUserId : message.fromUserId;
    if (!seen.has(otherId)) {
      seen.add(otherId);
      latest.push(message);
    }
  }
  return latest;
}

export const chatMessageEndpoints: EndpointDef[] = [
  {
    name: 'chat/history',
    handler: (ctx: EndpointContext<{ limit: number; room: boolean }>) => {
      const user = checkChatAvailability(ctx, 'read');
      const { store, params } = ctx;
      const state = chatState(store);
      return history(store, user, params.room, params.limit).map((message) => {
        const target =
          message.toRoomId !== null
            ? { roomId: message.toRoomId }
            : {
                otherId:
                  message.fromUserId === user.id ? (message.toUserId ?? '') : message.fromUserId,
              };
        return {
          ...packMessageDetailed(store, message, user.id, 'null'),
          isRead: !isUnread(state, user.id, target),
        };
      });
    },
  },
  {
    name: 'chat/read-all',
    handler: (ctx) => {
      const user = checkChatAvailability(ctx, 'read');
      // Only the global flag: the per-conversation markers (history `isRead`) stay.
      chatState(ctx.store).unread.delete(user.id);
      return null;
    },
  },
  {
    name: 'chat/messages/create-to-user',
    limit: { duration: HOUR, max: 500 },
    handler: (
      ctx: EndpointContext<{ toUserId: string; text?: string | null; fileId?: string }>,
    ) => {
      const user = checkChatAvailability(ctx, 'write');
      const { store, params } = ctx;
      const fileId = ownFile(store, user, params.fileId);
      if (fileId === false) {
        throw apiError('NO_SUCH_FILE', '4372b8e2-185d-4146-8749-2f68864a3e5f', 'No such file.');
      }
      if (params.text == null && fileId === null) {
        throw apiError(
          'CONTENT_REQUIRED',
          '25587321-b0e6-449c-9239-f8925092942c',
          'Content required. You need to set text or fileId.',
        );
      }
      if (params.toUserId === user.id) {
        throw apiError(
          'RECIPIENT_IS_YOURSELF',
          '17e2ba79-e22a-4cbc-bf91-d327643f4a7e',
          'You can not send a message to yourself.',
        );
      }
      const to = store.users.get(params.toUserId);
      if (!to) {
        throw apiError('NO_SUCH_USER', '11795c64-40ea-4198-b06e-3c873ed9039d', 'No such user.');
      }
      const message = sendToUser(ctx, user, to, storedText(params.text), fileId);
      return packMessageLiteFor1on1(store, message);
    },
  },
  {
    name: 'chat/messages/create-to-room',
    limit: { duration: HOUR, max: 500 },
    handler: (
      ctx: EndpointContext<{ toRoomId: string; text?: string | null; fileId?: string }>,
    ) => {
      const user = checkChatAvailability(ctx, 'write');
      const { store, params } = ctx;
      const room = chatState(store).rooms.get(params.toRoomId);
      if (!room) {
        throw apiError('NO_SUCH_ROOM', '8098520d-2da5-4e8f-8ee1-df78b55a4ec6', 'No such room.');
      }
      const fileId = ownFile(store, user, params.fileId);
      if (fileId === false) {
        throw apiError('NO_SUCH_FILE', 'b6accbd3-1d7b-4d9f-bdb7-eb185bac06db', 'No such file.');
      }
      if (params.text == null && fileId === null) {
        throw apiError(
          'CONTENT_REQUIRED',
          '340517b7-6d04-42c0-bac1-37ee804e3594',
          'Content required. You need to set text or fileId.',
        );
      }
      const message = sendToRoom(ctx, user, room, storedText(params.text), fileId);
      return packMessageLiteForRoom(store, message, 'null');
    },
  },
  {
    name: 'chat/messages/delete',
    handler: (ctx: EndpointContext<{ messageId: string }>) => {
      const user = checkChatAvailability(ctx, 'write');
      const state = chatState(ctx.store);
      const message = state.messages.get(ctx.params.messageId);
      // Only the sender: the recipient, the room owner and moderators get NO_SUCH_MESSAGE too.
      if (!message || message.fromUserId !== user.id) {
        throw apiError(
          'NO_SUCH_MESSAGE',
          '36b67f0e-66a6-414b-83df-992a55294f17',
          'No such message.',
        );
      }
      state.messages.delete(message.id);
      if (message.toUserId !== null) {
        const body = message.id;
        ctx.publish({
          stream: `chatUserStream:${message.fromUserId}-${message.toUserId}`,
          type: 'deleted',
          body,
        });
        ctx.publish({
          stream: `chatUserStream:${message.toUserId}-${message.fromUserId}`,
          type: 'deleted',
          body,
        });
      } else if (message.toRoomId !== null) {
        ctx.publish({
          stream: `chatRoomStream:${message.toRoomId}`,
          type: 'deleted',
          body: message.id,
        });
      }
      return null;
    },
  },
  {
    name: 'chat/messages/react',
    handler: (ctx: EndpointContext<{ messageId: string; reaction: string }>) => {
      const user = checkChatAvailability(ctx, 'write');
      const { store, params } = ctx;
      const state = chatState(store);
      const reaction = normalizeReaction(store, params.reaction, true);
      const message = state.messages.get(params.messageId);
      if (!message) {
        throw entityNotFound('MiChatMessage', { id: params.messageId });
      }
      if (message.fromUserId === user.id) {
        throw internalError('cannot react to own message');
      }
      if (message.toRoomId === null && message.toUserId !== user.id) {
        throw internalError('cannot react to others message');
      }
      if (message.reactions.length >= MAX_REACTIONS_PER_MESSAGE) {
        throw internalError('too many reactions');
      }
      const room = roomOfMessage(state, message);
      if (room && !isRoomMember(state, room, user.id)) {
        throw internalError('cannot react to others message');
      }
      // No de-duplication: the same user and reaction may appear several times.
      message.reactions.push(`${user.id}/${reaction}`);
      publishReaction(ctx, message, room, 'react', user, reaction);
      return null;
    },
  },
  {
    name: 'chat/messages/unreact',
    handler: (ctx: EndpointContext<{ messageId: string; reaction: string }>) => {
      const user = checkChatAvailability(ctx, 'write');
      const { store, params } = ctx;
      const state = chatState(store);
      // A custom emoji need not exist any more: its reaction can still be removed.
      const reaction = normalizeReaction(store, params.reaction, false);
      const message = state.messages.get(params.messageId);
      if (!message) {
        throw entityNotFound('MiChatMessage', { id: params.messageId });
      }
      const room = roomOfMessage(state, message);
      const record = `${user.id}/${reaction}`;
      message.reactions = message.reactions.filter((r) => r !== record);
      // Published even when nothing was removed.
      publishReaction(ctx, message, room, 'unreact', user, reaction);
      return null;
    },
  },
  {
    name: 'chat/messages/user-timeline',
    handler: (ctx: EndpointContext<CursorParams & { userId: string }>) => {
      const user = checkChatAvailability(ctx, 'read');
      const { store, params } = ctx;
      const other = store.users.get(params.userId);
      if (!other) {
        throw apiError('NO_SUCH_USER', '11795c64-40ea-4198-b06e-3c873ed9039d', 'No such user.');
      }
      const conversation = [...chatState(store).messages.values()].filter((m) =>
        isDirectBetween(m, user.id, other.id),
      );
      const page = paginate(conversation, (m) => m.id, params, store.ids);
      markChatRead(store, user.id, { otherId: other.id });
      return page.map((message) => packMessageLiteFor1on1(store, message));
    },
  },
  {
    name: 'chat/messages/room-timeline',
    handler: (ctx: EndpointContext<CursorParams & { roomId: string }>) => {
      const user = checkChatAvailability(ctx, 'read');
      const { store, params } = ctx;
      const state = chatState(store);
      const room = state.rooms.get(params.roomId);
      if (!room || !(isRoomMember(state, room, user.id) || isModerator(store, user))) {
        throw apiError('NO_SUCH_ROOM', 'c4d9f88c-9270-4632-b032-6ed8cee36f7f', 'No such room.');
      }
      const messages = [...state.messages.values()].filter((m) => m.toRoomId === room.id);
      const page = paginate(messages, (m) => m.id, params, store.ids);
      markChatRead(store, user.id, { roomId: room.id });
      return page.map((message) => packMessageLiteForRoom(store, message, 'owner'));
    },
  },
  {
    name: 'chat/messages/search',
    handler: (
      ctx: EndpointContext<{
        query: string;
        limit: number;
        userId?: string | null;
        roomId?: string | null;
      }>,
    ) => {
      const user = checkChatAvailability(ctx, 'read');
      const { store, params } = ctx;
      const state = chatState(store);
      if (params.roomId != null) {
        const room = state.rooms.get(params.roomId);
        // Owner or member only: moderators are not enough here.
        if (!room || !isRoomMember(state, room, user.id)) {
          throw apiError('NO_SUCH_ROOM', '460b3669-81b0-4dc9-a997-44442141bf83', 'No such room.');
        }
      }
      const { userId, roomId } = params;
      let inScope: (m: ChatMessageRow) => boolean;
      if (userId) {
        inScope = (m) => isDirectBetween(m, user.id, userId);
      } else if (roomId) {
        inScope = (m) => m.toRoomId === roomId;
      } else {
        inScope = (m) => {
          if (m.fromUserId === user.id || m.toUserId === user.id) {
            return true;
          }
          const room = m.toRoomId === null ? undefined : state.rooms.get(m.toRoomId);
          return room !== undefined && isRoomMember(state, room, user.id);
        };
      }
      const query = params.query.toLowerCase();
      return [...state.messages.values()]
        .filter((m) => m.text?.toLowerCase().includes(query) && inScope(m))
        .sort(byIdDesc)
        .slice(0, params.limit)
        .map((message) => packMessageDetailed(store, message, user.id, 'owner'));
    },
  },
  {
    name: 'chat/messages/show',
    handler: (ctx: EndpointContext<{ messageId: string }>) => {
      const user = checkChatAvailability(ctx, 'read');
      const message = chatState(ctx.store).messages.get(ctx.params.messageId);
      // The sender, the DM recipient or a moderator: other room members do not see it here.
      if (
        !message ||
        (message.fromUserId !== user.id &&
          message.toUserId !== user.id &&
          !isModerator(ctx.store, user))
      ) {
        throw apiError(
          'NO_SUCH_MESSAGE',
          '3710865b-1848-4da9-8d61-cfed15510b93',
          'No such message.',
        );
      }
      return packMessageDetailed(ctx.store, message, user.id, 'null');
    },
  },
];
