import { createdAtOf } from './ids.js';
import type { DriveFileRow, Store, UserRow } from './store.js';

/**
 * Packers: rows → Misskey's JSON entities, with the exact key sets of the recordings
 * (../shared/misskey/recorded/users.show.*.json, i.json, drive.files.*.json).
 */

export function packUserLite(store: Store, user: UserRow): Record<string, unknown> {
  return {
    id: user.id,
    name: user.name,
    username: user.username,
    host: user.host,
    avatarUrl: `${store.origin}/identicon/${user.username}@${new URL(store.origin).host}`,
    avatarBlurhash: null,
    avatarDecorations: [],
    isBot: user.isBot,
    isCat: user.isCat,
    emojis: {},
    onlineStatus: 'unknown',
    badgeRoles: [],
  };
}

/** Hooks that other domains fill in, so `i` can report their unread state. */
export interface MeHooks {
  hasUnreadChatMessages(userId: string): boolean;
  unreadAnnouncements(userId: string): Record<string, unknown>[];
  unreadNotificationsCount(userId: string): number;
}

export function meHooks(store: Store): MeHooks {
  return store.ext<MeHooks>('me-hooks', () => ({
    hasUnreadChatMessages: () => false,
    unreadAnnouncements: () => [],
    unreadNotificationsCount: () => 0,
  }));
}

/** Hooks that other domains fill in to follow profile changes (hashtags count profile tags). */
export interface ProfileHooks {
  /** `user.tags` was just replaced (i/update of the description). */
  tagsChanged(user: UserRow): void;
}

export function profileHooks(store: Store): ProfileHooks {
  return store.ext<ProfileHooks>('profile-hooks', () => ({ tagsChanged: () => {} }));
}

function countFollows(store: Store, userId: string, side: 'followers' | 'following'): number {
  let count = 0;
  for (const edge of store.follows) {
    const [follower, followee] = edge.split('>');
    if ((side === 'followers' ? followee : follower) === userId) {
      count++;
    }
  }
  return count;
}

/**
 * `UserDetailed` as seen by `me` (null = anonymous); `MeDetailed` when `me` is the user. Which
 * optional keys appear follows Misskey's core/entities/UserEntityService.ts `pack`:
 * - relation keys only for another signed-in viewer, `followedMessage` there only when the viewer
 *   follows the user (always on `MeDetailed`);
 * - `moderationNote` for a moderator viewer (self included), and the 2FA summary keys for the user
 *   and for moderators;
 * - everything else of `MeDetailed` for the user only, secrets only when asked.
 * `viewerIsModerator` overrides the viewer's moderator status (see admin/accounts/create).
 */
export function packUserDetailed(
  store: Store,
  user: UserRow,
  me: UserRow | null,
  options: { withSecrets?: boolean; viewerIsModerator?: boolean } = {},
): Record<string, unknown> {
  const iAmModerator = options.viewerIsModerator ?? Boolean(me && store.isModerator(me));
  const isMe = me !== null && me.id === user.id;
  const policies = store.policiesOf(user);
  const detailed: Record<string, unknown> = {
    ...packUserLite(store, user),
    url: null,
    uri: null,
    movedTo: null,
    alsoKnownAs: null,
    createdAt: createdAtOf(user.id),
    updatedAt: user.updatedAt,
    lastFetchedAt: null,
    bannerUrl: null,
    bannerBlurhash: null,
    isLocked: user.isLocked,
    isSilenced: false,
    isSuspended: user.isSuspended,
    description: user.description,
    location: user.location,
    birthday: user.birthday,
    lang: user.lang,
    fields: [],
    verifiedLinks: [],
    followersCount: countFollows(store, user.id, 'followers'),
    followingCount: countFollows(store, user.id, 'following'),
    notesCount: user.notesCount,
    pinnedNoteIds: [],
    pinnedNotes: [],
    pinnedPageId: null,
    pinnedPage: null,
    publicReactions: true,
    followersVisibility: 'public',
    followingVisibility: 'public',
    chatScope: user.chatScope,
    canChat: policies.chatAvailability === 'available',
    roles: [],
    memo: null,
  };
  if (iAmModerator) {
    detailed.moderationNote = '';
  }
  if (isMe || iAmModerator) {
    Object.assign(detailed, {
      twoFactorEnabled: false,
      usePasswordLessLogin: false,
      securityKeys: false,
    });
  }
  if (me && !isMe) {
    Object.assign(detailed, relationKeys(store, me, user));
  }
  if (isMe) {
    Object.assign(detailed, meKeys(store, user, policies));
    if (options.withSecrets) {
      Object.assign(detailed, { email: null, emailVerified: false, securityKeysList: [] });
    }
  }
  return detailed;
}

