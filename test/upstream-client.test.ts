import { createServer } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Sandbox, startSandbox } from '../src/sandbox/server.js';
import { MisskeyClient } from '../src/upstream/client.js';
import {
  MisskeyApiError,
  UpstreamBadResponseError,
  UpstreamTimeoutError,
  UpstreamUnavailableError,
} from '../src/upstream/errors.js';

const TOKEN = DEMO_TOKENS.alice;

let sandbox: Sandbox;
let client: MisskeyClient;

beforeAll(async () => {
  sandbox = await startSandbox({ port: 0 });
  client = new MisskeyClient(sandbox.origin, { timeoutMs: 1_000, keepAliveTimeoutMs: 10 });
});
afterAll(async () => {
  await client.destroy();
  await sandbox.close();
});
beforeEach(() => {
  sandbox.clearFailures();
  sandbox.resetCalls();
});

/** Runs `fn`, expects it to throw, and checks that no token leaks into the error. */
async function failure(fn: () => Promise<unknown>): Promise<Error> {
  try {
    await fn();
  } catch (error) {
    const text = `${String(error)} ${JSON.stringify(error)} ${(error as Error).stack ?? ''}`;
    expect(text).not.toContain(TOKEN);
    return error as Error;
  }
  throw new Error('expected the call to fail');
}

describe('MisskeyClient', () => {
  it('POSTs JSON with the token as a Bearer header and returns the parsed body', async () => {
    const me = await client.call('i', {}, TOKEN);
    expect(me.username).toBe('alice');
    expect(sandbox.calls.at(-1)).toMatchObject({ endpoint: 'i', userId: me.id, status: 200 });
  });

  it('never forwards a credential in the body (Misskey hangs on a non-string `i`)', async () => {
    const me = await client.call('i', { i: 12345 } as never, TOKEN);
    expect(me.username).toBe('alice');
  });

  it('maps 204 to null', async () => {
    const { bob } = sandbox.demo?.users ?? ({} as never);
    expect(await client.call('mute/create', { userId: bob.id }, TOKEN)).toBeNull();
    expect(sandbox.calls.at(-1)).toMatchObject({ endpoint: 'mute/create', status: 204 });
  });

  it('throws MisskeyApiError with status, code and id from the Misskey error body', async () => {
    const error = await failure(() =>
      client.call('users/show', { userId: 'au0000000000zzzz' }, TOKEN),
    );
    expect(error).toBeInstanceOf(MisskeyApiError);
    expect(error).toMatchObject({
      status: 404,
      code: 'NO_SUCH_USER',
      id: '4362f8dc-731f-4ad8-a694-be5a88922a24',
      endpoint: 'users/show',
    });
  });

  it('reads the reason of a Misskey 500 INTERNAL_ERROR and the Retry-After of a 429', async () => {
    sandbox.fail('i', {
      status: 500,
      body: {
        error: {
          message: 'Internal error occurred.',
          code: 'INTERNAL_ERROR',
          id: '5d37dbcb-891e-41ca-a3d6-e690c97775ac',
          kind: 'server',
          info: { e: { message: 'blocked', code: 'Error', id: 'x' } },
        },
      },
      times: 1,
    });
    const internal = (await failure(() => client.call('i', {}, TOKEN))) as MisskeyApiError;
    expect(internal.internalReason).toBe('blocked');

    sandbox.fail('i', {
      status: 429,
      headers: { 'retry-after': '7' },
      body: {
        error: {
          message: 'Rate limit exceeded.',
          code: 'RATE_LIMIT_EXCEEDED',
          id: 'd5826d14-3982-4d2e-8011-b9e9f02499ef',
          kind: 'client',
        },
      },
      times: 1,
    });
    const limited = (await failure(() => client.call('i', {}, TOKEN))) as MisskeyApiError;
    expect(limited).toMatchObject({ status: 429, retryAfter: 7 });
  });

  it('throws UpstreamBadResponseError on a non-JSON body and on an error without an envelope', async () => {
    sandbox.fail('i', { status: 200, raw: '<html>proxy error</html>', times: 1 });
    expect(await failure(() => client.call('i', {}, TOKEN))).toBeInstanceOf(
      UpstreamBadResponseError,
    );
    sandbox.fail('i', { status: 502, raw: 'Bad gateway', times: 1 });
    expect(await failure(() => client.call('i', {}, TOKEN))).toBeInstanceOf(
      UpstreamBadResponseError,
    );
    // Unknown POST endpoints answer with Fastify's own 404, not Misskey's envelope.
    expect(await failure(() => client.call('no/such/endpoint' as 'i', {}, TOKEN))).toBeInstanceOf(
      UpstreamBadResponseError,
    );
  });

  it('throws UpstreamTimeoutError when the upstream hangs, within the deadline', async () => {
    sandbox.fail('i', { hang: true, times: 1 });
    const started = performance.now();
    const error = await failure(() => client.call('i', {}, TOKEN, { timeoutMs: 300 }));
    expect(error).toBeInstanceOf(UpstreamTimeoutError);
    expect(performance.now() - started).toBeLessThan(2_000);
  });

  it('throws UpstreamUnavailableError when the connection is reset mid-body', async () => {
    sandbox.fail('i', { resetMidBody: true, times: 1 });
    expect(await failure(() => client.call('i', {}, TOKEN))).toBeInstanceOf(
      UpstreamUnavailableError,
    );
  });

  it('throws UpstreamUnavailableError when the connection is refused', async () => {
    const port = await new Promise<number>((resolve) => {
      const server = createServer();
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
      });
    });
    const closed = new MisskeyClient(`http://127.0.0.1:${port}`, { timeoutMs: 1_000 });
    try {
      const error = await failure(() => closed.call('i', {}, TOKEN));
      expect(error).toBeInstanceOf(UpstreamUnavailableError);
      expect(error.message).toContain('ECONNREFUSED');
    } finally {
      await closed.destroy();
    }
  });

  it('reuses keep-alive connections instead of opening one per call', async () => {
    const keepAlive = new MisskeyClient(sandbox.origin, { connections: 2 });
    try {
      const before = sandbox.calls.length;
      await Promise.all(Array.from({ length: 20 }, () => keepAlive.call('meta', {}, null)));
      expect(sandbox.calls.length - before).toBe(20);
    } finally {
      await keepAlive.close();
    }
  });
});
