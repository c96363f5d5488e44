import { addDriveFile, type UploadParams } from '../drive/upload.js';
import { ApiError, apiError, entityNotFound, internalError } from '../errors.js';
import { packDriveFile, packUserDetailed, packUserLite, profileHooks } from '../pack.js';
import type { EndpointContext, EndpointDef } from '../registry.js';
import { DEFAULT_POLICIES, type Policies, type UserRow } from '../store.js';

/** Hashtags in a profile description, normalised as Misskey stores them (NFKC, lower case). */
export function extractHashtags(text: string | null | undefined): string[] {
  if (!text) {
    return [];
  }
  const tags = new Set<string>();
  for (const match of text.matchAll(/(?:^|[^\p{L}\p{N}_])#([\p{L}\p{N}_]+)/gu)) {
    const tag = match[1];
    if (tag && !/^\d+$/.test(tag)) {
      tags.add(tag.normalize('NFKC').toLowerCase());
    }
  }
  return [...tags];
}

/** Me, known to be non-null on credentialed endpoints. */
export function me(ctx: EndpointContext): UserRow {
  if (!ctx.me) {
    throw new Error('credential required');
  }
  return ctx.me;
}

function packMe(ctx: EndpointContext, user: UserRow): Record<string, unknown> {
  return packUserDetailed(ctx.store, user, user, { withSecrets: ctx.token?.type === 'native' });
}

export const coreEndpoints: EndpointDef[] = [
  {
    name: 'meta',
    handler: ({ store }) => ({
      name: store.instance.name,
      uri: store.origin,
      version: '2026.5.4',
      description: 'An in-memory, Misskey-compatible sandbox.',
      disableRegistration: store.instance.disableRegistration,
      swPublicKey: store.instance.swPublicKey,
      policies: store.defaultPolicies,
    }),
  },
  {
    name: 'i',
    handler: (ctx) => packMe(ctx, me(ctx)),
  },
  {
    name: 'i/update',
    handler: (ctx: EndpointContext<Record<string, unknown>>) => {
      const user = me(ctx);
      const p = ctx.params;
      if (typeof p.name === 'string' || p.name === null) {
        user.name = p.name === null ? null : p.name.trim() || null;
      }
      if (typeof p.description === 'string' || p.description === null) {
        user.description = p.description;
        user.tags = extractHashtags(user.description);
        profileHooks(ctx.store).tagsChanged(user);
      }
      if (typeof p.location === 'string' || p.location === null) {
        user.location = p.location;
      }
      if (typeof p.birthday === 'string' || p.birthday === null) {
        user.birthday = p.birthday;
      }
      if (typeof p.lang === 'string' || p.lang === null) {
        user.lang = p.lang;
      }
      if (typeof p.isBot === 'boolean') {
        user.isBot = p.isBot;
      }
      if (typeof p.isCat === 'boolean') {
        user.isCat = p.isCat;
      }
      if (typeof p.isLocked === 'boolean') {
        user.isLocked = p.isLocked;
      }
      if (typeof p.chatScope === 'string') {
        user.chatScope = p.chatScope as UserRow['chatScope'];
      }
      user.lastActiveAt = Date.now();
      const packed = packMe(ctx, user);
      // Misskey answers with the row as it was read before the update is stamped.
      const updatedAt = new Date().toISOString();
      queueMicrotask(() => {
        user.updatedAt = updatedAt;
      });
      return packed;
    },
  },
  {
    name: 'users/show',
    handler: (
      ctx: EndpointContext<{
        userId?: string;
        userIds?: string[];
        username?: string;
        host?: string | null;
      }>,
    ) => {
      const { store, params } = ctx;
      const viewer = ctx.me;
      const visible = (user: UserRow | undefined): user is UserRow =>
        user !== undefined && (!user.isSuspended || Boolean(viewer && store.isModerator(viewer)));
      if (params.userIds !== undefined) {
        if (new Set(params.userIds).size !== params.userIds.length) {
          throw apiError('INVALID_PARAM', '3d81ceae-475f-4600-b2a8-2bc116157532', 'Invalid param.');
        }
        return params.userIds
          .map((id) => store.users.get(id))
          .filter(visible)
          .map((user) => packUserDetailed(store, user, viewer));
      }
      let user: UserRow | undefined;
      if (typeof params.username === 'string' && typeof params.host === 'string') {
        // The sandbox has no federation: a remote lookup fails as an unreachable host does.
        throw new ApiError(
          'FAILED_TO_RESOLVE_REMOTE_USER',
          'ef7b9be4-9cba-4e6f-ab41-90ed171c7d3c',
          'Failed to resolve remote user.',
          'server',
        );
      }
      if (params.userId !== undefined) {
        user = store.users.get(params.userId);
      } else if (typeof params.username === 'string') {
        user = store.userByUsername(params.username);
      } else {
        throw apiError('INVALID_PARAM', '3d81ceae-475f-4600-b2a8-2bc116157532', 'Invalid param.');
      }
      if (!visible(user)) {
        throw apiError(
          'NO_SUCH_USER',
          '4362f8dc-731f-4ad8-a694-be5a88922a24',
          'No such user.',
          404,
        );
      }
      return packUserDetailed(store, user, viewer);
    },
  },
  {
    name: 'admin/accounts/create',
    handler: (
      ctx: EndpointContext<{ username: string; password: string; setupPassword?: string | null }>,
    ) => {
      const { store, params } = ctx;
      const first = store.users.size === 0;
      checkAccountCreator(ctx, first);
      if (store.userByUsername(params.username)) {
        throw internalError('DUPLICATED_USERNAME');
      }
      const { user, token } = store.createUser(
        params.username,
        first ? { isAdmin: true, isRoot: true } : {},
      );
      // Misskey packs the new account before its cached instance meta names the first one root,
      // so even the first answer has no moderator-only keys (scenarios/a.json step 1).
      const packed = packUserDetailed(store, user, user, {
        withSecrets: true,
        viewerIsModerator: false,
      });
      return { ...packed, token };
    },
  },
  {
    name: 'admin/roles/update-default-policies',
    requireAdmin: true,
    handler: (ctx: EndpointContext<{ policies: Partial<Policies> }>) => {
      ctx.store.defaultPolicies = { ...structuredClone(DEFAULT_POLICIES), ...ctx.params.policies };
      return null;
    },
  },
  {
    name: 'following/create',
    limit: { duration: 3_600_000, max: 100 },
    handler: (ctx: EndpointContext<{ userId: string }>) => {
      const follower = me(ctx);
      const followee = ctx.store.users.get(ctx.params.userId);
      if (!followee) {
        throw apiError('NO_SUCH_USER', 'fcd2eef9-a9b2-4c4f-8624-038099e90aa5', 'No such user.');
      }
      if (followee.id === follower.id) {
        throw apiError(
          'FOLLOWEE_IS_YOURSELF',
          '26fbe7bb-a331-4857-af17-205b426669a9',
          'Followee is yourself.',
        );
      }
      if (ctx.store.isFollowing(follower.id, followee.id)) {
        throw apiError(
          'ALREADY_FOLLOWING',
          '35387507-38c7-4cb9-9197-300b93783fa0',
          'You are already following that user.',
        );
      }
      if (ctx.store.isBlocking(followee.id, follower.id)) {
        throw apiError(
          'BLOCKED',
          'c4ab57cc-4e41-45e9-bfd9-584f61e35ce0',
          'You are blocked by that user.',
        );
      }
      ctx.store.follows.add(`${follower.id}>${followee.id}`);
      return packUserLite(ctx.store, followee);
    },
  },
  {
    name: 'blocking/create',
    handler: (ctx: EndpointContext<{ userId: string }>) => {
      const blocker = me(ctx);
      const blockee = ctx.store.users.get(ctx.params.userId);
      if (!blockee) {
        throw apiError('NO_SUCH_USER', '7cc4f851-e2f1-4621-9633-ec9e1d00c01e', 'No such user.');
      }
      if (blockee.id === blocker.id) {
        throw apiError(
          'BLOCKEE_IS_YOURSELF',
          '88b19138-f28d-42c0-8499-6a31bbd0fdc6',
          'Blockee is yourself.',
        );
      }
      ctx.store.blocks.add(`${blocker.id}>${blockee.id}`);
      ctx.store.follows.delete(`${blocker.id}>${blockee.id}`);
      ctx.store.follows.delete(`${blockee.id}>${blocker.id}`);
      return packUserDetailed(ctx.store, blockee, blocker);
    },
  },
  {
    name: 'mute/create',
    handler: (ctx: EndpointContext<{ userId: string }>) => {
      const muter = me(ctx);
      const mutee = ctx.store.users.get(ctx.params.userId);
      if (!mutee) {
        throw apiError('NO_SUCH_USER', '6fef56f3-e765-4957-88e5-c6f65329b8a5', 'No such user.');
      }
      if (mutee.id === muter.id) {
        throw apiError(
          'MUTEE_IS_YOURSELF',
          '6d1d3b4c-8d11-4e33-8a73-4e8af1d37b71',
          'Mutee is yourself.',
        );
      }
      ctx.store.mutes.add(`${muter.id}>${mutee.id}`);
      return null;
    },
  },
  {
    name: 'drive/files/create',
    limit: { duration: 3_600_000, max: 120 },
    handler: async (ctx: EndpointContext<UploadParams>) => {
      const upload = ctx.file;
      if (!upload) {
        throw apiError('INVALID_PARAM', '3d81ceae-475f-4600-b2a8-2bc116157532', 'Invalid param.');
      }
      const file = await addDriveFile(ctx.store, me(ctx), upload, ctx.params);
      return packDriveFile(ctx.store, file);
    },
  },
  {
    name: 'drive/files/show',
    handler: (ctx: EndpointContext<{ fileId?: string; url?: string }>) => {
      const viewer = me(ctx);
      const { store, params } = ctx;
      let file = params.fileId ? store.driveFiles.get(params.fileId) : undefined;
      if (!file && params.url) {
        file = [...store.driveFiles.values()].find((f) => store.fileUrl(f) === params.url);
      }
      if (!params.fileId && !params.url) {
        throw entityNotFound('MiDriveFile');
      }
      if (!file) {
        throw apiError('NO_SUCH_FILE', '067bc436-2718-4795-b0fb-ecbe43949e31', 'No such file.');
      }
      if (file.userId !== viewer.id && !store.isModerator(viewer)) {
        throw apiError('ACCESS_DENIED', '25b73c73-68b1-41d0-bad1-381cfdf6579f', 'Access denied.');
      }
      return packDriveFile(store, file, { withUser: true });
    },
  },
];

/**
 * Who may call `admin/accounts/create` (Misskey's endpoints/admin/accounts/create.ts): anyone
 * while the instance has no root user (the first account becomes root), then only an
 * administrator with a native token; an app token is refused even for an administrator. The
 * sandbox has no configured setup password, so a non-blank `setupPassword` on the first call is
 * wrong, as in Misskey.
 */
function checkAccountCreator(
  ctx: EndpointContext<{ setupPassword?: string | null }>,
  first: boolean,
): void {
  if (first && ctx.me === null && ctx.token === null) {
    const given = ctx.params.setupPassword;
    if (given != null && given.trim() !== '') {
      throw apiError(
        'INCORRECT_INITIAL_PASSWORD',
        '97147c55-1ae1-4f6f-91d6-e1c3e0e76d62',
        'Initial password is incorrect.',
      );
    }
    return;
  }
  if (ctx.token?.type === 'app' || !(ctx.me && ctx.store.isAdministrator(ctx.me))) {
    throw apiError('ACCESS_DENIED', '1fb7cb09-d46a-4fff-b8df-057708cce513', 'Access denied.');
  }
}
