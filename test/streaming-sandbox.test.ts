import { execFile } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Sandbox, startSandbox } from '../src/sandbox/server.js';
import { scenariosDir } from './support/recordings.js';
import { until } from './support/until.js';

let sandbox: Sandbox;
let ids: { alice: string; bob: string; carol: string };
const opened: WebSocket[] = [];

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
  const users = sandbox.demo?.users;
  if (!users) {
    throw new Error('demo data missing');
  }
  ids = { alice: users.alice.id, bob: users.bob.id, carol: users.carol.id };
});

afterAll(async () => {
  for (const ws of opened) {
    ws.terminate();
  }
  await sandbox.close();
});

interface Client {
  ws: WebSocket;
  frames: unknown[];
  send(frame: unknown): void;
  /** Resolves with the first frame (received so far or later) that `match` accepts. */
  next(match: (frame: Record<string, unknown>) => boolean, withinMs?: number): Promise<unknown>;
  /** Waits, then returns the frames that arrived meanwhile. */
  quiet(forMs: number): Promise<unknown[]>;
  close(): Promise<void>;
}

/** Opens /streaming; resolves with the client, or rejects with the refused HTTP status. */
function openSocket(
  token: string | null,
  options: { header?: boolean; path?: string } = {},
): Promise<Client> {
  const url = new URL(options.path ?? '/streaming', sandbox.origin.replace('http', 'ws'));
  const headers: Record<string, string> = {};
  if (token !== null) {
    if (options.header) {
      headers.authorization = `Bearer ${token}`;
    } else {
      url.searchParams.set('i', token);
    }
  }
  const ws = new WebSocket(url, { headers });
  opened.push(ws);
  const frames: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  ws.on('message', (data) => {
    frames.push(JSON.parse(data.toString()));
    for (const wake of waiters) {
      wake();
    }
  });
  const client: Client = {
    ws,
    frames,
    send: (frame) => ws.send(typeof frame === 'string' ? frame : JSON.stringify(frame)),
    next: (match, withinMs = 2_000) =>
      new Promise((resolvePromise, reject) => {
        let seen = 0;
        const check = () => {
          for (; seen < frames.length; seen++) {
            const frame = frames[seen] as Record<string, unknown>;
            if (match(frame)) {
              frames.splice(seen, 1);
              waiters.delete(check);
              clearTimeout(timer);
              resolvePromise(frame);
              return;
            }
          }
        };
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(
            new Error(`no matching frame within ${withinMs} ms; got ${JSON.stringify(frames)}`),
          );
        }, withinMs);
        waiters.add(check);
        check();
      }),
    quiet: async (forMs) => {
      await new Promise((r) => setTimeout(r, forMs));
      return frames.splice(0);
    },
    close: () =>
      new Promise((r) => {
        if (ws.readyState === WebSocket.CLOSED) {
          r();
          return;
        }
        ws.once('close', () => r());
        ws.close(1000);
      }),
  };
  return new Promise((resolvePromise, reject) => {
    ws.once('open', () => resolvePromise(client));
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`refused with ${res.statusCode}`), { res }));
    });
    ws.once('error', reject);
  });
}

const connected = (id: string) => (f: Record<string, unknown>) =>
  f.type === 'connected' && (f.body as { id: string }).id === id;
const channelEvent = (id: string, type: string) => (f: Record<string, unknown>) =>
  f.type === 'channel' &&
  (f.body as { id: string }).id === id &&
  (f.body as { type: string }).type === type;

