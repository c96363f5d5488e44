import { randomInt } from 'node:crypto';
import { ApiError, apiError, internalError } from '../errors.js';
import { createdAtOf, timeOfId } from '../ids.js';
import { packUserDetailed, packUserLite } from '../pack.js';
import type { EndpointContext, EndpointDef } from '../registry.js';
import { DEFAULT_POLICIES, type Policies, type RoleRow, type Store } from '../store.js';
import { type PageParams, paginate } from './announcements.js';
import { me } from './core.js';

/**
 * Invite codes (API.md §1.8, recordings `invite.*.json`), `signup` with an invitation code
 * (`setup/signup.with-invitation-code.json`), and the two admin role endpoints that make the
 * `canInvite` policy assignable per user (`setup/admin.roles.create.json`).
 */

interface InviteRow {
  id: string;
  code: string;
  createdById: string | null;
  expiresAt: string | null;
  usedById: string | null;
  usedAt: string | null;
}

interface RoleMeta {
  createdAt: string;
  description: string;
  color: string | null;
  iconUrl: string | null;
  target: 'manual' | 'conditional';
  condFormula: object;
  isPublic: boolean;
  isAdministrator: boolean;
  isModerator: boolean;
  isExplorable: boolean;
  asBadge: boolean;
  preserveAssignmentOnMoveAccount: boolean;
  canEditMembersByModerator: boolean;
  displayOrder: number;
}

function invites(store: Store): Map<string, InviteRow> {
  return store.ext('invites', () => new Map<string, InviteRow>());
}

function roleMeta(store: Store): Map<string, RoleMeta> {
  return store.ext('role-meta', () => new Map<string, RoleMeta>());
}

const CODE_CHARS = '23456789ABCDEFGHJKLMNPQRSTUVWXYZ';

/** Misskey's `generateInviteCode`: 8 random characters, then the epoch minute in base 32. */
function generateInviteCode(): string {
  let code = '';
  for (let i = 0; i < 8; i++) {
    code += CODE_CHARS[randomInt(CODE_CHARS.length)];
  }
  const minute: string[] = [];
  let n = Math.floor(Date.now() / 60_000);
  do {
    minute.unshift(CODE_CHARS[n % 32] as string);
    n = Math.floor(n / 32);
  } while (n > 0);
  return code + minute.join('');
}

/** `InviteCode`. `invite/create` answers with `createdBy: null` (API.md §0.1.6). */
function packInvite(
  store: Store,
  row: InviteRow,
  options: { withCreator: boolean },
): Record<string, unknown> {
  const creator = row.createdById ? store.users.get(row.createdById) : undefined;
  const user = row.usedById ? store.users.get(row.usedById) : undefined;
  return {
    id: row.id,
    code: row.code,
    expiresAt: row.expiresAt,
    createdAt: createdAtOf(row.id),
    createdBy: options.withCreator && creator ? packUserLite(store, creator) : null,
    usedBy: user ? packUserLite(store, user) : null,
    usedAt: row.usedAt,
    used: row.usedAt !== null,
  };
}

/** Codes I created within the policy's cycle (deleted codes no longer count). */
function createdInCycle(store: Store, userId: string, policies: Policies): number {
  const since = Date.now() - policies.inviteLimitCycle * 60_000;
  let count = 0;
  for (const row of invites(store).values()) {
    if (row.createdById === userId && timeOfId(row.id) > since) {
      count++;
    }
  }
  return count;
}

/** `signup` answers refusals with a bare 400 and an empty body (errors/signup.*.json). */
class EmptyBadRequest extends ApiError {
  constructor() {
    super('SIGNUP_REFUSED', '', '', 'client', 400);
  }

  override toBody(): { error: Record<string, unknown> } {
    return null as never;
  }
}

