/**
 * Typed operations over plain HTTP: prints your conversation with a user, oldest line first.
 * `ConversationDocument` and its result type are generated from schema.graphql and
 * examples/operations by `npm run codegen`, so a schema change that breaks this query breaks
 * `npm run typecheck` too.
 *
 *   npx tsx examples/conversation.ts bob       # alice's conversation with bob on `npm start`
 *   GATEWAY_URL=… MISSKEY_TOKEN=… npx tsx examples/conversation.ts someone
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { ConversationDocument, type ConversationQuery } from './generated/graphql.js';

/** POSTs one operation; the result is typed by the document. */
export async function execute<R, V>(
  url: string,
  token: string | null,
  document: TypedDocumentNode<R, V>,
  variables: V,
): Promise<R> {
  const res = await fetch(url, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify({ query: print(document), variables }),
  });
  const body = (await res.json()) as { data?: R | null; errors?: { message: string }[] };
  if (body.errors?.length || !body.data) {
    throw new Error(body.errors?.map((error) => error.message).join('; ') ?? `HTTP ${res.status}`);
  }
  return body.data;
}

/** The conversation as printable lines, oldest first (the API pages newest first). */
export function conversationLines(data: ConversationQuery): string[] {
  const edges = data.user?.chatMessages?.edges ?? [];
  return edges
    .map(
      ({ node }) =>
        `${node.createdAt.slice(0, 19).replace('T', ' ')} ${node.fromUser?.username ?? '?'}: ${node.text ?? ''}`,
    )
    .reverse();
}

async function main(): Promise<void> {
  const url = process.env.GATEWAY_URL ?? 'http://127.0.0.1:4000/graphql';
  const token = process.env.MISSKEY_TOKEN ?? 'demoAliceToken01';
  const username = process.argv[2] ?? 'bob';
  const data = await execute(url, token, ConversationDocument, { username, first: 10 });
  if (!data.user) {
    throw new Error(`no user named ${username}`);
  }
  console.log(
    `Your last ${data.user.chatMessages?.edges.length ?? 0} messages with ${data.user.name ?? username}:`,
  );
  for (const line of conversationLines(data)) {
    console.log(line);
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  main().catch((error: unknown) => {
    console.error((error as Error).message);
    process.exit(1);
  });
}