describe('sandbox /streaming handshake', () => {
  it('accepts a valid token in ?i= and in Authorization, and counts the sockets', async () => {
    const before = sandbox.streaming.socketCount(ids.alice);
    const a = await openSocket(DEMO_TOKENS.alice);
    const b = await openSocket(DEMO_TOKENS.alice, { header: true });
    expect(sandbox.streaming.socketCount(ids.alice)).toBe(before + 2);
    await a.close();
    await b.close();
    await until(() => sandbox.streaming.socketCount(ids.alice) === before);
  });

  it('refuses an unknown token with 401 and WWW-Authenticate, before any websocket', async () => {
    const error = (await openSocket('notAValidToken00').catch((e: unknown) => e)) as {
      res: { statusCode: number; headers: Record<string, string> };
    };
    expect(error.res.statusCode).toBe(401);
    expect(error.res.headers['www-authenticate']).toContain('invalid_token');
  });

  it('refuses an app token without read:account with 401', async () => {
    sandbox.store.addToken('appTokenChatOnly', {
      userId: ids.alice,
      type: 'app',
      permissions: ['read:chat'],
    });
    const error = (await openSocket('appTokenChatOnly').catch((e: unknown) => e)) as {
      res: { statusCode: number };
    };
    expect(error.res.statusCode).toBe(401);
  });

  it('lets an anonymous socket open, but silently ignores credentialed channels', async () => {
    const anon = await openSocket(null);
    anon.send({ type: 'connect', body: { channel: 'main', id: 'm', params: {}, pong: true } });
    anon.send({
      type: 'connect',
      body: { channel: 'chatUser', id: 'u', params: { otherId: ids.alice }, pong: true },
    });
    expect(await anon.quiet(300)).toEqual([]);
    expect(sandbox.streaming.sockets(null)[0]?.channels()).toEqual([]);
    await anon.close();
  });

  it('refuses upgrades with the status set by refuseUpgrades, then accepts again', async () => {
    sandbox.streaming.refuseUpgrades(503);
    const error = (await openSocket(DEMO_TOKENS.alice).catch((e: unknown) => e)) as {
      res: { statusCode: number };
    };
    expect(error.res.statusCode).toBe(503);
    sandbox.streaming.refuseUpgrades(null);
    const ok = await openSocket(DEMO_TOKENS.alice);
    await ok.close();
  });
});

