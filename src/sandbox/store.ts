import { randomBytes } from 'node:crypto';
import { IdGenerator } from './ids.js';

/** Role policies as Misskey's RoleService DEFAULT_POLICIES (2026.5), the fields the sandbox uses
 *  first. `i` returns all of them. */
export const DEFAULT_POLICIES = {
  gtlAvailable: true,
  ltlAvailable: true,
  canPublicNote: true,
  mentionLimit: 20,
  canInvite: false,
  inviteLimit: 0,
  inviteLimitCycle: 10080,
  inviteExpirationTime: 0,
  canManageCustomEmojis: false,
  canManageAvatarDecorations: false,
  canSearchNotes: false,
  canSearchUsers: true,
  canUseTranslator: true,
  canHideAds: false,
  canCreateChannel: true,
  driveCapacityMb: 100,
  maxFileSizeMb: 30,
  alwaysMarkNsfw: false,
  canUpdateBioMedia: true,
  pinLimit: 5,
  antennaLimit: 5,
  wordMuteLimit: 200,
  webhookLimit: 3,
  clipLimit: 10,
  noteEachClipsLimit: 200,
  userListLimit: 10,
  userEachUserListsLimit: 50,
  rateLimitFactor: 1,
  avatarDecorationLimit: 1,
  canImportAntennas: false,
  canImportBlocking: false,
  canImportFollowing: false,
  canImportMuting: false,
  canImportUserLists: false,
  chatAvailability: 'available' as 'available' | 'readonly' | 'unavailable',
  uploadableFileTypes: ['text/*', 'application/json', 'image/*', 'video/*', 'audio/*'],
  noteDraftLimit: 10,
  scheduledNoteLimit: 1,
  watermarkAvailable: true,
};

export type Policies = typeof DEFAULT_POLICIES;

/** How RoleService.getUserPolicies combines the values of one policy across roles. */
function aggregatePolicy(key: string, baseValue: unknown, values: unknown[]): unknown {
  if (key === 'chatAvailability') {
    if (values.includes('available')) {
      return 'available';
    }
    return values.includes('readonly') ? 'readonly' : 'unavailable';
  }
  if (typeof baseValue === 'boolean') {
    return values.some((v) => v === true);
  }
  if (typeof baseValue === 'number') {
    return Math.max(...values.map(Number));
  }
  if (Array.isArray(baseValue)) {
    return [...new Set(values.flatMap((v) => (Array.isArray(v) ? v : [])))];
  }
  return values[values.length - 1];
}

export type ChatScope = 'everyone' | 'following' | 'followers' | 'mutual' | 'none';

export interface UserRow {
  id: string;
  username: string;
  host: null;
  name: string | null;
  description: string | null;
  location: string | null;
  birthday: string | null;
  lang: string | null;
  /** Hashtags of the profile description (lower-cased, NFKC), for hashtags/users. */
  tags: string[];
  isAdmin: boolean;
  isModerator: boolean;
  isRoot: boolean;
  isSuspended: boolean;
  isBot: boolean;
  isCat: boolean;
  isLocked: boolean;
  chatScope: ChatScope;
  updatedAt: string | null;
  /** Epoch ms of the last profile update or activity, for hashtags/users `state: alive`. */
  lastActiveAt: number;
  /** Role ids assigned to this user. */
  roleIds: string[];
  notesCount: number;
}

export interface TokenRow {
  userId: string;
  /** `native` = the 16-character session token; `app` tokens carry permissions. */
  type: 'native' | 'app';
  permissions: readonly string[];
}

export interface RoleRow {
  id: string;
  name: string;
  policies: Partial<
    Record<keyof Policies, { value: unknown; useDefault?: boolean; priority?: number }>
  >;
  /** Misskey's role flags: an assigned role with one of them makes its users administrators or
   *  moderators (RoleService.isAdministrator / isModerator). */
  isAdministrator?: boolean;
  isModerator?: boolean;
}

export interface DriveFileRow {
  id: string;
  userId: string;
  name: string;
  type: string;
  md5: string;
  size: number;
  comment: string | null;
  isSensitive: boolean;
  properties: { width?: number; height?: number; orientation?: number };
  blurhash: string | null;
  accessKey: string;
}

/**
 * The sandbox's in-memory database. Core tables live here; a domain module keeps its own tables
 * in `ext(name, init)` so that adding a domain never touches this file.
 */
export class Store {
  readonly ids: IdGenerator;
  readonly users = new Map<string, UserRow>();
  readonly tokens = new Map<string, TokenRow>();
  /** `follower>followee` */
  readonly follows = new Set<string>();
  /** `blocker>blockee` */
  readonly blocks = new Set<string>();
  /** `muter>mutee` */
  readonly mutes = new Set<string>();
  readonly driveFiles = new Map<string, DriveFileRow>();
  readonly roles = new Map<string, RoleRow>();
  defaultPolicies: Policies = structuredClone(DEFAULT_POLICIES);
  /** Instance settings that the sandbox honours. */
  readonly instance = {
    name: 'Misskey sandbox',
    disableRegistration: true,
    swPublicKey: null as string | null,
  };
  readonly #ext = new Map<string, unknown>();