function packRole(store: Store, role: RoleRow): Record<string, unknown> {
  const meta = roleMeta(store).get(role.id) as RoleMeta;
  const policies: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(role.policies)) {
    policies[key] = value;
  }
  for (const [key, value] of Object.entries(DEFAULT_POLICIES)) {
    policies[key] ??= { useDefault: true, priority: 0, value };
  }
  let usersCount = 0;
  for (const user of store.users.values()) {
    if (user.roleIds.includes(role.id)) {
      usersCount++;
    }
  }
  const { createdAt, ...rest } = meta;
  return {
    id: role.id,
    createdAt,
    updatedAt: createdAt,
    name: role.name,
    ...rest,
    policies,
    usersCount,
  };
}

export const invitesEndpoints: EndpointDef[] = [
  {
    name: 'invite/create',
    requiredRolePolicy: 'canInvite',
    handler: (ctx) => {
      const user = me(ctx);
      const { store } = ctx;
      const policies = store.policiesOf(user);
      if (
        policies.inviteLimit > 0 &&
        createdInCycle(store, user.id, policies) >= policies.inviteLimit
      ) {
        throw apiError(
          'EXCEEDED_LIMIT_OF_CREATE_INVITE_CODE',
          '8b165dd3-6f37-4557-8db1-73175d63c641',
          'You have exceeded the limit for creating an invitation code.',
        );
      }
      const row: InviteRow = {
        id: store.ids.gen(),
        code: generateInviteCode(),
        createdById: user.id,
        expiresAt:
          policies.inviteExpirationTime > 0
            ? new Date(Date.now() + policies.inviteExpirationTime * 60_000).toISOString()
            : null,
        usedById: null,
        usedAt: null,
      };
      invites(store).set(row.id, row);
      return packInvite(store, row, { withCreator: false });
    },
  },
  {
    name: 'invite/limit',
    requiredRolePolicy: 'canInvite',
    handler: (ctx) => {
      const user = me(ctx);
      const policies = ctx.store.policiesOf(user);
      return {
        remaining:
          policies.inviteLimit > 0
            ? Math.max(0, policies.inviteLimit - createdInCycle(ctx.store, user.id, policies))
            : null,
      };
    },
  },
  {
    name: 'invite/list',
    requiredRolePolicy: 'canInvite',
    handler: (ctx: EndpointContext<PageParams>) => {
      const user = me(ctx);
      const mine = [...invites(ctx.store).values()].filter((row) => row.createdById === user.id);
      return paginate(mine, ctx.params, ctx.store.ids).map((row) =>
        packInvite(ctx.store, row, { withCreator: true }),
      );
    },
  },
  {
    name: 'invite/delete',
    requiredRolePolicy: 'canInvite',
    handler: (ctx: EndpointContext<{ inviteId: string }>) => {
      const user = me(ctx);
      const table = invites(ctx.store);
      const row = table.get(ctx.params.inviteId);
      const moderator = ctx.store.isModerator(user);
      if (!row) {
        throw apiError(
          'NO_SUCH_INVITE_CODE',
          'cd4f9ae4-7854-4e3e-8df9-c296f051e634',
          'No such invite code.',
        );
      }
      if (row.createdById !== user.id && !moderator) {
        throw apiError('ACCESS_DENIED', '5eb8d909-2540-4970-90b8-dd6f86088121', 'Access denied.');
      }
      if (row.usedAt !== null && !moderator) {
        throw apiError(
          'CAN_NOT_DELETE_INVITE_CODE',
          'ff17af39-000c-4d4e-abdf-848fa30fc1ce',
          "You can't delete this invite code.",
        );
      }
      table.delete(row.id);
      return null;
    },
  },
  {
    // Not an API endpoint in Misskey (SignupApiService), so not in the OpenAPI document: every
    // refusal is a bare 400 without a body, never INVALID_PARAM.
    name: 'signup',
    requireCredential: false,
    kind: null,
    params: { type: 'object' },
    handler: (
      ctx: EndpointContext<{ username?: unknown; password?: unknown; invitationCode?: unknown }>,
    ) => {
      const { store, params } = ctx;
      const { username, password, invitationCode } = params;
      if (typeof username !== 'string' || !/^\w{1,20}$/.test(username)) {
        throw new EmptyBadRequest();
      }
      if (typeof password !== 'string' || password === '') {
        throw new EmptyBadRequest();
      }
      let ticket: InviteRow | undefined;
      if (store.instance.disableRegistration) {
        if (typeof invitationCode !== 'string') {
          throw new EmptyBadRequest();
        }
        ticket = [...invites(store).values()].find((row) => row.code === invitationCode);
        if (!ticket || ticket.usedById !== null) {
          throw new EmptyBadRequest();
        }
        if (ticket.expiresAt !== null && Date.parse(ticket.expiresAt) < Date.now()) {
          throw new EmptyBadRequest();
        }
      }
      if (store.userByUsername(username)) {
        throw internalError('DUPLICATED_USERNAME');
      }
      const { user, token } = store.createUser(username);
      // Packed before the code is marked used, like Misskey.
      const packed = packUserDetailed(store, user, user, { withSecrets: true });
      if (ticket) {
        ticket.usedById = user.id;
        ticket.usedAt = new Date().toISOString();
      }
      return { ...packed, token };
    },
  },
  {
    name: 'admin/roles/create',
    requireAdmin: true,
    handler: (
      ctx: EndpointContext<
        Omit<RoleMeta, 'createdAt'> & { name: string; policies: RoleRow['policies'] }
      >,
    ) => {
      const { store, params } = ctx;
      const id = store.ids.gen();
      const role: RoleRow = {
        id,
        name: params.name,
        policies: {},
        isAdministrator: params.isAdministrator,
        isModerator: params.isModerator,
      };
      for (const [key, setting] of Object.entries(params.policies ?? {})) {
        if (key in DEFAULT_POLICIES && setting && typeof setting === 'object') {
          role.policies[key as keyof Policies] = {
            value: setting.value,
            priority: setting.priority ?? 0,
            useDefault: setting.useDefault ?? false,
          };
        }
      }
      store.roles.set(id, role);
      roleMeta(store).set(id, {
        createdAt: createdAtOf(id),
        description: params.description,
        color: params.color,
        iconUrl: params.iconUrl,
        target: params.target,
        condFormula: params.condFormula,
        isPublic: params.isPublic,
        isAdministrator: params.isAdministrator,
        isModerator: params.isModerator,
        isExplorable: params.isExplorable ?? false,
        asBadge: params.asBadge,
        preserveAssignmentOnMoveAccount: params.preserveAssignmentOnMoveAccount ?? false,
        canEditMembersByModerator: params.canEditMembersByModerator,
        displayOrder: params.displayOrder,
      });
      return packRole(store, role);
    },
  },
  {
    name: 'admin/roles/assign',
    requireModerator: true,
    handler: (
      ctx: EndpointContext<{ roleId: string; userId: string; expiresAt?: number | null }>,
    ) => {
      const { store, params } = ctx;
      const actor = me(ctx);
      const role = store.roles.get(params.roleId);
      if (!role) {
        throw apiError('NO_SUCH_ROLE', '6503c040-6af4-4ed9-bf07-f2dd16678eab', 'No such role.');
      }
      const meta = roleMeta(store).get(role.id);
      if (meta && !meta.canEditMembersByModerator && !store.isAdministrator(actor)) {
        throw apiError(
          'ACCESS_DENIED',
          '25b5bc31-dc79-4ebd-9bd2-c84978fd052c',
          'Only administrators can edit members of the role.',
        );
      }
      const user = store.users.get(params.userId);
      if (!user) {
        throw apiError('NO_SUCH_USER', '558ea170-f653-4700-94d0-5a818371d0df', 'No such user.');
      }
      if (params.expiresAt && params.expiresAt <= Date.now()) {
        return null;
      }
      if (user.roleIds.includes(role.id)) {
        throw internalError('User is already assigned to this role.', 'IdentifiableError');
      }
      user.roleIds.push(role.id);
      return null;
    },
  },
];