describe('sandbox /streaming channels', () => {
  it('answers connect with connected only when pong is true', async () => {
    const s = await openSocket(DEMO_TOKENS.bob);
    s.send({ type: 'connect', body: { channel: 'main', id: 'b-main', params: {}, pong: true } });
    s.send({
      type: 'connect',
      body: { channel: 'chatUser', id: 'b-dm', params: { otherId: ids.alice } },
    });
    expect(await s.next(connected('b-main'))).toEqual({
      type: 'connected',
      body: { id: 'b-main' },
    });
    expect(await s.quiet(200)).toEqual([]);
    expect(sandbox.streaming.channelCount('main', ids.bob)).toBe(1);
    expect(sandbox.streaming.channelCount('chatUser', ids.bob)).toBe(1);
    await s.close();
    await until(() => sandbox.streaming.channelCount(undefined, ids.bob) === 0);
  });

  it('is silent on malformed connects and keeps the socket usable', async () => {
    const s = await openSocket(DEMO_TOKENS.carol);
    s.send('h');
    s.send('ping');
    s.send({ type: 'connect', body: { channel: 'nope', id: 'x', pong: true } });
    s.send({ type: 'connect', body: { channel: 'main', pong: true } });
    s.send({ type: 'connect', body: { channel: 'main', id: 'm1', pong: 'yes' } });
    s.send({
      type: 'connect',
      body: { channel: 'chatUser', id: 'self', params: { otherId: ids.carol }, pong: true },
    });
    s.send({
      type: 'connect',
      body: { channel: 'chatUser', id: 'bad', params: { otherId: 5 }, pong: true },
    });
    s.send({
      type: 'connect',
      body: { channel: 'chatRoom', id: 'room', params: { roomId: 'au0000000000zzzz' }, pong: true },
    });
    s.send({ type: 'whatever', body: {} });
    expect(await s.quiet(300)).toEqual([]);
    s.send({ type: 'connect', body: { channel: 'main', id: 'm2', params: {}, pong: true } });
    await s.next(connected('m2'));
    await s.close();
  });

  it('opens main once per socket, replaces a reused connect id, and stops at 32 channels', async () => {
    const s = await openSocket(DEMO_TOKENS.carol);
    s.send({ type: 'connect', body: { channel: 'main', id: 'm1', params: {}, pong: true } });
    s.send({ type: 'connect', body: { channel: 'main', id: 'm2', params: {}, pong: true } });
    await s.next(connected('m1'));
    expect(await s.quiet(200)).toEqual([]);
    expect(sandbox.streaming.channelCount('main', ids.carol)).toBe(1);

    // the same id again: the old channel is replaced, not added
    s.send({
      type: 'connect',
      body: { channel: 'chatUser', id: 'dm', params: { otherId: ids.alice }, pong: true },
    });
    s.send({
      type: 'connect',
      body: { channel: 'chatUser', id: 'dm', params: { otherId: ids.bob }, pong: true },
    });
    await s.next(connected('dm'));
    await s.next(connected('dm'));
    expect(sandbox.streaming.sockets(ids.carol)[0]?.channels()).toContainEqual({
      id: 'dm',
      kind: 'chatUser',
      params: { otherId: ids.bob },
    });
    expect(sandbox.streaming.channelCount('chatUser', ids.carol)).toBe(1);

    for (let i = 0; i < 40; i++) {
      s.send({
        type: 'connect',
        body: { channel: 'chatUser', id: `c${i}`, params: { otherId: `other${i}` }, pong: true },
      });
    }
    for (let i = 0; i < 30; i++) {
      await s.next(connected(`c${i}`));
    }
    expect(await s.quiet(200)).toEqual([]);
    expect(sandbox.streaming.channelCount(undefined, ids.carol)).toBe(32);

    s.send({ type: 'disconnect', body: { id: 'dm' } });
    expect(await s.quiet(100)).toEqual([]);
    expect(sandbox.streaming.channelCount(undefined, ids.carol)).toBe(31);
    await s.close();
  });

  it('routes published events to the right channels only, as channel frames', async () => {
    const alice = await openSocket(DEMO_TOKENS.alice);
    const bob = await openSocket(DEMO_TOKENS.bob);
    alice.send({
      type: 'connect',
      body: { channel: 'main', id: 'a-main', params: {}, pong: true },
    });
    alice.send({
      type: 'connect',
      body: { channel: 'chatUser', id: 'a-bob', params: { otherId: ids.bob }, pong: true },
    });
    bob.send({
      type: 'connect',
      body: { channel: 'chatUser', id: 'b-carol', params: { otherId: ids.carol }, pong: true },
    });
    await alice.next(connected('a-main'));
    await alice.next(connected('a-bob'));
    await bob.next(connected('b-carol'));

    sandbox.events.emit('event', {
      stream: `chatUserStream:${ids.alice}-${ids.bob}`,
      type: 'deleted',
      body: 'au0000000000abcd',
    });
    sandbox.events.emit('event', {
      stream: `mainStream:${ids.alice}`,
      type: 'readAllAnnouncements',
      body: undefined,
    });
    sandbox.events.emit('event', {
      stream: 'broadcast',
      type: 'emojiAdded',
      body: { emoji: { name: 'x', skip: undefined } },
    });
    expect(await alice.next(channelEvent('a-bob', 'deleted'))).toEqual({
      type: 'channel',
      body: { id: 'a-bob', type: 'deleted', body: 'au0000000000abcd' },
    });
    expect(await alice.next(channelEvent('a-main', 'readAllAnnouncements'))).toEqual({
      type: 'channel',
      body: { id: 'a-main', type: 'readAllAnnouncements', body: null },
    });
    expect(await alice.next((f) => f.type === 'emojiAdded')).toEqual({
      type: 'emojiAdded',
      body: { emoji: { name: 'x' } },
    });
    expect(await bob.next((f) => f.type === 'emojiAdded')).toBeDefined();
    expect(await bob.quiet(100)).toEqual([]);
    expect(await alice.quiet(100)).toEqual([]);
    await alice.close();
    await bob.close();
  });
});

describe('sandbox /streaming with the chat endpoints', () => {
  it('echoes a DM to both chatUser channels; a stream read stops newChatMessage', async () => {
    const alice = await openSocket(DEMO_TOKENS.alice);
    const bob = await openSocket(DEMO_TOKENS.bob);
    alice.send({
      type: 'connect',
      body: { channel: 'chatUser', id: 'a-dm', params: { otherId: ids.bob }, pong: true },
    });
    bob.send({ type: 'connect', body: { channel: 'main', id: 'b-main', params: {}, pong: true } });
    bob.send({
      type: 'connect',
      body: { channel: 'chatUser', id: 'b-dm', params: { otherId: ids.alice }, pong: true },
    });
    await alice.next(connected('a-dm'));
    await bob.next(connected('b-main'));
    await bob.next(connected('b-dm'));
    const sent = (await sandbox.call(
      'chat/messages/create-to-user',
      { toUserId: ids.bob, text: 'streamed' },
      DEMO_TOKENS.alice,
    )) as { id: string };
    const echo = (await alice.next(channelEvent('a-dm', 'message'))) as {
      body: { body: { id: string; text: string } };
    };
    expect(echo.body.body).toMatchObject({ id: sent.id, text: 'streamed' });
    await bob.next(channelEvent('b-dm', 'message'));
    bob.send({ type: 'ch', body: { id: 'b-dm', type: 'read', body: {} } });
    expect(await bob.quiet(3_500)).toEqual([]);
    await alice.close();
    await bob.close();
  });

  it('opens chatRoom for a member only (membership checked at connect)', async () => {
    const roomId = sandbox.demo?.ids.pendingInvitationRoom as string; // bob's room; alice is invited
    const alice = await openSocket(DEMO_TOKENS.alice);
    const bob = await openSocket(DEMO_TOKENS.bob);
    alice.send({
      type: 'connect',
      body: { channel: 'chatRoom', id: 'r', params: { roomId }, pong: true },
    });
    bob.send({
      type: 'connect',
      body: { channel: 'chatRoom', id: 'r', params: { roomId }, pong: true },
    });
    await bob.next(connected('r'));
    expect(await alice.quiet(200)).toEqual([]);
    await sandbox.call(
      'chat/messages/create-to-room',
      { toRoomId: roomId, text: 'hi' },
      DEMO_TOKENS.bob,
    );
    await bob.next(channelEvent('r', 'message'));
    expect(await alice.quiet(100)).toEqual([]);
    await alice.close();
    await bob.close();
  });
});

