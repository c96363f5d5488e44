import { createServer, type Server } from 'node:http';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Sandbox, startSandbox } from '../src/sandbox/server.js';
import { fromUpstream } from '../src/schema/errors.js';
import { MisskeyClient } from '../src/upstream/client.js';
import { isValidToken, MAX_TOKEN_LENGTH } from '../src/upstream/credentials.js';
import {
  InvalidCredentialError,
  MAX_ERROR_FIELD_CHARS,
  MAX_ERROR_INFO_CHARS,
  MisskeyApiError,
  UpstreamBadResponseError,
  UpstreamTimeoutError,
} from '../src/upstream/errors.js';
import { createPool } from '../src/upstream/pool.js';
import {
  boundList,
  MAX_JSON_DEPTH,
  MAX_UNBOUNDED_LIST_ITEMS,
  nestsDeeperThan,
} from '../src/upstream/response.js';
import { errorCode, startStack } from './harness.js';

/**
 * The upstream client is safe whatever its callers pass: a malformed token never reaches undici,
 * the pool cannot be wedged, every call ends by its deadline, and the breaker only opens on the
 * upstream's health, never on one caller's doing.
 */

const MALFORMED = [
  'a\r\nb',
  'a\nX-Injected: 1',
  'a\u0000b',
  'tick✓',
  'é',
  'has space',
  'x'.repeat(MAX_TOKEN_LENGTH + 1),
  'x'.repeat(60_000),
  '=abc',
  'a=b',
  'tok,en',
  '"quoted"',
];

let sandbox: Sandbox;
beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
});
afterAll(async () => {
  await sandbox.close();
});
beforeEach(() => {
  sandbox.clearFailures();
  sandbox.resetCalls();
});

/** Resolves with the call's error (the call must fail). */
async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to fail');
}

async function servedWithin(client: MisskeyClient, ms: number): Promise<void> {
  const started = performance.now();
  const me = await client.call('i', {}, DEMO_TOKENS.alice, { timeoutMs: ms });
  expect((me as { id: string }).id).toBeTruthy();
  expect(performance.now() - started).toBeLessThan(ms);
  expect(client.sockets().pending).toBe(0);
}

describe('isValidToken', () => {
  it('accepts RFC 6750 b64tokens up to 512 characters', () => {
    for (const token of [
      DEMO_TOKENS.alice,
      'abc',
      'A-._~+/9',
      'abc==',
      'x'.repeat(MAX_TOKEN_LENGTH),
    ]) {
      expect(isValidToken(token)).toBe(true);
    }
  });

  it('refuses everything else', () => {
    for (const token of [...MALFORMED, '']) {
      expect(isValidToken(token)).toBe(false);
    }
    expect(isValidToken(42 as unknown as string)).toBe(false);
  });
});

describe('malformed tokens at the client', () => {
  it('are refused before any request, and leave the pool and the breaker alone', async () => {
    const refused: string[] = [];
    const client = new MisskeyClient(sandbox.origin, {
      connections: 4,
      timeoutMs: 2_000,
      breaker: { failureThreshold: 2, cooldownMs: 60_000 },
      onRefused: ({ reason }) => refused.push(reason),
    });
    try {
      await servedWithin(client, 1_000); // warm pool
      sandbox.resetCalls();
      const errors = await Promise.all(
        MALFORMED.flatMap((token) =>
          Array.from({ length: 8 }, () => rejection(client.call('i', {}, token))),
        ),
      );
      for (const error of errors) {
        expect(error).toBeInstanceOf(InvalidCredentialError);
        expect(error.message).not.toContain('xxxx');
      }
      expect(refused).toHaveLength(MALFORMED.length * 8);
      expect(new Set(refused)).toEqual(new Set(['invalid-credential']));
      expect(sandbox.callCount()).toBe(0);
      expect(client.breakerState).toBe('closed');
      expect(client.sockets()).toMatchObject({ pending: 0, running: 0 });
      await servedWithin(client, 1_000);
    } finally {
      await client.destroy();
    }
  });

  it('map to UNAUTHENTICATED', () => {
    const error = fromUpstream(new InvalidCredentialError('i')) as { extensions: unknown };
    expect(error.extensions).toMatchObject({ code: 'UNAUTHENTICATED' });
  });
});