/** The keys only the user's own `MeDetailed` has (UserEntityService.pack, `isMe`). */
function meKeys(
  store: Store,
  user: UserRow,
  policies: ReturnType<Store['policiesOf']>,
): Record<string, unknown> {
  const hooks = meHooks(store);
  const unreadAnnouncements = hooks.unreadAnnouncements(user.id);
  const unreadNotificationsCount = hooks.unreadNotificationsCount(user.id);
  return {
    avatarId: null,
    bannerId: null,
    followedMessage: null,
    isModerator: store.isModerator(user),
    isAdmin: store.isAdministrator(user),
    injectFeaturedNote: true,
    receiveAnnouncementEmail: true,
    alwaysMarkNsfw: false,
    autoSensitive: false,
    carefulBot: false,
    autoAcceptFollowed: true,
    noCrawle: false,
    preventAiLearning: true,
    isExplorable: true,
    isDeleted: false,
    twoFactorBackupCodesStock: 'none',
    hideOnlineStatus: false,
    hasUnreadSpecifiedNotes: false,
    hasUnreadMentions: false,
    hasUnreadChatMessages: hooks.hasUnreadChatMessages(user.id),
    hasUnreadAnnouncement: unreadAnnouncements.length > 0,
    unreadAnnouncements,
    hasUnreadAntenna: false,
    hasUnreadChannel: false,
    hasUnreadNotification: unreadNotificationsCount > 0,
    hasPendingReceivedFollowRequest: false,
    unreadNotificationsCount,
    mutedWords: [],
    hardMutedWords: [],
    mutedInstances: [],
    mutingNotificationTypes: [],
    notificationRecieveConfig: {},
    emailNotificationTypes: ['follow', 'receiveFollowRequest'],
    achievements: [],
    loggedInDays: 1,
    policies,
  };
}

/** The viewer's relation to another user; `followedMessage` is shown to followers only. */
function relationKeys(store: Store, me: UserRow, user: UserRow): Record<string, unknown> {
  const isFollowing = store.isFollowing(me.id, user.id);
  return {
    isFollowing,
    isFollowed: store.isFollowing(user.id, me.id),
    hasPendingFollowRequestFromYou: false,
    hasPendingFollowRequestToYou: false,
    isBlocking: store.isBlocking(me.id, user.id),
    isBlocked: store.isBlocking(user.id, me.id),
    isMuted: store.isMuting(me.id, user.id),
    isRenoteMuted: false,
    notify: 'none',
    withReplies: false,
    ...(isFollowing ? { followedMessage: null } : {}),
  };
}

/**
 * `DriveFile`. `detail` (drive/files/show) embeds the owner; chat messages embed the file with
 * `user: null` and a `userId` that is null or the owner depending on the endpoint (API.md §2).
 */
export function packDriveFile(
  store: Store,
  file: DriveFileRow,
  options: { withUser?: boolean; userId?: 'owner' | 'null' } = {},
): Record<string, unknown> {
  const owner = store.users.get(file.userId);
  const withUser = options.withUser === true && owner !== undefined;
  const userIdMode = options.userId ?? (withUser ? 'owner' : 'null');
  return {
    id: file.id,
    createdAt: createdAtOf(file.id),
    name: file.name,
    type: file.type,
    md5: file.md5,
    size: file.size,
    isSensitive: file.isSensitive,
    blurhash: file.blurhash,
    properties: file.properties,
    url: store.fileUrl(file),
    thumbnailUrl: file.type.startsWith('image/') ? `${store.fileUrl(file)}?thumbnail=1` : null,
    comment: file.comment,
    folderId: null,
    folder: null,
    userId: userIdMode === 'owner' ? file.userId : null,
    user: withUser && owner ? packUserLite(store, owner) : null,
  };
}