describe('sandbox /streaming fault knobs', () => {
  it('drop() destroys every socket of a user without a close frame', async () => {
    const a = await openSocket(DEMO_TOKENS.alice);
    const b = await openSocket(DEMO_TOKENS.alice);
    const codes: number[] = [];
    a.ws.on('close', (code) => codes.push(code));
    b.ws.on('close', (code) => codes.push(code));
    const acceptedBefore = sandbox.streaming.acceptedCount(ids.alice);
    expect(sandbox.streaming.drop(ids.alice)).toBe(2);
    await until(() => codes.length === 2);
    expect(codes).toEqual([1006, 1006]);
    expect(sandbox.streaming.socketCount(ids.alice)).toBe(0);
    expect(sandbox.streaming.acceptedCount(ids.alice)).toBe(acceptedBefore);
  });

  it('stall() stops delivery and pongs until resumed', async () => {
    const s = await openSocket(DEMO_TOKENS.bob);
    s.send({ type: 'connect', body: { channel: 'main', id: 'm', params: {}, pong: true } });
    await s.next(connected('m'));
    expect(sandbox.streaming.stall(ids.bob)).toBe(1);
    let pongs = 0;
    s.ws.on('pong', () => pongs++);
    s.ws.ping();
    sandbox.events.emit('event', {
      stream: `mainStream:${ids.bob}`,
      type: 'readAllAnnouncements',
      body: null,
    });
    s.send({
      type: 'connect',
      body: { channel: 'chatUser', id: 'dm', params: { otherId: ids.alice }, pong: true },
    });
    expect(await s.quiet(200)).toEqual([]);
    expect(pongs).toBe(0);
    expect(sandbox.streaming.sockets(ids.bob)[0]?.stalled).toBe(true);
    sandbox.streaming.stall(ids.bob, false);
    s.ws.ping();
    sandbox.events.emit('event', {
      stream: `mainStream:${ids.bob}`,
      type: 'readAllAnnouncements',
      body: null,
    });
    await s.next(channelEvent('m', 'readAllAnnouncements'));
    await until(() => pongs === 1);
    await s.close();
  });
});

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..');
const scenario = resolve(scenariosDir, 'stream-a.json');
const replayer = resolve(scenariosDir, 'replay.mjs');

describe('stream-a.json replay against an empty sandbox', () => {
  it('matches every step', { timeout: 180_000 }, async () => {
    const empty = await startSandbox({ port: 0, seed: 'empty' });
    try {
      const { code, stdout, stderr } = await new Promise<{
        code: number;
        stdout: string;
        stderr: string;
      }>((resolvePromise) => {
        execFile(
          process.execPath,
          [replayer, scenario, empty.origin],
          { cwd: root, timeout: 170_000, maxBuffer: 16 * 1024 * 1024 },
          (error, out, err) =>
            resolvePromise({
              code: error ? ((error as { code?: number }).code ?? 1) : 0,
              stdout: out,
              stderr: err,
            }),
        );
      });
      expect(`${stdout}${stderr}`).toMatch(/replay: \d+ steps, \d+ match, 0 mismatch/);
      expect(code).toBe(0);
    } finally {
      await empty.close();
    }
  });
});
