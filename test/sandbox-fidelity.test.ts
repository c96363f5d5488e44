import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Sandbox, startSandbox } from '../src/sandbox/server.js';
import { scenariosDir } from './support/recordings.js';

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

interface Upload {
  bytes: Buffer;
  filename: string;
  contentType: string;
  fields?: Record<string, string>;
}

async function upload(file: Upload, token: string = DEMO_TOKENS.alice): Promise<Answer> {
  const form = new FormData();
  for (const [key, value] of Object.entries(file.fields ?? {})) {
    form.set(key, value);
  }
  form.set(
    'file',
    new Blob([new Uint8Array(file.bytes)], { type: file.contentType }),
    file.filename,
  );
  const res = await fetch(`${sandbox.origin}/api/drive/files/create`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}` },
    body: form,
  });
  return { status: res.status, body: await res.json() };
}

/** The drive uploads of the recorded scenarios, with their bytes and Misskey's answers. */
function recordedUploads(): { upload: Upload; response: Record<string, unknown> }[] {
  const found = [];
  for (const name of ['a.json', 'stream-a.json']) {
    const scenario = JSON.parse(readFileSync(join(scenariosDir, name), 'utf8')) as {
      steps: {
        endpoint?: string;
        multipart?: { filename: string; contentType: string; base64: string };
        response: Record<string, unknown>;
      }[];
    };
    for (const step of scenario.steps) {
      if (step.endpoint === 'drive/files/create' && step.multipart) {
        const { filename, contentType, base64 } = step.multipart;
        const bytes = Buffer.from(base64, 'base64');
        found.push({ upload: { bytes, filename, contentType }, response: step.response });
      }
    }
  }
  return found;
}

const PNG = recordedUploads()[0]?.upload.bytes ?? Buffer.alloc(0);

describe('drive/files/create file info (core/FileInfoService.ts, core/DriveService.ts)', () => {
  it('computes the same type, size, properties and blurhash as Misskey for the recorded files', async () => {
    const uploads = recordedUploads();
    expect(uploads.length).toBeGreaterThanOrEqual(3);
    for (const { upload: file, response } of uploads) {
      const res = await upload({ ...file, fields: { force: 'true' } });
      expect(res.status).toBe(200);
      for (const key of ['type', 'md5', 'size', 'properties', 'blurhash']) {
        expect(res.body[key], key).toEqual(response[key]);
      }
    }
  });

  it('takes the type from the content, not from the part header', async () => {
    const png = await upload({
      bytes: PNG,
      filename: 'x.txt',
      contentType: 'text/plain',
      fields: { force: 'true' },
    });
    expect(png.body).toMatchObject({
      type: 'image/png',
      name: 'x.txt.png',
      properties: { width: 8, height: 8 },
    });
    const zip = Buffer.concat([Buffer.from('PK\x03\x04', 'latin1'), Buffer.alloc(60)]);
    const disguised = await upload({ bytes: zip, filename: 'a.png', contentType: 'image/png' });
    expect(disguised.status).toBe(400);
    expect(disguised.body.error).toMatchObject({
      code: 'UNALLOWED_FILE_TYPE',
      id: '4becd248-7f2c-48c4-a9f0-75edc4f9a1ea',
    });
    const binary = Buffer.from([0x00, 0xff, 0x10, 0x80, 0x00, 0x01, 0x02, 0x03]);
    const unknown = await upload({ bytes: binary, filename: 'b.png', contentType: 'image/png' });
    expect(unknown.body.error?.code).toBe('UNALLOWED_FILE_TYPE');
    const byAdmin = await upload(
      { bytes: binary, filename: 'blob', contentType: 'image/png' },
      DEMO_TOKENS.admin,
    );
    expect(byAdmin.body).toMatchObject({
      type: 'application/octet-stream',
      name: 'untitled.unknown',
      blurhash: null,
      properties: {},
    });
  });

  it('returns the existing file for the same bytes unless force is set', async () => {
    const bytes = Buffer.from('same text for dedup\n');
    const first = await upload({ bytes, filename: 'one.txt', contentType: 'text/plain' });
    const again = await upload({ bytes, filename: 'two.txt', contentType: 'text/plain' });
    expect(again.body.id).toBe(first.body.id);
    expect(again.body.name).toBe('one.txt');
    const forced = await upload({
      bytes,
      filename: 'three.txt',
      contentType: 'text/plain',
      fields: { force: 'true' },
    });
    expect(forced.body.id).not.toBe(first.body.id);
    expect(forced.body.type).toBe('text/plain');
  });

  it('refuses an invalid file name with INVALID_FILE_NAME', async () => {
    const res = await upload({
      bytes: PNG,
      filename: 'x.png',
      contentType: 'image/png',
      fields: { name: '../x.png' },
    });
    expect(res.body.error).toMatchObject({
      code: 'INVALID_FILE_NAME',
      id: 'f449b209-0c60-4e51-84d5-29486263bfd4',
    });
  });
});

describe('casting GET and multipart strings (server/api/ApiCallService.ts)', () => {
  it('refuses a string that is not JSON for a boolean or integer with its own INVALID_PARAM id', async () => {
    const res = await upload({
      bytes: PNG,
      filename: 'x.png',
      contentType: 'image/png',
      fields: { isSensitive: 'yes' },
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({
      code: 'INVALID_PARAM',
      id: '0b5f1631-7c1a-41a6-b399-cce335f34d85',
      info: { param: 'isSensitive', reason: 'cannot cast to boolean' },
    });
    const trend = await fetch(`${sandbox.origin}/api/hashtags/trend`);
    expect(trend.status).toBe(200);
  });
});

describe('moderator and administrator roles (server/api/ApiCallService.ts, core/RoleService.ts)', () => {
  const role = {
    description: '',
    color: null,
    iconUrl: null,
    target: 'manual',
    condFormula: {},
    isPublic: false,
    asBadge: false,
    canEditMembersByModerator: false,
    displayOrder: 0,
    policies: {},
  };
  const announcement = { title: 't', text: 'x', imageUrl: null };

  async function newUser(name: string): Promise<{ id: string; token: string }> {
    const res = await post(
      sandbox.origin,
      'admin/accounts/create',
      { username: name, password: `${name}-password` },
      DEMO_TOKENS.admin,
    );
    return res.body as unknown as { id: string; token: string };
  }

  async function assign(name: string, flags: object, userId: string): Promise<void> {
    const created = await post(
      sandbox.origin,
      'admin/roles/create',
      { ...role, name, isModerator: false, isAdministrator: false, ...flags },
      DEMO_TOKENS.admin,
    );
    const roleId = (created.body as { id: string }).id;
    const assigned = await post(
      sandbox.origin,
      'admin/roles/assign',
      { roleId, userId },
      DEMO_TOKENS.admin,
    );
    expect(assigned.status).toBe(204);
  }

  it('combines the policies of several roles as RoleService.getUserPolicies does', async () => {
    const user = await newUser('tworoles');
    const policy = (value: unknown, priority = 0) => ({ useDefault: false, priority, value });
    const withPolicies = async (name: string, policies: object) => {
      const created = await post(
        sandbox.origin,
        'admin/roles/create',
        { ...role, name, isModerator: false, isAdministrator: false, policies },
        DEMO_TOKENS.admin,
      );
      const roleId = (created.body as { id: string }).id;
      await post(
        sandbox.origin,
        'admin/roles/assign',
        { roleId, userId: user.id },
        DEMO_TOKENS.admin,
      );
    };
    await withPolicies('A', {
      canInvite: policy(true),
      inviteLimit: policy(7),
      chatAvailability: policy('readonly'),
    });
    await withPolicies('B', {
      canInvite: policy(false),
      inviteLimit: policy(3),
      chatAvailability: policy('unavailable'),
    });
    const i = await post(sandbox.origin, 'i', {}, user.token);
    expect((i.body as { policies: object }).policies).toMatchObject({
      canInvite: true,
      inviteLimit: 7,
      chatAvailability: 'readonly',
    });
    // A higher priority wins over every priority-0 value.
    await withPolicies('C', { chatAvailability: policy('unavailable', 1) });
    const history = await post(sandbox.origin, 'chat/history', {}, user.token);
    expect(history.status).toBe(500);
    expect(JSON.stringify(history.body)).toContain('ROLE_PERMISSION_DENIED');
  });

  it('a role with isModerator opens moderator endpoints, not administrator ones', async () => {
    const mod = await newUser('modrole');
    const before = await post(
      sandbox.origin,
      'admin/announcements/create',
      announcement,
      mod.token,
    );
    expect(before.body.error?.id).toBe('d33d5333-db36-423d-a8f9-1a2b9549da41');
    await assign('Moderators', { isModerator: true }, mod.id);
    const after = await post(sandbox.origin, 'admin/announcements/create', announcement, mod.token);
    expect(after.status).toBe(200);
    const admin = await post(
      sandbox.origin,
      'admin/roles/create',
      { ...role, name: 'n' },
      mod.token,
    );
    expect(admin.status).toBe(403);
    expect(admin.body.error).toMatchObject({
      code: 'ROLE_PERMISSION_DENIED',
      id: 'c3d38592-54c0-429d-be96-5636b0431a61',
    });
    const i = await post(sandbox.origin, 'i', {}, mod.token);
    expect(i.body).toMatchObject({ isModerator: true, isAdmin: false });
  });

  it('a moderator role sees rooms and messages it is not part of (core/ChatService.ts, stream/channels/chat-room.ts)', async () => {
    const mod = await newUser('chatmod');
    const roomId = sandbox.demo?.ids.room ?? '';
    const messageId = sandbox.demo?.ids.directLatestMessage ?? '';
    const before = await post(sandbox.origin, 'chat/messages/room-timeline', { roomId }, mod.token);
    expect(before.body.error?.id).toBe('c4d9f88c-9270-4632-b032-6ed8cee36f7f');
    await assign('Chat moderators', { isModerator: true }, mod.id);
    const timeline = await post(
      sandbox.origin,
      'chat/messages/room-timeline',
      { roomId },
      mod.token,
    );
    expect(timeline.status).toBe(200);
    const show = await post(sandbox.origin, 'chat/rooms/show', { roomId }, mod.token);
    expect(show.status).toBe(200);
    const message = await post(sandbox.origin, 'chat/messages/show', { messageId }, mod.token);
    expect(message.status).toBe(200);
    const { ws, frames } = await openSocket(mod.token);
    try {
      ws.send(
        JSON.stringify({
          type: 'connect',
          body: { channel: 'chatRoom', id: 'r', pong: true, params: { roomId } },
        }),
      );
      await expect.poll(() => frames.length).toBe(1);
      expect(frames[0]).toEqual({ type: 'connected', body: { id: 'r' } });
    } finally {
      ws.close();
    }
  });

  it('checks the role before the app token kind, which admin tokens may carry', async () => {
    const admin = sandbox.demo?.users.admin.id ?? '';
    const alice = sandbox.demo?.users.alice.id ?? '';
    sandbox.store.addToken('adminRolesApp001', {
      userId: admin,
      type: 'app',
      permissions: ['write:admin:roles'],
    });
    sandbox.store.addToken('adminOtherApp001', {
      userId: admin,
      type: 'app',
      permissions: ['write:admin:meta'],
    });
    sandbox.store.addToken('aliceRolesApp001', {
      userId: alice,
      type: 'app',
      permissions: ['write:admin:roles'],
    });
    const body = { ...role, name: 'via-app', isModerator: false, isAdministrator: false };
    const granted = await post(sandbox.origin, 'admin/roles/create', body, 'adminRolesApp001');
    expect(granted.status).toBe(200);
    const wrongKind = await post(sandbox.origin, 'admin/roles/create', body, 'adminOtherApp001');
    expect(wrongKind.status).toBe(403);
    expect(wrongKind.body.error).toMatchObject({
      code: 'PERMISSION_DENIED',
      id: '1370e5b7-d4eb-4566-bb1d-7748ee6a1838',
    });
    const notAdmin = await post(sandbox.origin, 'admin/roles/create', body, 'aliceRolesApp001');
    expect(notAdmin.body.error?.id).toBe('c3d38592-54c0-429d-be96-5636b0431a61');
  });

  it('a role with isAdministrator opens administrator endpoints and role-policy endpoints', async () => {
    const adm = await newUser('admrole');
    // invite/list requires the canInvite policy, which the demo default policies deny.
    const before = await post(sandbox.origin, 'invite/list', {}, adm.token);
    expect(before.body.error?.id).toBe('7f86f06f-7e15-4057-8561-f4b6d4ac755a');
    await assign('Admins', { isAdministrator: true }, adm.id);
    const created = await post(
      sandbox.origin,
      'admin/roles/create',
      { ...role, name: 'by-role-admin', isModerator: false, isAdministrator: false },
      adm.token,
    );
    expect(created.status).toBe(200);
    expect((await post(sandbox.origin, 'invite/list', {}, adm.token)).status).toBe(200);
    const i = await post(sandbox.origin, 'i', {}, adm.token);
    expect(i.body).toMatchObject({ isModerator: true, isAdmin: true });
  });
});

describe('date cursors (core/IdService.ts gen, core/QueryService.ts makePaginationQuery)', () => {
  // `sinceDate`/`untilDate` become `IdService.gen(date)`: an id of that millisecond with the next
  // counter value, which sorts after the ids already made in that millisecond.
  it('untilDate = a message createdAt includes it, sinceDate = its createdAt leaves it out', async () => {
    const bob = sandbox.demo?.users.bob.id ?? '';
    const sent = await post(
      sandbox.origin,
      'chat/messages/create-to-user',
      { toUserId: bob, text: 'date cursor' },
      DEMO_TOKENS.alice,
    );
    const { id, createdAt } = sent.body as { id: string; createdAt: string };
    const at = Date.parse(createdAt);
    const until = await post(
      sandbox.origin,
      'chat/messages/user-timeline',
      { userId: bob, untilDate: at, limit: 1 },
      DEMO_TOKENS.alice,
    );
    expect((until.body as unknown as { id: string }[]).map((m) => m.id)).toEqual([id]);
    const since = await post(
      sandbox.origin,
      'chat/messages/user-timeline',
      { userId: bob, sinceDate: at },
      DEMO_TOKENS.alice,
    );
    expect((since.body as unknown as { id: string }[]).map((m) => m.id)).not.toContain(id);
  });

  it('the same for announcements', async () => {
    const created = await post(
      sandbox.origin,
      'admin/announcements/create',
      { title: 'dated', text: 'x', imageUrl: null },
      DEMO_TOKENS.admin,
    );
    const { id, createdAt } = created.body as { id: string; createdAt: string };
    const at = Date.parse(createdAt);
    const until = await post(sandbox.origin, 'announcements', { untilDate: at, limit: 1 });
    expect((until.body as unknown as { id: string }[]).map((a) => a.id)).toEqual([id]);
    const since = await post(sandbox.origin, 'announcements', { sinceDate: at });
    expect((since.body as unknown as { id: string }[]).map((a) => a.id)).not.toContain(id);
  });
});

describe('main channel readNotification (core/NotificationService.ts readAllNotification)', () => {
  it('publishes readAllNotifications when something new was read, once', async () => {
    const carol = sandbox.demo?.users.carol.id ?? '';
    const room = await post(sandbox.origin, 'chat/rooms/create', { name: 'n' }, DEMO_TOKENS.alice);
    const roomId = (room.body as { id: string }).id;
    const { ws, frames } = await openSocket(DEMO_TOKENS.carol);
    try {
      ws.send(JSON.stringify({ type: 'connect', body: { channel: 'main', id: 'm', pong: true } }));
      await expect.poll(() => frames.length).toBe(1);
      const invited = await post(
        sandbox.origin,
        'chat/rooms/invitations/create',
        { roomId, userId: carol },
        DEMO_TOKENS.alice,
      );
      expect(invited.status).toBe(200);
      await expect.poll(() => frames.length).toBe(2); // the `notification`
      ws.send(JSON.stringify({ type: 'readNotification', body: {} }));
      await expect.poll(() => frames.length).toBe(3);
      expect(frames[2]).toEqual({
        type: 'channel',
        body: { id: 'm', type: 'readAllNotifications', body: null },
      });
      ws.send(JSON.stringify({ type: 'readNotification', body: {} }));
      // Nothing newer than the last read: no second event (nor the 2 s `unreadNotification`).
      await new Promise((resolve) => setTimeout(resolve, 2_300));
      expect(frames).toHaveLength(3);
    } finally {
      ws.close();
    }
  });
});
