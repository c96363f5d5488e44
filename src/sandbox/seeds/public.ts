import type { DemoSeeder, SeedTarget } from '../demo.js';

/**
 * Demo data of the public side, built through the sandbox's endpoints:
 * - announcements: a global welcome, a maintenance dialog that needs confirming, one addressed to
 *   alice only, and an archived one (`admin/announcements/update` isActive false);
 * - public notes with hashtags by alice, bob and carol (#misskey, #graphql, #chat, #typescript),
 *   which feed the hashtag statistics and the trend, next to the tags in their profiles;
 * - invites: the default role policy (seed.ts) does not allow invites, so carol gets the
 *   "Inviters" role (canInvite; the default inviteLimit of 5 per day applies) and has created one
 *   code. alice and bob stay without the policy: their invite calls are refused (FORBIDDEN).
 * Ids land in `demo.ids`: announcementWelcome, announcementMaintenance, announcementForAlice,
 * announcementArchived, inviterRole, carolInviteCode, and note<Name><n> for the notes.
 */
export const seedPublic: DemoSeeder = async (sandbox, demo) => {
  const admin = demo.users.admin.token;
  const announce = async (name: string, params: Record<string, unknown>) => {
    const created = (await sandbox.call(
      'admin/announcements/create',
      { imageUrl: null, ...params },
      admin,
    )) as { id: string };
    demo.ids[name] = created.id;
    return created.id;
  };
  await announce('announcementWelcome', {
    title: 'Welcome to the sandbox',
    text: 'This server runs **in memory**: everything resets when it stops.',
  });
  await announce('announcementMaintenance', {
    title: 'Maintenance window',
    text: 'Planned maintenance tonight from 22:00 UTC.',
    icon: 'warning',
    display: 'dialog',
    needConfirmationToRead: true,
  });
  await announce('announcementForAlice', {
    title: 'For Alice only',
    text: 'Your invite quota was raised.',
    icon: 'success',
    display: 'banner',
    userId: demo.users.alice.id,
  });
  const archived = await announce('announcementArchived', {
    title: 'Old news',
    text: 'The beta is over.',
    icon: 'error',
  });
  await sandbox.call(
    'admin/announcements/update',
    { id: archived, title: 'Old news', text: 'The beta is over.', imageUrl: null, isActive: false },
    admin,
  );

  const notes: [keyof typeof demo.users, string][] = [
    ['alice', 'Shipping the GraphQL gateway today! #misskey #graphql'],
    ['bob', 'Chat features look great #misskey #chat'],
    ['carol', 'Schema first, always. #graphql #typescript'],
    ['alice', 'Type all the things #typescript'],
  ];
  const counts: Record<string, number> = {};
  for (const [user, text] of notes) {
    const { createdNote } = (await sandbox.call(
      'notes/create',
      { text, visibility: 'public' },
      demo.users[user].token,
    )) as { createdNote: { id: string } };
    counts[user] = (counts[user] ?? 0) + 1;
    demo.ids[`note${user[0]?.toUpperCase()}${user.slice(1)}${counts[user]}`] = createdNote.id;
  }

  demo.ids.inviterRole = await grantRole(
    sandbox,
    admin,
    { name: 'Inviters', description: 'May create invitation codes.' },
    { canInvite: true },
    [demo.users.carol.id],
  );
  const code = (await sandbox.call('invite/create', {}, demo.users.carol.token)) as { id: string };
  demo.ids.carolInviteCode = code.id;
};

/** Creates a manual role overriding `policies` (admin/roles/create) and assigns it to `userIds`
 *  (admin/roles/assign); returns the role id. */
export async function grantRole(
  sandbox: SeedTarget,
  adminToken: string,
  role: { name: string; description: string },
  policies: Record<string, unknown>,
  userIds: string[],
): Promise<string> {
  const created = (await sandbox.call(
    'admin/roles/create',
    {
      ...role,
      color: null,
      iconUrl: null,
      target: 'manual',
      condFormula: {},
      isPublic: false,
      isModerator: false,
      isAdministrator: false,
      asBadge: false,
      canEditMembersByModerator: false,
      displayOrder: 0,
      policies: Object.fromEntries(
        Object.entries(policies).map(([key, value]) => [
          key,
          { useDefault: false, priority: 0, value },
        ]),
      ),
    },
    adminToken,
  )) as { id: string };
  for (const userId of userIds) {
    await sandbox.call('admin/roles/assign', { roleId: created.id, userId }, adminToken);
  }
  return created.id;
}
