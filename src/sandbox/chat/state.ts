import { meHooks } from '../pack.js';
import type { Store } from '../store.js';

/**
 * The chat tables of the sandbox and Misskey's Redis read state, kept in `store.ext('chat')`.
 * Rows mirror Misskey's (ChatService.ts): the room owner has no membership row, an invitation row
 * stays when ignored and is deleted by a join, reactions are `<userId>/<reaction>` strings.
 */
export interface ChatMessageRow {
  id: string;
  fromUserId: string;
  toUserId: string | null;
  toRoomId: string | null;
  text: string | null;
  fileId: string | null;
  reactions: string[];
}

export interface ChatRoomRow {
  id: string;
  ownerId: string;
  name: string;
  description: string;
}

export interface ChatMembershipRow {
  id: string;
  roomId: string;
  userId: string;
  isMuted: boolean;
}

export interface ChatInvitationRow {
  id: string;
  roomId: string;
  userId: string;
  ignored: boolean;
}

/** A `chatRoomInvitationReceived` notification, packed when it was created (as Misskey sends it). */
export interface ChatNotificationRow {
  id: string;
  notifieeId: string;
  packed: Record<string, unknown>;
}

export interface ChatState {
  messages: Map<string, ChatMessageRow>;
  rooms: Map<string, ChatRoomRow>;
  memberships: Map<string, ChatMembershipRow>;
  invitations: Map<string, ChatInvitationRow>;
  /** `userId>otherId`: userId has messaged otherId, so otherId may always answer. */
  approvals: Set<string>;
  /** Redis `newUserChatMessageExists:<me>:<other>` → latest unread message id. */
  userMarkers: Map<string, string>;
  /** Redis `newRoomChatMessageExists:<me>:<room>` → latest unread message id. */
  roomMarkers: Map<string, string>;
  /** Redis set `newChatMessagesExists:<me>` of `user:<id>` / `room:<id>`: `i.hasUnreadChatMessages`. */
  unread: Map<string, Set<string>>;
  notifications: ChatNotificationRow[];
  /** Redis `latestReadNotification:<me>`. */
  latestReadNotification: Map<string, string>;
}

export function chatState(store: Store): ChatState {
  return store.ext<ChatState>('chat', () => ({
    messages: new Map(),
    rooms: new Map(),
    memberships: new Map(),
    invitations: new Map(),
    approvals: new Set(),
    userMarkers: new Map(),
    roomMarkers: new Map(),
    unread: new Map(),
    notifications: [],
    latestReadNotification: new Map(),
  }));
}

/** Local custom emoji names (without colons) that `:name:` reactions may use. */
export function customEmojis(store: Store): Set<string> {
  return store.ext('custom-emojis', () => new Set<string>());
}

export function membershipOf(
  state: ChatState,
  roomId: string,
  userId: string,
): ChatMembershipRow | undefined {
  for (const membership of state.memberships.values()) {
    if (membership.roomId === roomId && membership.userId === userId) {
      return membership;
    }
  }
  return undefined;
}

export function invitationOf(
  state: ChatState,
  roomId: string,
  userId: string,
): ChatInvitationRow | undefined {
  for (const invitation of state.invitations.values()) {
    if (invitation.roomId === roomId && invitation.userId === userId) {
      return invitation;
    }
  }
  return undefined;
}

export function membershipsOfRoom(state: ChatState, roomId: string): ChatMembershipRow[] {
  return [...state.memberships.values()].filter((m) => m.roomId === roomId);
}

/** Owner or membership row. */
export function isRoomMember(state: ChatState, room: ChatRoomRow, userId: string): boolean {
  return room.ownerId === userId || membershipOf(state, room.id, userId) !== undefined;
}

/** Sets the unread marker of one conversation or room for `userId`. */
export function setUnread(
  state: ChatState,
  userId: string,
  target: { otherId: string } | { roomId: string },
  messageId: string,
): void {
  let flags = state.unread.get(userId);
  if (!flags) {
    flags = new Set();
    state.unread.set(userId, flags);
  }
  if ('otherId' in target) {
    state.userMarkers.set(`${userId}:${target.otherId}`, messageId);
    flags.add(`user:${target.otherId}`);
  } else {
    state.roomMarkers.set(`${userId}:${target.roomId}`, messageId);
    flags.add(`room:${target.roomId}`);
  }
}

/**
 * Marks one conversation (`otherId`) or room read for `userId`, as Misskey's chat channel `read`
 * message, a timeline call, leaving or deleting a room do: the ~3 s `newChatMessage` of anything
 * unread there is then not sent, and history reports `isRead: true`.
 */
export function markChatRead(
  store: Store,
  userId: string,
  target: { otherId: string } | { roomId: string },
): void {
  const state = chatState(store);
  if ('otherId' in target) {
    state.userMarkers.delete(`${userId}:${target.otherId}`);
    state.unread.get(userId)?.delete(`user:${target.otherId}`);
  } else {
    state.roomMarkers.delete(`${userId}:${target.roomId}`);
    state.unread.get(userId)?.delete(`room:${target.roomId}`);
  }
}

export function isUnread(
  state: ChatState,
  userId: string,
  target: { otherId: string } | { roomId: string },
): boolean {
  return 'otherId' in target
    ? state.userMarkers.has(`${userId}:${target.otherId}`)
    : state.roomMarkers.has(`${userId}:${target.roomId}`);
}

/** Marks every notification of `userId` read (the streaming `readNotification` message): pending
 *  `unreadNotification` events are then not sent. True when the latest notification was not read
 *  before, when Misskey publishes `readAllNotifications` (NotificationService.readAllNotification). */
export function markNotificationsRead(store: Store, userId: string): boolean {
  const state = chatState(store);
  let latest: string | undefined;
  for (const notification of state.notifications) {
    if (notification.notifieeId === userId && (latest === undefined || notification.id > latest)) {
      latest = notification.id;
    }
  }
  if (latest === undefined) {
    return false;
  }
  const before = state.latestReadNotification.get(userId);
  state.latestReadNotification.set(userId, latest);
  return before === undefined || before < latest;
}

export function isNotificationRead(state: ChatState, userId: string, id: string): boolean {
  const latest = state.latestReadNotification.get(userId);
  return latest !== undefined && latest >= id;
}

/** Installs what `i` reports from chat: the global unread flag and unread invitation notifications
 *  (added to what other domains count). */
export function setupChat(store: Store): void {
  const hooks = meHooks(store);
  const state = chatState(store);
  hooks.hasUnreadChatMessages = (userId) => (state.unread.get(userId)?.size ?? 0) > 0;
  const otherNotifications = hooks.unreadNotificationsCount;
  hooks.unreadNotificationsCount = (userId) => {
    let count = otherNotifications(userId);
    for (const notification of state.notifications) {
      if (
        notification.notifieeId === userId &&
        !isNotificationRead(state, userId, notification.id)
      ) {
        count++;
      }
    }
    return count;
  };
}
