import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { errorCode as code, DEMO_TOKENS, type Stack, startStack } from './harness.js';
import { recordedDir } from './support/recordings.js';

/**
 * Push subscriptions end to end: `pushSubscription`, `registerPushSubscription`,
 * `updatePushSubscription` and `unregisterPushSubscription` over real HTTP, including Misskey's
 * token rule (only the native session token) and the 204-means-absent answer; and the sandbox's
 * `sw/*` endpoints against every recording of them (values included: they do not depend on data).
 */

let stack: Stack;
const APP_TOKEN = 'appTokenOfAliceWithManyPermissions0001';

beforeAll(async () => {
  stack = await startStack({ sandbox: { rateLimits: false } });
  stack.sandbox.store.addToken(APP_TOKEN, {
    userId: stack.sandbox.demo?.users.alice.id as string,
    type: 'app',
    permissions: ['read:account', 'write:account', 'read:notifications', 'write:notifications'],
  });
});
beforeEach(() => {
  stack.sandbox.resetCalls();
});

const REGISTER = `mutation ($endpoint: String!, $auth: String!, $key: String!, $read: Boolean) {
  registerPushSubscription(endpoint: $endpoint, auth: $auth, publicKey: $key, sendReadMessage: $read) {
    state key userId endpoint sendReadMessage subscription { endpoint user { username } } } }`;
const SHOW = `query ($endpoint: String!) {
  pushSubscription(endpoint: $endpoint) { endpoint sendReadMessage userId user { username } } }`;

describe('registerPushSubscription', () => {
  it('subscribes, then answers ALREADY_SUBSCRIBED with the stored settings', async () => {
    const endpoint = 'https://push.example.com/one';
    const first = await stack.gql<{ registerPushSubscription: Record<string, unknown> }>(REGISTER, {
      endpoint,
      auth: 'secret',
      key: 'p256dh',
    });
    expect(first.errors).toBeUndefined();
    expect(first.data?.registerPushSubscription).toEqual({
      state: 'SUBSCRIBED',
      key: null,
      userId: stack.sandbox.demo?.users.alice.id,
      endpoint,
      sendReadMessage: false,
      subscription: { endpoint, user: { username: 'alice' } },
    });
    const again = await stack.gql<{ registerPushSubscription: Record<string, unknown> }>(REGISTER, {
      endpoint,
      auth: 'secret',
      key: 'p256dh',
      read: true,
    });
    expect(again.data?.registerPushSubscription).toMatchObject({
      state: 'ALREADY_SUBSCRIBED',
      sendReadMessage: false,
    });
  });

  it("returns the server's VAPID key when one is configured", async () => {
    stack.sandbox.store.instance.swPublicKey = 'BTestVapidPublicKey';
    try {
      const res = await stack.gql<{ registerPushSubscription: { key: string } }>(REGISTER, {
        endpoint: 'https://push.example.com/keyed',
        auth: 'a',
        key: 'k',
      });
      expect(res.data?.registerPushSubscription.key).toBe('BTestVapidPublicKey');
    } finally {
      stack.sandbox.store.instance.swPublicKey = null;
    }
  });
});

describe('token rules', () => {
  it('without a token every push field is UNAUTHENTICATED before any upstream call', async () => {
    const operations: [string, Record<string, unknown>][] = [
      [SHOW, { endpoint: 'https://push.example.com/one' }],
      [REGISTER, { endpoint: 'https://push.example.com/one', auth: 'a', key: 'k' }],
      [
        'mutation { updatePushSubscription(endpoint: "x", sendReadMessage: true) { endpoint } }',
        {},
      ],
      // The anonymous sw/unregister would delete every user's subscription: never sent.
      ['mutation { unregisterPushSubscription(endpoint: "https://push.example.com/one") }', {}],
    ];
    for (const [operation, variables] of operations) {
      expect(code(await stack.gql(operation, variables, null))).toBe('UNAUTHENTICATED');
    }
    expect(stack.sandbox.callCount()).toBe(0);
  });

  it('an app token is FORBIDDEN with the reason (Misskey: secure endpoint)', async () => {
    const res = await stack.gql(
      REGISTER,
      { endpoint: 'https://push.example.com/app', auth: 'a', key: 'k' },
      APP_TOKEN,
    );
    expect(code(res)).toBe('FORBIDDEN');
    expect(res.errors?.[0]?.message).toMatch(/session token/);
    expect(res.errors?.[0]?.extensions?.misskey).toMatchObject({
      code: 'ACCESS_DENIED',
      id: '56f35758-7dd5-468b-8439-5d6fb8ec9b8e',
      status: 400,
    });
    const show = await stack.gql(SHOW, { endpoint: 'https://push.example.com/one' }, APP_TOKEN);
    expect(code(show)).toBe('FORBIDDEN');
  });
});

