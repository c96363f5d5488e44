import { type Client, createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { DEMO_TOKENS } from '../../src/sandbox/seed.js';

/**
 * Black-box clients of a gateway known only by its URL (a built process, or nginx in front of
 * replicas): GraphQL over HTTP POST, and graphql-ws subscriptions.
 */
export interface Answer<T> {
  status: number;
  headers: Headers;
  data?: T | null;
  errors?: { message: string; path?: (string | number)[]; extensions?: Record<string, unknown> }[];
}

export async function post<T = Record<string, unknown>>(
  url: string,
  query: string,
  options: { variables?: Record<string, unknown>; token?: string; headers?: HeadersInit } = {},
): Promise<Answer<T>> {
  const headers = new Headers(options.headers);
  headers.set('content-type', 'application/json');
  if (options.token) {
    headers.set('authorization', `Bearer ${options.token}`);
  }
  const res = await fetch(url, {
    method: 'POST',
    headers,
    body: JSON.stringify({ query, variables: options.variables ?? {} }),
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  let body: Omit<Answer<T>, 'status' | 'headers'>;
  try {
    body = JSON.parse(text) as typeof body;
  } catch {
    throw new Error(`HTTP ${res.status}, not JSON: ${text.slice(0, 300)}`);
  }
  return { status: res.status, headers: res.headers, ...body };
}

/** A running subscription: its results so far, how it ended, and how often its socket opened. */
export interface Live<T> {
  results: { data?: T | null; errors?: unknown[] }[];
  /** Set when the subscription errored or completed (it should not, while the test runs). */
  ended: { error?: unknown } | null;
  connects: number;
  /** Resolves once `check` holds for the results; fails after `ms` with what arrived. */
  until(check: (results: Live<T>['results']) => boolean, ms?: number): Promise<void>;
  close(): Promise<void>;
}

export function subscribe<T>(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
): Live<T> {
  const client: Client = createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    // A dropped socket must fail the test, not be repaired behind its back.
    retryAttempts: 0,
  });
  const live: Live<T> = {
    results: [],
    ended: null,
    connects: 0,
    until: async (check, ms = 10_000) => {
      const deadline = Date.now() + ms;
      while (!check(live.results)) {
        if (live.ended || Date.now() > deadline) {
          throw new Error(
            `subscription: ${live.results.length} results, ended ${JSON.stringify(live.ended)}`,
          );
        }
        await new Promise((r) => setTimeout(r, 25));
      }
    },
    close: async () => {
      await client.dispose();
    },
  };
  client.on('connected', () => {
    live.connects++;
  });
  client.subscribe<T>(
    { query, variables },
    {
      next: (value) => {
        live.results.push(value as Live<T>['results'][number]);
      },
      error: (error) => {
        // A closed socket is reported as its CloseEvent.
        const { code, reason, message } = error as {
          code?: number;
          reason?: string;
          message?: string;
        };
        live.ended = { error: message ?? `closed ${code} ${reason}` };
      },
      complete: () => {
        live.ended = {};
      },
    },
  );
  return live;
}

/** A demo user's id, asked of the gateway itself. */
export async function demoUserId(url: string, username: keyof typeof DEMO_TOKENS): Promise<string> {
  const res = await post<{ user: { id: string } }>(
    url,
    'query($u: String!) { user(username: $u) { id } }',
    { token: DEMO_TOKENS.alice, variables: { u: username } },
  );
  const id = res.data?.user.id;
  if (!id) {
    throw new Error(`no id for ${username}: ${JSON.stringify(res)}`);
  }
  return id;
}

/** bob → `toUserId` through the gateway's `sendChatMessage`. */
export async function sendFromBob(url: string, toUserId: string, text: string): Promise<void> {
  const sent = await post(url, SEND, { token: DEMO_TOKENS.bob, variables: { to: toUserId, text } });
  if (sent.status !== 200 || sent.errors) {
    throw new Error(`sendChatMessage: HTTP ${sent.status} ${JSON.stringify(sent.errors)}`);
  }
}

/**
 * Sends bob → `toUserId` messages until `delivered` sees one of them (a subscription may still be
 * attaching upstream when the first is sent, and a black box tells nothing about that); returns
 * the text of the one that arrived.
 */
export async function sendUntilDelivered(
  url: string,
  toUserId: string,
  delivered: (texts: string[]) => boolean,
  ms = 10_000,
): Promise<string> {
  const texts: string[] = [];
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const text = `probe ${Date.now()} ${texts.length}`;
    await sendFromBob(url, toUserId, text);
    texts.push(text);
    for (let i = 0; i < 10; i++) {
      if (delivered(texts)) {
        return texts.find((t) => delivered([t])) ?? text;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`none of ${texts.length} messages arrived within ${ms} ms`);
}

const SEND = `mutation($to: ID!, $text: String!) {
  sendChatMessage(input: { toUserId: $to, text: $text }) { id }
}`;

/** Messages created in one direct conversation (`userId`, the other user). */
export const CHAT_EVENTS = `subscription($userId: ID) {
  chatEvents(userId: $userId) {
    __typename
    ... on ChatMessageCreatedEvent { message { id text fromUser { username } } }
  }
}`;

export type ChatEvents = {
  chatEvents: {
    __typename: string;
    message?: { id: string; text: string; fromUser: { username: string } };
  };
};

/** The message texts a chatEvents subscription received. */
export const textsOf = (live: Live<ChatEvents>): string[] =>
  live.results.map((r) => r.data?.chatEvents.message?.text ?? '');
