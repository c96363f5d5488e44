import { Writable } from 'node:stream';
import { afterAll, expect } from 'vitest';
import { createGateway, type Gateway, type GatewayOptions } from '../src/app/gateway.js';
import { createLogger } from '../src/observability/index.js';
import { DEMO_TOKENS } from '../src/sandbox/seed.js';
import { type Sandbox, type SandboxOptions, startSandbox } from '../src/sandbox/server.js';
import type { UpstreamCallEvent } from '../src/upstream/client.js';

export { DEMO_TOKENS };

export interface GraphQLResponse<T = Record<string, unknown>> {
  data?: T | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[];
}

export interface Stack {
  sandbox: Sandbox;
  gateway: Gateway;
  /** Upstream calls the gateway made, in order. */
  upstreamCalls: UpstreamCallEvent[];
  /** POST a GraphQL operation; `token` defaults to alice's demo token (`null` = none). */
  gql<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    token?: string | null,
  ): Promise<GraphQLResponse<T>>;
  /** Calls the sandbox REST API directly (setting up data for a test). */
  rest(endpoint: string, params?: Record<string, unknown>, token?: string | null): Promise<unknown>;
  close(): Promise<void>;
}

/** The `extensions.code` of a response's first error. */
export function errorCode(res: { errors?: { extensions?: Record<string, unknown> }[] }): unknown {
  return res.errors?.[0]?.extensions?.code;
}

/** The demo users' ids of a stack started with the demo seed. */
export function demoUserIds(stack: Stack): Record<'admin' | 'alice' | 'bob' | 'carol', string> {
  const users = stack.sandbox.demo?.users;
  if (!users) {
    throw new Error('demo users missing');
  }
  return { admin: users.admin.id, alice: users.alice.id, bob: users.bob.id, carol: users.carol.id };
}

const leftovers: (() => Promise<void>)[] = [];
/** Log lines that were not JSON or held a demo token, over every stack of the test file. */
const logProblems: string[] = [];
let logLines = 0;
afterAll(async () => {
  await Promise.all(leftovers.splice(0).map((dispose) => dispose()));
  expect(logProblems, `${logProblems.length} bad log lines of ${logLines}`).toEqual([]);
});

const TOKEN_VALUES = Object.values(DEMO_TOKENS);

/**
 * The production logger (JSON lines at `TEST_LOG_LEVEL`, default `info`) writing into a capture
 * that checks every line: valid JSON, and no demo token anywhere in it.
 */
export function checkedLogger(level = process.env.TEST_LOG_LEVEL ?? 'info') {
  const sink = new Writable({
    write(chunk, _encoding, done) {
      for (const line of String(chunk).split('\n')) {
        if (line === '') {
          continue;
        }
        logLines++;
        try {
          JSON.parse(line);
        } catch {
          logProblems.push(`not JSON: ${line.slice(0, 200)}`);
        }
        if (TOKEN_VALUES.some((token) => line.includes(token))) {
          logProblems.push(`token in: ${line.slice(0, 200)}`);
        }
      }
      done();
    },
  });
  return createLogger(level as Parameters<typeof createLogger>[0], sink);
}

/** The sandbox (demo data unless told otherwise) and a gateway in front of it, on free ports.
 *  Closed after the test file, even if the test forgets. */
export async function startStack(
  options: { sandbox?: SandboxOptions; gateway?: Partial<GatewayOptions> } = {},
): Promise<Stack> {
  const sandbox = await startSandbox({ port: 0, ...options.sandbox });
  const upstreamCalls: UpstreamCallEvent[] = [];
  const gateway = await createGateway({
    misskeyUrl: sandbox.origin,
    port: 0,
    upstreamTimeoutMs: 5_000,
    // Production defaults: the logger on (metrics are on unless a test turns them off).
    logger: checkedLogger(),
    ...options.gateway,
    onUpstreamCall: (event) => {
      upstreamCalls.push(event);
      options.gateway?.onUpstreamCall?.(event);
    },
  });
  let closed = false;
  const close = async () => {
    if (closed) {
      return;
    }
    closed = true;
    await gateway.close();
    await sandbox.close();
  };
  leftovers.push(close);
  return {
    sandbox,
    gateway,
    upstreamCalls,
    gql: async (query, variables = {}, token = DEMO_TOKENS.alice) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (token !== null) {
        headers.authorization = `Bearer ${token}`;
      }
      const res = await fetch(gateway.url, {
        method: 'POST',
        headers,
        body: JSON.stringify({ query, variables }),
      });
      return (await res.json()) as never;
    },
    rest: (endpoint, params = {}, token = DEMO_TOKENS.alice) =>
      sandbox.call(endpoint, params, token),
    close,
  };
}
