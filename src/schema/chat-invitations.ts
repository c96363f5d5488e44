import type { entities } from 'misskey-js';
import { builder } from './builder.js';
import { ChatRoom, chatRead, misskeyCodeOf, rememberRoom } from './chat-rooms.js';
import { registerInternalReason } from './errors.js';
import { assertId } from './ids.js';
import { idConnection } from './pagination.js';
import { User } from './users.js';

type ChatRoomInvitationEntity = entities.ChatRoomInvitation;

// Misskey's HTTP-500 reasons of chat/rooms/invitations/create
// (recorded/errors/chat.rooms.invitations.create.*.json).
registerInternalReason(
  /^already invited$/,
  'CHAT_ALREADY_INVITED',
  'The user already has an invitation to this room (an ignored one counts).',
);
registerInternalReason(
  /^already member$/,
  'CHAT_ALREADY_MEMBER',
  'The user is already a member of this room.',
);
registerInternalReason(/^yourself$/, 'CHAT_INVITE_SELF', 'You cannot invite yourself.');
registerInternalReason(
  /^insert or update on table "chat_room_invitation" violates foreign key constraint/,
  'NOT_FOUND',
  'No such user to invite.',
);

export const ChatRoomInvitation = builder.objectRef<ChatRoomInvitationEntity>('ChatRoomInvitation');

const ChatRoomInvitationConnection = builder.connectionObject(
  { type: ChatRoomInvitation, name: 'ChatRoomInvitationConnection' },
  { name: 'ChatRoomInvitationEdge' },
);

ChatRoomInvitation.implement({
  description: 'An invitation of a user to a chat room.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The Misskey invitation id (the cursor of its lists).' }),
    createdAt: t.field({ type: 'DateTime', resolve: (invitation) => invitation.createdAt }),
    room: t.field({
      type: ChatRoom,
      resolve: (invitation, _args, ctx) => {
        rememberRoom(ctx, invitation.room);
        return invitation.room;
      },
    }),
    user: t.field({
      type: User,
      description: 'The invited user (not the inviter: that is `room.owner`).',
      resolve: (invitation, _args, ctx) => {
        ctx.users.remember(invitation.user);
        return invitation.user;
      },
    }),
  }),
});

function remember(
  ctx: Parameters<typeof rememberRoom>[0],
  invitations: readonly ChatRoomInvitationEntity[],
) {
  for (const invitation of invitations) {
    ctx.users.remember(invitation.user);
    rememberRoom(ctx, invitation.room);
  }
}

builder.queryFields((t) => ({
  chatRoomInvitations: t.connection(
    {
      type: ChatRoomInvitation,
      description:
        'Invitations you received and did not ignore, newest first ' +
        '(`chat/rooms/invitations/inbox`); cursors are invitation ids.',
      authScopes: { authenticated: true },
      resolve: (_root, args, ctx) =>
        idConnection(args, async (cursor) => {
          const page = (await chatRead(
            ctx,
            'chat/rooms/invitations/inbox',
            cursor,
          )) as ChatRoomInvitationEntity[];
          remember(ctx, page);
          return page;
        }),
    },
    ChatRoomInvitationConnection,
  ),
}));

builder.objectField(ChatRoom, 'invitations', (t) =>
  t.connection(
    {
      type: ChatRoomInvitation,
      nullable: true,
      description:
        'Invitations sent for this room and not yet accepted, newest first; ignored ones are ' +
        'included, Misskey does not tell them apart (`chat/rooms/invitations/outbox`). Cursors ' +
        'are invitation ids. Null unless you own the room.',
      resolve: async (room, args, ctx) => {
        try {
          return await idConnection(args, async (cursor) => {
            const page = (await chatRead(ctx, 'chat/rooms/invitations/outbox', {
              roomId: room.id,
              ...cursor,
            })) as ChatRoomInvitationEntity[];
            remember(ctx, page);
            return page;
          });
        } catch (error) {
          if (misskeyCodeOf(error) === 'NO_SUCH_ROOM') {
            return null;
          }
          throw error;
        }
      },
    },
    ChatRoomInvitationConnection,
  ),
);

builder.mutationFields((t) => ({
  inviteToChatRoom: t.field({
    type: ChatRoomInvitation,
    description:
      'Invites a user to a room you own (`chat/rooms/invitations/create`; Misskey allows 50 a ' +
      'day). NOT_FOUND for a room you do not own or an unknown user; CHAT_ALREADY_INVITED, ' +
      'CHAT_ALREADY_MEMBER, CHAT_ROOM_FULL, CHAT_INVITE_SELF.',
    authScopes: { authenticated: true },
    args: { roomId: t.arg.id({ required: true }), userId: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const invitation = await ctx.call('chat/rooms/invitations/create', {
        roomId: assertId(String(args.roomId), 'roomId'),
        userId: assertId(String(args.userId), 'userId'),
      });
      remember(ctx, [invitation]);
      return invitation;
    },
  }),
  ignoreChatRoomInvitation: t.id({
    description:
      'Ignores your invitation to a room (`chat/rooms/invitations/ignore`): it leaves ' +
      '`chatRoomInvitations`, but you can still join, and the owner cannot invite you again. ' +
      'Returns the room id. CHAT_NOT_INVITED when you have no invitation to it.',
    authScopes: { authenticated: true },
    args: { roomId: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const roomId = assertId(String(args.roomId), 'roomId');
      await ctx.call('chat/rooms/invitations/ignore', { roomId });
      return roomId;
    },
  }),
}));
