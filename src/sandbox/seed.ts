import type { Sandbox } from './server.js';

/** Fixed demo tokens, so GraphiQL and examples work at once against `npm start`. */
export const DEMO_TOKENS = {
  admin: 'demoAdminToken01',
  alice: 'demoAliceToken01',
  bob: 'demoBobToken0001',
  carol: 'demoCarolToken01',
} as const;

export type DemoUser = keyof typeof DEMO_TOKENS;

export interface DemoData {
  users: Record<DemoUser, { id: string; username: string; token: string }>;
  /** Ids of what domain seeders created (rooms, messages, …), by name. */
  ids: Record<string, string>;
}

/** A domain's contribution to the demo data, run in order after the users exist. */
export type DemoSeeder = (sandbox: Sandbox, demo: DemoData) => Promise<void>;

/**
 * Builds the demo data through the sandbox's own endpoints, the way a script would set up a real
 * instance: the first `admin/accounts/create` needs no token and makes the root admin, who then
 * creates alice, bob and carol. Their tokens are then swapped for the fixed DEMO_TOKENS.
 */
export async function seedDemo(sandbox: Sandbox): Promise<DemoData> {
  const users = {} as DemoData['users'];
  const create = async (name: DemoUser, adminToken: string | null) => {
    const created = (await sandbox.call(
      'admin/accounts/create',
      { username: name, password: `${name}-demo-password` },
      adminToken,
    )) as { id: string; username: string; token: string };
    sandbox.store.tokens.delete(created.token);
    sandbox.store.addToken(DEMO_TOKENS[name], {
      userId: created.id,
      type: 'native',
      permissions: [],
    });
    users[name] = { id: created.id, username: created.username, token: DEMO_TOKENS[name] };
  };
  await create('admin', null);
  for (const name of ['alice', 'bob', 'carol'] as const) {
    await create(name, DEMO_TOKENS.admin);
  }

  await sandbox.call(
    'admin/roles/update-default-policies',
    {
      policies: {
        chatAvailability: 'available',
        canInvite: false,
        inviteLimit: 5,
        inviteLimitCycle: 1440,
        inviteExpirationTime: 0,
      },
    },
    DEMO_TOKENS.admin,
  );

  const profiles: Record<'alice' | 'bob' | 'carol', { name: string; description: string }> = {
    alice: { name: 'Alice', description: 'Builds things. #misskey #graphql' },
    bob: { name: 'Bob', description: 'Chatty. #misskey #chat' },
    carol: { name: 'Carol', description: '#graphql enjoyer' },
  };
  for (const [name, profile] of Object.entries(profiles)) {
    await sandbox.call('i/update', profile, DEMO_TOKENS[name as DemoUser]);
  }
  // Misskey's default chat scope is `mutual`: everyone follows everyone so that all can chat.
  const people = ['alice', 'bob', 'carol'] as const;
  for (const follower of people) {
    for (const followee of people) {
      if (follower !== followee) {
        await sandbox.call(
          'following/create',
          { userId: users[followee].id },
          DEMO_TOKENS[follower],
        );
      }
    }
  }

  const demo: DemoData = { users, ids: {} };
  // Imported here, not at the top: the seed modules import this one for their types.
  const { seedChat } = await import('./seeds/chat.js');
  const { seedPublic } = await import('./seeds/public.js');
  for (const seeder of [seedChat, seedPublic]) {
    await seeder(sandbox, demo);
  }
  return demo;
}