describe('the pool cannot be wedged', () => {
  it('a request undici refuses leaves its pool client usable', async () => {
    const pool = createPool(sandbox.origin, {
      connections: 2,
      keepAliveTimeoutMs: 4_000,
      timeoutMs: 2_000,
    });
    const ask = (authorization: string) =>
      pool.request({
        method: 'POST',
        path: '/api/i',
        headers: { 'content-type': 'application/json', authorization },
        body: '{}',
      });
    try {
      await (await ask(`Bearer ${DEMO_TOKENS.alice}`)).body.dump();
      for (let i = 0; i < 10; i++) {
        await expect(ask('Bearer a\r\nb')).rejects.toMatchObject({ code: 'UND_ERR_INVALID_ARG' });
      }
      const res = await Promise.race([
        ask(`Bearer ${DEMO_TOKENS.alice}`),
        new Promise<never>((_, reject) => setTimeout(() => reject(new Error('wedged')), 1_000)),
      ]);
      expect(res.statusCode).toBe(200);
      await res.body.dump();
      expect(pool.stats.pending).toBe(0);
    } finally {
      await pool.destroy();
    }
  });

  it('a call queued behind a hung one still ends at its own deadline', async () => {
    const hung: Server = createServer(() => {});
    await new Promise<void>((resolve) => hung.listen(0, '127.0.0.1', resolve));
    const address = hung.address() as { port: number };
    const client = new MisskeyClient(`http://127.0.0.1:${address.port}`, {
      connections: 1,
      timeoutMs: 5_000,
    });
    try {
      const first = rejection(client.call('meta', {}, null, { timeoutMs: 1_500 }));
      await new Promise((resolve) => setTimeout(resolve, 50));
      const started = performance.now();
      const queued = await rejection(client.call('meta', {}, null, { timeoutMs: 200 }));
      expect(queued).toBeInstanceOf(UpstreamTimeoutError);
      expect(performance.now() - started).toBeLessThan(600);
      expect(await first).toBeInstanceOf(UpstreamTimeoutError);
    } finally {
      await client.destroy();
      hung.closeAllConnections();
      await new Promise((resolve) => hung.close(resolve));
    }
  });
});

describe('malformed tokens through the gateway', () => {
  it('websocket connection_init: closed with 4403; the pool keeps serving', async () => {
    const stack = await startStack({ gateway: { breakerFailures: 2, upstreamConnections: 4 } });
    expect((await stack.gql('{ me { id } }')).errors).toBeUndefined();
    const wsUrl = stack.gateway.url.replace('http', 'ws');
    const closeCodes = await Promise.all(
      MALFORMED.flatMap((token) =>
        Array.from({ length: 3 }, () => connectionInitClose(wsUrl, token)),
      ),
    );
    expect(new Set(closeCodes)).toEqual(new Set([4403]));
    const started = performance.now();
    const res = await stack.gql('{ me { id } }');
    expect(res.errors).toBeUndefined();
    expect(performance.now() - started).toBeLessThan(1_000);
    expect(stack.gateway.client.sockets().pending).toBe(0);
    expect(stack.gateway.client.breakerState).toBe('closed');
    await stack.close();
  });

  it('HTTP: a token that is not a b64token is UNAUTHENTICATED without an upstream call', async () => {
    const stack = await startStack({ gateway: { breakerFailures: 2 } });
    stack.sandbox.resetCalls();
    for (const token of ['x'.repeat(600), 'tok,en', '"quoted"']) {
      expect(errorCode(await stack.gql('{ me { id } }', {}, token))).toBe('UNAUTHENTICATED');
    }
    expect(stack.sandbox.callCount('i')).toBe(0);
    await stack.close();
  });
});

/** Sends `connection_init` with `token`; resolves with the close code. */
function connectionInitClose(url: string, token: string): Promise<number> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, 'graphql-transport-ws');
    ws.on('open', () => ws.send(JSON.stringify({ type: 'connection_init', payload: { token } })));
    ws.on('close', (code) => resolve(code));
    ws.on('error', () => resolve(-1));
  });
}

