/**
 * Live chat in a terminal, over GraphQL subscriptions (graphql-ws): prints every chat message
 * sent to you as it arrives and, with `--to <username>`, sends each line you type to that user.
 *
 *   npx tsx examples/live-chat.ts              # as alice on `npm start`'s demo sandbox
 *   npx tsx examples/live-chat.ts --to bob     # ...and chat with bob
 *   GATEWAY_URL=https://gateway.example/graphql MISSKEY_TOKEN=… npx tsx examples/live-chat.ts
 *
 * The operations are in examples/operations; their types come from `npm run codegen`.
 */
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { pathToFileURL } from 'node:url';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { type Client, createClient } from 'graphql-ws';
import { WebSocket } from 'ws';
import {
  type ChatLineFragment,
  MeDocument,
  NewMessagesDocument,
  SendMessageDocument,
  UserIdDocument,
} from './generated/graphql.js';

export interface LiveChat {
  /** Who the token belongs to. */
  readonly me: { id: string; username: string };
  /** Sends a direct message; returns it as the gateway stored it. */
  send(toUserId: string, text: string): Promise<ChatLineFragment>;
  /** A user's id from the username (null when there is no such user). */
  userId(username: string): Promise<string | null>;
  close(): Promise<void>;
}

/** graphql-ws rejects with the socket's CloseEvent when the gateway closes the connection. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    return error.message;
  }
  const close = error as { code?: unknown; reason?: unknown };
  if (typeof close?.code === 'number') {
    return `the gateway closed the connection: ${close.code} ${String(close.reason ?? '')}`.trim();
  }
  return Array.isArray(error)
    ? error.map((item: { message?: string }) => item.message ?? String(item)).join('; ')
    : String(error);
}

/** One query or mutation over the websocket, typed by its generated document. */
async function request<R, V extends Record<string, unknown>>(
  client: Client,
  document: TypedDocumentNode<R, V>,
  variables: V,
): Promise<R> {
  for await (const result of client.iterate<R>({ query: print(document), variables })) {
    if (result.errors?.length) {
      throw new Error(result.errors.map((error) => error.message).join('; '));
    }
    return result.data as R;
  }
  throw new Error('the gateway closed the operation without a result');
}

/**
 * Connects with the Misskey token in graphql-ws's `connection_init` payload and calls
 * `onMessage` for every chat message sent to the token's user, until `close()`.
 */
export async function connectLiveChat(options: {
  url: string;
  token: string;
  onMessage: (message: ChatLineFragment) => void;
  onError?: (error: unknown) => void;
}): Promise<LiveChat> {
  const client = createClient({
    url: options.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${options.token}` },
    retryAttempts: 0,
  });
  try {
    const { me } = await request(client, MeDocument, {});
    const stop = client.subscribe<{ chatMessageReceived: ChatLineFragment }>(
      { query: print(NewMessagesDocument) },
      {
        next: (result) => {
          if (result.data) {
            options.onMessage(result.data.chatMessageReceived);
          } else {
            options.onError?.(result.errors);
          }
        },
        error: (error) => options.onError?.(error),
        complete: () => {},
      },
    );
    return {
      me,
      send: async (toUserId, text) =>
        (await request(client, SendMessageDocument, { input: { toUserId, text } })).sendChatMessage,
      userId: async (username) =>
        (await request(client, UserIdDocument, { username })).user?.id ?? null,
      close: async () => {
        stop();
        await client.dispose();
      },
    };
  } catch (error) {
    await client.dispose();
    throw error;
  }
}

export function formatLine(message: ChatLineFragment): string {
  const time = message.createdAt.slice(11, 19);
  const from = message.fromUser?.username ?? '?';
  const where = message.toRoom ? ` in ${message.toRoom.name}` : '';
  return `[${time}] ${from}${where}: ${message.text ?? '(no text)'}`;
}

async function main(): Promise<void> {
  const url = process.env.GATEWAY_URL ?? 'http://127.0.0.1:4000/graphql';
  // The demo sandbox's fixed token for alice (see `npm start`).
  const token = process.env.MISSKEY_TOKEN ?? 'demoAliceToken01';
  const toIndex = process.argv.indexOf('--to');
  const to = toIndex > 0 ? process.argv[toIndex + 1] : undefined;

  const chat = await connectLiveChat({
    url,
    token,
    onMessage: (message) => console.log(formatLine(message)),
    onError: (error) => console.error(`subscription error: ${describeError(error)}`),
  });
  let toUserId: string | null = null;
  if (to) {
    toUserId = await chat.userId(to);
    if (!toUserId) {
      console.error(`no user named ${to}`);
      await chat.close();
      process.exit(1);
    }
  }
  console.log(
    `listening as ${chat.me.username} for new chat messages` +
      (to ? `; lines you type go to ${to}` : '') +
      ' (Ctrl-C to stop)',
  );

  const stop = () => {
    chat.close().then(() => process.exit(0));
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  if (toUserId) {
    const recipient = toUserId;
    const lines = createInterface({ input: process.stdin });
    lines.on('line', (line) => {
      if (line.trim() === '') {
        return;
      }
      chat.send(recipient, line).then(
        (sent) => console.log(`${formatLine(sent)} (sent)`),
        (error: unknown) => console.error(`not sent: ${describeError(error)}`),
      );
    });
    lines.on('close', stop);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    console.error(describeError(error));
    process.exit(1);
  });
}
