import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Sandbox, startSandbox } from '../src/sandbox/server.js';

/** The sandbox's HTTP surface behaves like Misskey 2026.5.4's (../shared/misskey/recorded, API.md
 *  §0.1 and §4): statuses, envelopes, headers, credential rules. */
let sandbox: Sandbox;
beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
});
afterAll(async () => {
  await sandbox.close();
});

function post(endpoint: string, body: string | object, headers: Record<string, string> = {}) {
  return fetch(`${sandbox.origin}/api/${endpoint}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

describe('sandbox HTTP surface', () => {
  it('answers an unknown POST endpoint with Fastify 404, not the Misskey envelope', async () => {
    const res = await post('no/such', {});
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      message: 'Route POST:/api/no/such not found',
      error: 'Not Found',
      statusCode: 404,
    });
  });

  it('answers GET: unknown → UNKNOWN_API_ENDPOINT, known POST-only → 405 empty, trend → public cache', async () => {
    const unknown = await fetch(`${sandbox.origin}/api/no/such`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { error: { code: string } }).error.code).toBe(
      'UNKNOWN_API_ENDPOINT',
    );
    const postOnly = await fetch(`${sandbox.origin}/api/chat/history`);
    expect(postOnly.status).toBe(405);
    expect(await postOnly.text()).toBe('');
    const trend = await fetch(`${sandbox.origin}/api/hashtags/trend`);
    expect(trend.status).toBe(200);
    expect(trend.headers.get('cache-control')).toBe('public, max-age=60');
    const authed = await fetch(`${sandbox.origin}/api/hashtags/trend`, {
      headers: { authorization: `Bearer ${DEMO_TOKENS.alice}` },
    });
    expect(authed.headers.get('cache-control')).toBe('private, max-age=0, must-revalidate');
  });

  it('sends the recorded WWW-Authenticate challenges', async () => {
    const missing = await post('i', {});
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toBe('Bearer realm="Misskey"');
    const invalid = await post('i', {}, { authorization: 'Bearer nobodysToken1234' });
    expect(invalid.status).toBe(401);
    expect(invalid.headers.get('www-authenticate')).toContain('error="invalid_token"');
    const param = await post(
      'chat/history',
      { limit: 101 },
      { authorization: `Bearer ${DEMO_TOKENS.alice}` },
    );
    expect(param.status).toBe(400);
    expect(await param.json()).toMatchObject({
      error: { code: 'INVALID_PARAM', info: { param: '#/properties/limit/maximum' } },
    });
    expect(param.headers.get('www-authenticate')).toContain('error_description="Invalid param."');
  });

  it('checks the credential before the params, and Bearer wins over `i` in the body', async () => {
    const res = await post('chat/history', { limit: 'x' });
    expect(res.status).toBe(401);
    const both = await post(
      'i',
      { i: DEMO_TOKENS.bob },
      { authorization: `Bearer ${DEMO_TOKENS.alice}` },
    );
    expect(((await both.json()) as { username: string }).username).toBe('alice');
    const bodyOnly = await post('i', { i: DEMO_TOKENS.bob });
    expect(((await bodyOnly.json()) as { username: string }).username).toBe('bob');
  });

  it('runs a text/plain body anonymously and refuses application/xml with 415', async () => {
    const plain = await fetch(`${sandbox.origin}/api/i`, {
      method: 'POST',
      headers: { 'content-type': 'text/plain' },
      body: JSON.stringify({ i: DEMO_TOKENS.alice }),
    });
    expect(plain.status).toBe(401);
    const xml = await fetch(`${sandbox.origin}/api/i`, {
      method: 'POST',
      headers: { 'content-type': 'application/xml' },
      body: '<i/>',
    });
    expect(xml.status).toBe(415);
  });

  it('never answers a non-string `i`, like Misskey (the caller must time out)', async () => {
    const outcome = await fetch(`${sandbox.origin}/api/i`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ i: 12345 }),
      signal: AbortSignal.timeout(500),
    }).then(
      (res) => `answered ${res.status}`,
      (error: Error) => error.name,
    );
    expect(outcome).toBe('TimeoutError');
  });
});