describe('what opens the breaker', () => {
  const PROXY_503 = { status: 503, raw: 'maintenance' };

  function breakerClient(origin: string, caller?: () => string | undefined): MisskeyClient {
    return new MisskeyClient(origin, {
      timeoutMs: 1_000,
      breaker: { failureThreshold: 3, cooldownMs: 60_000 },
      caller,
    });
  }

  it('six malformed tokens and six 431s do not', async () => {
    const client = breakerClient(sandbox.origin);
    for (let i = 0; i < 6; i++) {
      await rejection(client.call('i', {}, MALFORMED[i] as string));
    }
    sandbox.fail('i', { status: 431, raw: 'Request Header Fields Too Large' });
    for (let i = 0; i < 6; i++) {
      const tokens = [DEMO_TOKENS.alice, DEMO_TOKENS.bob, DEMO_TOKENS.carol];
      const error = await rejection(client.call('i', {}, tokens[i % 3] as string));
      expect(error).toBeInstanceOf(UpstreamBadResponseError);
    }
    expect(sandbox.callCount('i')).toBe(6);
    expect(client.breakerState).toBe('closed');
    await client.destroy();
  });

  it('failures of one caller alone do not; failures of two callers do', async () => {
    sandbox.fail('i', PROXY_503);
    const client = breakerClient(sandbox.origin);
    for (let i = 0; i < 6; i++) {
      await rejection(client.call('i', {}, DEMO_TOKENS.alice));
    }
    expect(client.breakerState).toBe('closed');
    await rejection(client.call('i', {}, DEMO_TOKENS.bob));
    expect(client.breakerState).toBe('open');
    await client.destroy();
  });

  it('without a token, the caller provider (the client address) tells callers apart', async () => {
    sandbox.fail('meta', PROXY_503);
    let ip = '192.0.2.1';
    const client = breakerClient(sandbox.origin, () => ip);
    for (let i = 0; i < 6; i++) {
      await rejection(client.call('meta', {}, null));
    }
    expect(client.breakerState).toBe('closed');
    // An explicit caller overrides the provider.
    await rejection(client.call('meta', {}, null, { caller: '192.0.2.1' }));
    expect(client.breakerState).toBe('closed');
    ip = '192.0.2.2';
    await rejection(client.call('meta', {}, null));
    expect(client.breakerState).toBe('open');
    await client.destroy();
  });

  it('a real outage does, when several callers fail', async () => {
    const down = await startSandbox({ port: 0 });
    const client = breakerClient(down.origin);
    expect(await client.call('i', {}, DEMO_TOKENS.alice)).toBeTruthy();
    await down.close();
    for (const token of [DEMO_TOKENS.alice, DEMO_TOKENS.bob, DEMO_TOKENS.carol]) {
      await rejection(client.call('i', {}, token));
    }
    expect(client.breakerState).toBe('open');
    await client.destroy();
  });
});

describe('response bounds', () => {
  it('nesting is counted on the parsed value: brackets inside strings do not count', () => {
    const deep = (text: string, max: number) => nestsDeeperThan(JSON.parse(text), max);
    expect(deep('[[[]]]', 3)).toBe(false);
    expect(deep('[[[[]]]]', 3)).toBe(true);
    expect(deep('{"a":"[[[[[[","b":"\\"[[[[[["}', 1)).toBe(false);
    expect(deep('{"a":"\\\\","b":[[{}]]}', 3)).toBe(true);
    expect(deep('[1, {"a": [2, {"b": [3]}]}, "x"]', 5)).toBe(false);
    expect(deep('[1, {"a": [2, {"b": [3]}]}, "x"]', 4)).toBe(true);
    expect(deep(`${'['.repeat(65)}${']'.repeat(65)}`, MAX_JSON_DEPTH)).toBe(true);
    expect(deep(`${'['.repeat(64)}${']'.repeat(64)}`, MAX_JSON_DEPTH)).toBe(false);
    expect(nestsDeeperThan('text', 1)).toBe(false);
    // A million levels: JSON.parse takes them, the walk stops at the 65th.
    expect(deep(`${'{"a":'.repeat(1_000_000)}1${'}'.repeat(1_000_000)}`, MAX_JSON_DEPTH)).toBe(
      true,
    );
  });

  it('lists are cut to limit, to userIds for users/show, else to the general bound', () => {
    const many = Array.from({ length: 5_000 }, (_, i) => i);
    expect(boundList('hashtags/list', { limit: 10 }, many)).toHaveLength(10);
    expect(boundList('users/show', { userIds: ['a', 'b'] }, many)).toHaveLength(2);
    expect(boundList('hashtags/trend', {}, many)).toHaveLength(MAX_UNBOUNDED_LIST_ITEMS);
    expect(boundList('hashtags/list', { limit: 10 }, [1, 2])).toEqual([1, 2]);
    expect(boundList('i', { limit: 1 }, { id: 'x' })).toEqual({ id: 'x' });
  });

  it('Misskey error fields are cut to 1,000 characters and a huge info is dropped', () => {
    const error = new MisskeyApiError('i', 400, {
      code: 'C'.repeat(5_000),
      id: 'I'.repeat(5_000),
      message: 'M'.repeat(100_000),
      kind: 'client',
      info: { big: 'x'.repeat(MAX_ERROR_INFO_CHARS) },
    });
    expect(error.code.length).toBeLessThanOrEqual(MAX_ERROR_FIELD_CHARS + 1);
    expect(error.id.length).toBeLessThanOrEqual(MAX_ERROR_FIELD_CHARS + 1);
    expect(error.message.length).toBeLessThan(2 * MAX_ERROR_FIELD_CHARS + 100);
    expect(error.info).toBeUndefined();
  });
});
