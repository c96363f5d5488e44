import { apiError, internalError } from '../errors.js';
import { createdAtOf } from '../ids.js';
import { packUserLite } from '../pack.js';
import type { EndpointContext, EndpointDef } from '../registry.js';
import { packInvitation, packMembership, packRoom } from './pack.js';
import {
  type ChatInvitationRow,
  type ChatRoomRow,
  chatState,
  invitationOf,
  isNotificationRead,
  isRoomMember,
  markChatRead,
  membershipOf,
  membershipsOfRoom,
} from './state.js';
import {
  type CursorParams,
  checkChatAvailability,
  entityNotFound,
  isModerator,
  paginate,
} from './support.js';

const DAY = 86_400_000;
/** Membership rows per room; the owner has none and is not counted. */
const MAX_ROOM_MEMBERS = 50;
/** Misskey publishes `unreadNotification` this long after a notification if it is still unread. */
const UNREAD_NOTIFICATION_DELAY_MS = 2_000;

function ownRoom(
  ctx: Pick<EndpointContext, 'me' | 'store'>,
  roomId: string,
  errorId: string,
): ChatRoomRow {
  const room = chatState(ctx.store).rooms.get(roomId);
  if (!room || room.ownerId !== ctx.me?.id) {
    throw apiError('NO_SUCH_ROOM', errorId, 'No such room.');
  }
  return room;
}

/** NotificationService.createNotification for a room invitation: main `notification` at once,
 *  `unreadNotification` 2 s later unless the invitee has read their notifications by then. */
function notifyInvitation(ctx: EndpointContext, inviterId: string, invitation: ChatInvitationRow) {
  const { store } = ctx;
  const state = chatState(store);
  const inviteeId = invitation.userId;
  if (store.isMuting(inviteeId, inviterId)) {
    return;
  }
  const inviter = store.users.get(inviterId);
  const id = store.ids.gen();
  const packed = {
    id,
    createdAt: createdAtOf(id),
    type: 'chatRoomInvitationReceived',
    userId: inviterId,
    user: inviter ? packUserLite(store, inviter) : null,
    invitation: packInvitation(store, invitation, inviteeId),
  };
  state.notifications.push({ id, notifieeId: inviteeId, packed });
  ctx.publish({ stream: `mainStream:${inviteeId}`, type: 'notification', body: packed });
  ctx.later(UNREAD_NOTIFICATION_DELAY_MS, () => {
    if (!isNotificationRead(state, inviteeId, id)) {
      ctx.publish({ stream: `mainStream:${inviteeId}`, type: 'unreadNotification', body: packed });
    }
  });
}