describe('pushSubscription, updatePushSubscription and unregisterPushSubscription', () => {
  const endpoint = 'https://push.example.com/shared';

  it('reads, updates and removes the viewer’s subscription only', async () => {
    await stack.gql(REGISTER, { endpoint, auth: 'a', key: 'k' });
    await stack.gql(REGISTER, { endpoint, auth: 'b', key: 'l' }, DEMO_TOKENS.bob);

    const shown = await stack.gql<{ pushSubscription: Record<string, unknown> }>(SHOW, {
      endpoint,
    });
    expect(shown.data?.pushSubscription).toEqual({
      endpoint,
      sendReadMessage: false,
      userId: stack.sandbox.demo?.users.alice.id,
      user: { username: 'alice' },
    });

    const updated = await stack.gql(
      'mutation ($endpoint: String!) { updatePushSubscription(endpoint: $endpoint, sendReadMessage: true) { endpoint sendReadMessage } }',
      { endpoint },
    );
    expect(updated.data).toEqual({
      updatePushSubscription: { endpoint, sendReadMessage: true },
    });

    const removed = await stack.gql(
      'mutation ($endpoint: String!) { unregisterPushSubscription(endpoint: $endpoint) }',
      { endpoint },
    );
    expect(removed.data).toEqual({ unregisterPushSubscription: endpoint });
    stack.sandbox.resetCalls();
    const gone = await stack.gql(SHOW, { endpoint });
    expect(gone.errors).toBeUndefined();
    expect(gone.data).toEqual({ pushSubscription: null });
    // The empty 204 answer, not an error, is what made it null.
    expect(stack.sandbox.calls.at(-1)).toMatchObject({
      endpoint: 'sw/show-registration',
      status: 204,
    });
    const bobs = await stack.gql<{ pushSubscription: { endpoint: string } }>(
      SHOW,
      { endpoint },
      DEMO_TOKENS.bob,
    );
    expect(bobs.data?.pushSubscription.endpoint).toBe(endpoint);
  });

  it('updating an unknown endpoint is NOT_FOUND (NO_SUCH_REGISTRATION)', async () => {
    const res = await stack.gql(
      'mutation { updatePushSubscription(endpoint: "https://push.example.com/none") { endpoint } }',
    );
    expect(code(res)).toBe('NOT_FOUND');
    expect(res.errors?.[0]?.extensions?.misskey).toMatchObject({
      code: 'NO_SUCH_REGISTRATION',
      id: ' b09d8066-8064-5613-efb6-0e963b21d012',
    });
  });
});

// --- The sandbox against the recordings -------------------------------------------------------

const recorded = recordedDir;

interface Recording {
  endpoint: string;
  as: string | null;
  request: Record<string, unknown>;
  status: number;
  response: Record<string, unknown> | null;
}

describe('contract: recorded sw endpoints', () => {
  let contract: Stack;
  beforeAll(async () => {
    contract = await startStack({ sandbox: { rateLimits: false } });
    contract.sandbox.store.addToken(APP_TOKEN, {
      userId: contract.sandbox.demo?.users.alice.id as string,
      type: 'app',
      permissions: ['read:account', 'write:account'],
    });
  });

  // In recording order.
  const files = [
    'sw.register.json',
    'sw.register.already-subscribed.json',
    'sw.register.send-read-message.json',
    'sw.show-registration.json',
    'sw.update-registration.json',
    'sw.show-registration.after-update.json',
    'sw.show-registration.not-found.json',
    'sw.unregister.json',
    'sw.show-registration.after-unregister.json',
    'sw.unregister.anonymous.json',
    'errors/sw.register.app-token-secure-endpoint.json',
    'errors/sw.register.no-credential.json',
    'errors/sw.update-registration.no-such-registration.json',
    'sw.register.with-vapid-key.json',
  ];

  it.each(files)('%s', async (file) => {
    const rec = JSON.parse(readFileSync(join(recorded, file), 'utf8')) as Recording;
    const demo = contract.sandbox.demo;
    const user = rec.as?.split(' ')[0] as 'alice' | 'bob' | undefined;
    const token = rec.as?.includes('app token') ? APP_TOKEN : user ? demo?.users[user].token : null;
    if (file === 'sw.register.with-vapid-key.json') {
      contract.sandbox.store.instance.swPublicKey = rec.response?.key as string;
    }
    const headers: Record<string, string> = { 'content-type': 'application/json' };
    if (token) {
      headers.authorization = `Bearer ${token}`;
    }
    const res = await fetch(`${contract.sandbox.origin}/api/${rec.endpoint}`, {
      method: 'POST',
      headers,
      body: JSON.stringify(rec.request),
    });
    const text = await res.text();
    expect(res.status).toBe(rec.status);
    if (rec.response === null) {
      expect(text).toBe('');
      return;
    }
    const body = JSON.parse(text) as Record<string, unknown>;
    if (rec.response.error) {
      const error = rec.response.error as { code: string; id: string };
      expect(body.error).toMatchObject({ code: error.code, id: error.id });
      return;
    }
    // Same keys and values, but the user id of this sandbox.
    expect(body).toEqual({ ...rec.response, userId: user ? demo?.users[user].id : undefined });
  });
});
