import { DEMO_TOKENS, type DemoData, type DemoUser, type SeedTarget } from './demo.js';
import { seedChat } from './seeds/chat.js';
import { seedPublic } from './seeds/public.js';

export { DEMO_TOKENS, type DemoData, type DemoSeeder, type DemoUser } from './demo.js';

/**
 * Builds the demo data through the sandbox's own endpoints, the way a script would set up a real
 * instance: the first `admin/accounts/create` needs no token and makes the root admin, who then
 * creates alice, bob and carol. Their tokens are then swapped for the fixed DEMO_TOKENS.
 */
export async function seedDemo(sandbox: SeedTarget): Promise<DemoData> {
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
  for (const seeder of [seedChat, seedPublic]) {
    await seeder(sandbox, demo);
  }
  return demo;
}
