import { GraphQLError } from 'graphql';
import type { entities } from 'misskey-js';
import type { AnyUser } from '../upstream/entities.js';
import { builder } from './builder.js';
import type { Context } from './context.js';
import { ErrorCode } from './errors.js';
import { assertId } from './ids.js';
import { idConnection } from './pagination.js';
import { User } from './users.js';

/** An `InviteCode`; `createdByViewer` marks one `invite/create` answered with `createdBy: null`
 *  (API.md §0.1.6) although the viewer made it. */
type InviteCodeShape = entities.InviteCode & { createdByViewer?: boolean };

export const InviteCode = builder.objectRef<InviteCodeShape>('InviteCode');

InviteCode.implement({
  description: 'An invitation code for signing up to an invitation-only server.',
  fields: (t) => ({
    id: t.exposeID('id', { description: 'The Misskey id of the code (the cursor of its list).' }),
    code: t.exposeString('code', { description: 'What the invitee enters at signup.' }),
    createdAt: t.field({ type: 'DateTime', resolve: (code) => code.createdAt }),
    expiresAt: t.field({
      type: 'DateTime',
      nullable: true,
      description: 'Null when it never expires (role policy inviteExpirationTime 0).',
      resolve: (code) => code.expiresAt,
    }),
    used: t.exposeBoolean('used'),
    usedAt: t.field({ type: 'DateTime', nullable: true, resolve: (code) => code.usedAt }),
    createdBy: t.field({
      type: User,
      nullable: true,
      resolve: async (code, _args, ctx) => {
        if (code.createdBy) {
          ctx.users.remember(code.createdBy);
          return code.createdBy;
        }
        return code.createdByViewer ? ((await ctx.viewer()) as AnyUser) : null;
      },
    }),
    usedBy: t.field({
      type: User,
      nullable: true,
      description: 'The account that signed up with it.',
      resolve: (code, _args, ctx) => {
        ctx.users.remember(code.usedBy);
        return code.usedBy;
      },
    }),
  }),
});

const InviteCodeConnection = builder.connectionObject(
  { type: InviteCode, name: 'InviteCodeConnection' },
  { name: 'InviteCodeEdge' },
);

/** Runs an invite call; a refused `canInvite` policy becomes a FORBIDDEN that says why. */
async function invite<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const misskey = error instanceof GraphQLError ? error.extensions.misskey : undefined;
    if ((misskey as { code?: string } | undefined)?.code === 'ROLE_PERMISSION_DENIED') {
      throw new GraphQLError(
        'Your roles do not allow invite codes (Misskey role policy canInvite).',
        { extensions: { ...(error as GraphQLError).extensions, code: ErrorCode.FORBIDDEN } },
      );
    }
    throw error;
  }
}

function remember(ctx: Context, codes: readonly InviteCodeShape[]): void {
  for (const code of codes) {
    ctx.users.remember(code.createdBy);
    ctx.users.remember(code.usedBy);
  }
}

builder.queryFields((t) => ({
  inviteCodes: t.connection(
    {
      type: InviteCode,
      description:
        'Invitation codes you created, newest first (`invite/list`); cursors are code ids. ' +
        'FORBIDDEN unless your roles allow invites (policy canInvite; administrators always may).',
      authScopes: { authenticated: true },
      resolve: (_root, args, ctx) =>
        invite(() =>
          idConnection(args, async (cursor) => {
            const page = (await ctx.call('invite/list', cursor)) as InviteCodeShape[];
            remember(ctx, page);
            return page;
          }),
        ),
    },
    InviteCodeConnection,
  ),
  inviteLimit: t.int({
    nullable: true,
    description:
      'How many more codes you may create in the current cycle (`invite/limit`); null means ' +
      'unlimited (role policy inviteLimit 0). FORBIDDEN unless your roles allow invites.',
    authScopes: { authenticated: true },
    resolve: async (_root, _args, ctx) =>
      (await invite(() => ctx.call('invite/limit', {}))).remaining ?? null,
  }),
}));

builder.mutationFields((t) => ({
  createInviteCode: t.field({
    type: InviteCode,
    description:
      'Creates an invitation code (`invite/create`). FORBIDDEN unless your roles allow invites; ' +
      'EXCEEDED_LIMIT_OF_CREATE_INVITE_CODE once `inviteLimit` is used up.',
    authScopes: { authenticated: true },
    resolve: async (_root, _args, ctx) => {
      const code = (await invite(() => ctx.call('invite/create', {}))) as InviteCodeShape;
      return { ...code, createdByViewer: true };
    },
  }),
  deleteInviteCode: t.id({
    description:
      'Deletes one of your codes (`invite/delete`); returns its id. NOT_FOUND when it does not ' +
      "exist, FORBIDDEN for someone else's code, CAN_NOT_DELETE_INVITE_CODE once it was used " +
      '(moderators may do both).',
    authScopes: { authenticated: true },
    args: { id: t.arg.id({ required: true }) },
    resolve: async (_root, args, ctx) => {
      const inviteId = assertId(String(args.id), 'id');
      await invite(() => ctx.call('invite/delete', { inviteId }));
      return inviteId;
    },
  }),
}));
