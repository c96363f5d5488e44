import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Sandbox, startSandbox } from '../src/sandbox/server.js';

/**
 * Branches of Misskey 2026.5.4 that the recorded scenarios do not reach, checked over real HTTP
 * against the sandbox. Each case names the Misskey source file (packages/backend/src/…) that
 * decides the answer.
 */
let sandbox: Sandbox;
beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
});
afterAll(async () => {
  await sandbox.close();
});

interface Answer {
  status: number;
  body: Record<string, unknown> & { error?: { code: string; id: string; kind: string } };
}

async function post(
  origin: string,
  endpoint: string,
  body: object,
  token?: string,
): Promise<Answer> {
  const res = await fetch(`${origin}/api/${endpoint}`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text === '' ? {} : JSON.parse(text) };
}

describe('admin/accounts/create permissions (server/api/endpoints/admin/accounts/create.ts)', () => {
  const account = { username: 'zed', password: 'zed-password' };

  it('refuses a second bootstrap without credential with ACCESS_DENIED', async () => {
    const res = await post(sandbox.origin, 'admin/accounts/create', account);
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      code: 'ACCESS_DENIED',
      id: '1fb7cb09-d46a-4fff-b8df-057708cce513',
      kind: 'client',
    });
  });

  it('refuses a non-admin caller and an admin app token with ACCESS_DENIED', async () => {
    const byAlice = await post(sandbox.origin, 'admin/accounts/create', account, DEMO_TOKENS.alice);
    expect(byAlice.status).toBe(400);
    expect(byAlice.body.error?.id).toBe('1fb7cb09-d46a-4fff-b8df-057708cce513');
    const admin = sandbox.demo?.users.admin;
    sandbox.store.addToken('adminAppToken123', {
      userId: admin?.id ?? '',
      type: 'app',
      permissions: ['write:admin:account'],
    });
    const byApp = await post(sandbox.origin, 'admin/accounts/create', account, 'adminAppToken123');
    expect(byApp.body.error?.id).toBe('1fb7cb09-d46a-4fff-b8df-057708cce513');
  });

  it('rejects a setup password on the first call when none is configured', async () => {
    const empty = await startSandbox({ port: 0, seed: 'empty' });
    try {
      const wrong = await post(empty.origin, 'admin/accounts/create', {
        ...account,
        setupPassword: 'guess',
      });
      expect(wrong.status).toBe(400);
      expect(wrong.body.error).toMatchObject({
        code: 'INCORRECT_INITIAL_PASSWORD',
        id: '97147c55-1ae1-4f6f-91d6-e1c3e0e76d62',
      });
      const first = await post(empty.origin, 'admin/accounts/create', {
        ...account,
        setupPassword: ' ',
      });
      expect(first.status).toBe(200);
      expect(first.body.isAdmin).toBe(true);
    } finally {
      await empty.close();
    }
  });
});

/** Opens an authenticated socket and collects its frames. */
async function openSocket(token: string): Promise<{ ws: WebSocket; frames: unknown[] }> {
  const ws = new WebSocket(`${sandbox.origin.replace('http', 'ws')}/streaming?i=${token}`);
  const frames: unknown[] = [];
  ws.on('message', (data) => frames.push(JSON.parse(data.toString())));
  await new Promise((resolve, reject) => {
    ws.once('open', resolve);
    ws.once('error', reject);
  });
  return { ws, frames };
}

describe('streaming connect validation (server/api/stream/Connection.ts)', () => {
  it('drops malformed connect requests silently and accepts pong: null', async () => {
    const { ws, frames } = await openSocket(DEMO_TOKENS.alice);
    try {
      const malformed = [
        { channel: 'main', id: 1, pong: true },
        { id: 'no-channel', pong: true },
        { channel: 'main', id: 'params-string', params: 'x', pong: true },
        { channel: 'main', id: 'params-array', params: [], pong: true },
        { channel: 'main', id: 'params-null', params: null, pong: true },
        { channel: 'nope', id: 'unknown', pong: true },
        { channel: 'main', id: 'pong-string', pong: 'yes' },
      ];
      for (const body of malformed) {
        ws.send(JSON.stringify({ type: 'connect', body }));
      }
      ws.send(JSON.stringify({ type: 'connect', body: ['main'] }));
      ws.send(JSON.stringify({ type: 'connect', body: { channel: 'main', id: 'm', pong: null } }));
      ws.send(
        JSON.stringify({
          type: 'connect',
          body: {
            channel: 'chatUser',
            id: 'ok',
            pong: true,
            params: { otherId: sandbox.demo?.users.bob.id },
          },
        }),
      );
      await expect.poll(() => frames.length).toBe(1);
      expect(frames).toEqual([{ type: 'connected', body: { id: 'ok' } }]);
      const alice = sandbox.demo?.users.alice.id ?? '';
      const [socket] = sandbox.streaming.sockets(alice);
      expect(
        socket
          ?.channels()
          .map((c) => c.id)
          .sort(),
      ).toEqual(['m', 'ok']);
    } finally {
      ws.close();
    }
  });
});

describe('UserDetailed keys by viewer (core/entities/UserEntityService.ts pack)', () => {
  it('shows followedMessage only to a follower, and moderator keys only to moderators', async () => {
    const created = await post(
      sandbox.origin,
      'admin/accounts/create',
      { username: 'loner', password: 'loner-password' },
      DEMO_TOKENS.admin,
    );
    expect(created.body).not.toHaveProperty('moderationNote');
    const userId = created.body.id as string;
    const byAlice = (await post(sandbox.origin, 'users/show', { userId }, DEMO_TOKENS.alice)).body;
    expect(byAlice.isFollowing).toBe(false);
    expect(byAlice).not.toHaveProperty('followedMessage');
    expect(byAlice).not.toHaveProperty('moderationNote');
    expect(byAlice).not.toHaveProperty('twoFactorEnabled');
    await post(sandbox.origin, 'following/create', { userId }, DEMO_TOKENS.alice);
    const following = (await post(sandbox.origin, 'users/show', { userId }, DEMO_TOKENS.alice))
      .body;
    expect(following.followedMessage).toBeNull();

    const byAdmin = (await post(sandbox.origin, 'users/show', { userId }, DEMO_TOKENS.admin)).body;
    expect(byAdmin).toMatchObject({
      moderationNote: '',
      twoFactorEnabled: false,
      usePasswordLessLogin: false,
      securityKeys: false,
    });
    expect(byAdmin).not.toHaveProperty('followedMessage');
    expect(byAdmin).not.toHaveProperty('policies');
    const adminSelf = (await post(sandbox.origin, 'i', {}, DEMO_TOKENS.admin)).body;
    expect(adminSelf.moderationNote).toBe('');
    const anonymous = (await post(sandbox.origin, 'users/show', { userId })).body;
    expect(anonymous).not.toHaveProperty('twoFactorEnabled');
    expect(anonymous).not.toHaveProperty('isFollowing');
  });
});