  constructor(readonly origin: string) {
    this.ids = new IdGenerator();
  }

  /** A domain module's own tables, created on first use. */
  ext<T>(name: string, init: () => T): T {
    let value = this.#ext.get(name) as T | undefined;
    if (value === undefined) {
      value = init();
      this.#ext.set(name, value);
    }
    return value;
  }

  userByUsername(username: string): UserRow | undefined {
    const lower = username.trim().toLowerCase();
    for (const user of this.users.values()) {
      if (user.username.toLowerCase() === lower) {
        return user;
      }
    }
    return undefined;
  }

  /**
   * Effective policies of a user, as RoleService.getUserPolicies: with no role, the default
   * policies; else, per policy, the values of the highest priority present among the user's roles
   * (a role that does not set it counts with the default value), combined: any `true` for a
   * boolean, the largest number, the union of `uploadableFileTypes`, and for `chatAvailability`
   * `available` over `readonly` over `unavailable`.
   */
  policiesOf(user: UserRow): Policies {
    const base = this.defaultPolicies;
    const roles = this.#assignedRoles(user);
    if (roles.length === 0) {
      return structuredClone(base);
    }
    const policies = {} as Record<string, unknown>;
    for (const [key, baseValue] of Object.entries(base)) {
      const settings = roles.map(
        (role) =>
          role.policies[key as keyof Policies] ?? {
            priority: 0,
            useDefault: true,
            value: undefined,
          },
      );
      const top = [2, 1]
        .map((priority) => settings.filter((s) => (s.priority ?? 0) === priority))
        .find((tier) => tier.length > 0);
      const values = (top ?? settings).map((s) => (s.useDefault ? baseValue : s.value));
      policies[key] = aggregatePolicy(key, baseValue, values);
    }
    return structuredClone(policies) as Policies;
  }

  /** RoleService.isAdministrator: the root user, or an assigned role with `isAdministrator`
   *  (`isAdmin` is the sandbox's shortcut for such a role). */
  isAdministrator(user: UserRow): boolean {
    return user.isRoot || user.isAdmin || this.#assignedRoles(user).some((r) => r.isAdministrator);
  }

  /** RoleService.isModerator: the root user, or an assigned role with `isModerator` or
   *  `isAdministrator` (`isModerator`/`isAdmin` are the sandbox's shortcuts for such roles). */
  isModerator(user: UserRow): boolean {
    return (
      user.isModerator ||
      this.isAdministrator(user) ||
      this.#assignedRoles(user).some((r) => r.isModerator)
    );
  }

  #assignedRoles(user: UserRow): RoleRow[] {
    const roles: RoleRow[] = [];
    for (const roleId of user.roleIds) {
      const role = this.roles.get(roleId);
      if (role) {
        roles.push(role);
      }
    }
    return roles;
  }

  isFollowing(follower: string, followee: string): boolean {
    return this.follows.has(`${follower}>${followee}`);
  }

  isBlocking(blocker: string, blockee: string): boolean {
    return this.blocks.has(`${blocker}>${blockee}`);
  }

  isMuting(muter: string, mutee: string): boolean {
    return this.mutes.has(`${muter}>${mutee}`);
  }

  /** Creates a local user and its native token. */
  createUser(username: string, options: Partial<UserRow> = {}): { user: UserRow; token: string } {
    const id = this.ids.gen();
    const user: UserRow = {
      id,
      username,
      host: null,
      name: null,
      description: null,
      location: null,
      birthday: null,
      lang: null,
      tags: [],
      isAdmin: false,
      isModerator: false,
      isRoot: false,
      isSuspended: false,
      isBot: false,
      isCat: false,
      isLocked: false,
      chatScope: 'mutual',
      updatedAt: null,
      lastActiveAt: Date.now(),
      roleIds: [],
      notesCount: 0,
      ...options,
    };
    this.users.set(id, user);
    const token = newNativeToken();
    this.tokens.set(token, { userId: id, type: 'native', permissions: [] });
    return { user, token };
  }

  /** Registers a token with a fixed value (demo data), or a permission-scoped app token. */
  addToken(token: string, row: TokenRow): void {
    this.tokens.set(token, row);
  }

  fileUrl(file: DriveFileRow): string {
    return `${this.origin}/files/${file.accessKey}`;
  }
}

const TOKEN_CHARS = '0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ';

/** Misskey's native token: 16 random alphanumeric characters. */
export function newNativeToken(): string {
  const bytes = randomBytes(16);
  let token = '';
  for (const byte of bytes) {
    token += TOKEN_CHARS[byte % TOKEN_CHARS.length];
  }
  return token;
}