export const chatRoomEndpoints: EndpointDef[] = [
  {
    name: 'chat/rooms/create',
    limit: { duration: DAY, max: 10 },
    handler: (ctx: EndpointContext<{ name: string; description?: string }>) => {
      const user = checkChatAvailability(ctx, 'write');
      const room: ChatRoomRow = {
        id: ctx.store.ids.gen(),
        ownerId: user.id,
        name: ctx.params.name,
        description: ctx.params.description ?? '',
      };
      chatState(ctx.store).rooms.set(room.id, room);
      return packRoom(ctx.store, room, null);
    },
  },
  {
    name: 'chat/rooms/update',
    handler: (ctx: EndpointContext<{ roomId: string; name?: string; description?: string }>) => {
      const user = checkChatAvailability(ctx, 'write');
      const { params } = ctx;
      const room = ownRoom(ctx, params.roomId, 'fcdb0f92-bda6-47f9-bd05-343e0e020932');
      if (params.name === undefined && params.description === undefined) {
        throw internalError(
          'Cannot perform update query because update values are not defined. Call "qb.set(...)" method to specify updated values.',
          'UpdateValuesMissingError',
        );
      }
      if (params.name !== undefined) {
        room.name = params.name;
      }
      if (params.description !== undefined) {
        room.description = params.description;
      }
      return packRoom(ctx.store, room, user.id);
    },
  },
  {
    name: 'chat/rooms/delete',
    handler: (ctx: EndpointContext<{ roomId: string }>) => {
      const user = checkChatAvailability(ctx, 'write');
      const { store } = ctx;
      const state = chatState(store);
      const room = state.rooms.get(ctx.params.roomId);
      if (!room || !(room.ownerId === user.id || isModerator(store, user))) {
        throw apiError('NO_SUCH_ROOM', 'd4e3753d-97bf-4a19-ab8e-21080fbc0f4b', 'No such room.');
      }
      for (const member of [
        ...membershipsOfRoom(state, room.id).map((m) => m.userId),
        room.ownerId,
      ]) {
        markChatRead(store, member, { roomId: room.id });
      }
      // Foreign keys cascade: messages, memberships and invitations go with the room.
      state.rooms.delete(room.id);
      for (const [id, message] of state.messages) {
        if (message.toRoomId === room.id) {
          state.messages.delete(id);
        }
      }
      for (const table of [state.memberships, state.invitations]) {
        for (const [id, row] of table) {
          if (row.roomId === room.id) {
            table.delete(id);
          }
        }
      }
      return null;
    },
  },
  {
    name: 'chat/rooms/show',
    handler: (ctx: EndpointContext<{ roomId: string }>) => {
      const user = checkChatAvailability(ctx, 'read');
      const state = chatState(ctx.store);
      const room = state.rooms.get(ctx.params.roomId);
      // Since 2026.5.4 only the owner, members, invitees (ignored too) and moderators see a room.
      if (
        !room ||
        !(
          isRoomMember(state, room, user.id) ||
          invitationOf(state, room.id, user.id) ||
          isModerator(ctx.store, user)
        )
      ) {
        throw apiError('NO_SUCH_ROOM', '857ae02f-8759-4d20-9adb-6e95fffe4fd7', 'No such room.');
      }
      return packRoom(ctx.store, room, user.id);
    },
  },
  {
    name: 'chat/rooms/join',
    handler: (ctx: EndpointContext<{ roomId: string }>) => {
      const user = checkChatAvailability(ctx, 'write');
      const { store, params } = ctx;
      const state = chatState(store);
      // An ignored invitation still lets the invitee join.
      const invitation = invitationOf(state, params.roomId, user.id);
      if (!invitation) {
        throw entityNotFound('MiChatRoomInvitation', { roomId: params.roomId, userId: user.id });
      }
      if (membershipsOfRoom(state, params.roomId).length >= MAX_ROOM_MEMBERS) {
        throw internalError('room is full');
      }
      const id = store.ids.gen();
      state.memberships.set(id, { id, roomId: params.roomId, userId: user.id, isMuted: false });
      state.invitations.delete(invitation.id);
      return null;
    },
  },
  {
    name: 'chat/rooms/leave',
    handler: (ctx: EndpointContext<{ roomId: string }>) => {
      const user = checkChatAvailability(ctx, 'write');
      const { store, params } = ctx;
      const state = chatState(store);
      // The owner has no membership row, so the owner cannot leave either.
      const membership = membershipOf(state, params.roomId, user.id);
      if (!membership) {
        throw entityNotFound('MiChatRoomMembership', { roomId: params.roomId, userId: user.id });
      }
      state.memberships.delete(membership.id);
      markChatRead(store, user.id, { roomId: params.roomId });
      return null;
    },
  },
  {
    name: 'chat/rooms/mute',
    handler: (ctx: EndpointContext<{ roomId: string; mute: boolean }>) => {
      const user = checkChatAvailability(ctx, 'write');
      const { params } = ctx;
      const membership = membershipOf(chatState(ctx.store), params.roomId, user.id);
      if (!membership) {
        throw entityNotFound('MiChatRoomMembership', { roomId: params.roomId, userId: user.id });
      }
      membership.isMuted = params.mute;
      return null;
    },
  },
  {
    name: 'chat/rooms/members',
    handler: (ctx: EndpointContext<CursorParams & { roomId: string }>) => {
      const user = checkChatAvailability(ctx, 'read');
      const { store, params } = ctx;
      const state = chatState(store);
      const room = state.rooms.get(params.roomId);
      // Owner or member: moderators are not enough. The owner is not listed.
      if (!room || !isRoomMember(state, room, user.id)) {
        throw apiError('NO_SUCH_ROOM', '7b9fe84c-eafc-4d21-bf89-485458ed2c18', 'No such room.');
      }
      return paginate(membershipsOfRoom(state, room.id), (m) => m.id, params, store.ids).map((m) =>
        packMembership(store, m, user.id, 'user'),
      );
    },
  },
  {
    name: 'chat/rooms/owned',
    handler: (ctx: EndpointContext<CursorParams>) => {
      const user = checkChatAvailability(ctx, 'read');
      const { store } = ctx;
      const owned = [...chatState(store).rooms.values()].filter((r) => r.ownerId === user.id);
      return paginate(owned, (r) => r.id, ctx.params, store.ids).map((room) =>
        packRoom(store, room, user.id),
      );
    },
  },
  {
    name: 'chat/rooms/joining',
    handler: (ctx: EndpointContext<CursorParams>) => {
      const user = checkChatAvailability(ctx, 'read');
      const { store } = ctx;
      // Membership rows only: rooms I own are not listed.
      const mine = [...chatState(store).memberships.values()].filter((m) => m.userId === user.id);
      return paginate(mine, (m) => m.id, ctx.params, store.ids).map((m) =>
        packMembership(store, m, user.id, 'room'),
      );
    },
  },
  {
    name: 'chat/rooms/invitations/create',
    limit: { duration: DAY, max: 50 },
    handler: (ctx: EndpointContext<{ roomId: string; userId: string }>) => {
      const user = checkChatAvailability(ctx, 'write');
      const { store, params } = ctx;
      const state = chatState(store);
      const room = ownRoom(ctx, params.roomId, '916f9507-49ba-4e90-b57f-1fd4deaa47a5');
      if (params.userId === user.id) {
        throw internalError('yourself');
      }
      if (isRoomMember(state, room, params.userId)) {
        throw internalError('already member');
      }
      // An ignored invitation still counts: the owner cannot invite again.
      if (invitationOf(state, room.id, params.userId)) {
        throw internalError('already invited');
      }
      if (membershipsOfRoom(state, room.id).length >= MAX_ROOM_MEMBERS) {
        throw internalError('room is full');
      }
      if (!store.users.has(params.userId)) {
        throw internalError(
          'insert or update on table "chat_room_invitation" violates foreign key constraint "FK_8552bb38e7ed038c5bdd398a384"',
          'QueryFailedError',
        );
      }
      const invitation: ChatInvitationRow = {
        id: store.ids.gen(),
        roomId: room.id,
        userId: params.userId,
        ignored: false,
      };
      state.invitations.set(invitation.id, invitation);
      notifyInvitation(ctx, user.id, invitation);
      return packInvitation(store, invitation, user.id);
    },
  },
  {
    name: 'chat/rooms/invitations/inbox',
    handler: (ctx: EndpointContext<CursorParams>) => {
      const user = checkChatAvailability(ctx, 'read');
      const { store } = ctx;
      // Ignored invitations are not listed (the rows stay).
      const received = [...chatState(store).invitations.values()].filter(
        (i) => i.userId === user.id && !i.ignored,
      );
      return paginate(received, (i) => i.id, ctx.params, store.ids).map((i) =>
        packInvitation(store, i, user.id),
      );
    },
  },
  {
    name: 'chat/rooms/invitations/outbox',
    handler: (ctx: EndpointContext<CursorParams & { roomId: string }>) => {
      const user = checkChatAvailability(ctx, 'read');
      const { store, params } = ctx;
      const room = ownRoom(ctx, params.roomId, 'a3c6b309-9717-4316-ae94-a69b53437237');
      // Ignored ones included.
      const sent = [...chatState(store).invitations.values()].filter((i) => i.roomId === room.id);
      return paginate(sent, (i) => i.id, params, store.ids).map((i) =>
        packInvitation(store, i, user.id),
      );
    },
  },
  {
    name: 'chat/rooms/invitations/ignore',
    handler: (ctx: EndpointContext<{ roomId: string }>) => {
      const user = checkChatAvailability(ctx, 'write');
      const { params } = ctx;
      const invitation = invitationOf(chatState(ctx.store), params.roomId, user.id);
      if (!invitation) {
        throw entityNotFound('MiChatRoomInvitation', { roomId: params.roomId, userId: user.id });
      }
      invitation.ignored = true;
      return null;
    },
  },
];
