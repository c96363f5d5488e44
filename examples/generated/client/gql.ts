/* eslint-disable */

import type { TypedDocumentNode as DocumentNode } from '@graphql-typed-document-node/core';
import * as types from './graphql.js';

/**
 * Map of all GraphQL operations in the project.
 *
 * This map has several performance disadvantages:
 * 1. It is not tree-shakeable, so it will include all operations in the project.
 * 2. It is not minifiable, so the string of a GraphQL query will be multiple times inside the bundle.
 * 3. It does not support dead code elimination, so it will add unused operations.
 *
 * Therefore it is highly recommended to use the babel or swc plugin for production.
 * Learn more about it here: https://the-guild.dev/graphql/codegen/plugins/presets/preset-client#reducing-bundle-size
 */
type Documents = {
  'fragment ChatLine on ChatMessage {\n  id\n  createdAt\n  text\n  fromUser {\n    username\n    name\n  }\n  toRoom {\n    id\n    name\n  }\n}': typeof types.ChatLineFragmentDoc;
  'query Conversation($username: String!, $first: Int = 20) {\n  user(username: $username) {\n    id\n    username\n    name\n    chatMessages(first: $first) {\n      edges {\n        node {\n          ...ChatLine\n        }\n      }\n    }\n  }\n}': typeof types.ConversationDocument;
  'query Me {\n  me {\n    id\n    username\n    name\n  }\n}': typeof types.MeDocument;
  'subscription NewMessages {\n  chatMessageReceived {\n    ...ChatLine\n  }\n}': typeof types.NewMessagesDocument;
  'mutation SendMessage($input: SendChatMessageInput!) {\n  sendChatMessage(input: $input) {\n    ...ChatLine\n  }\n}': typeof types.SendMessageDocument;
  'query UserId($username: String!) {\n  user(username: $username) {\n    id\n    username\n  }\n}': typeof types.UserIdDocument;
};
const documents: Documents = {
  'fragment ChatLine on ChatMessage {\n  id\n  createdAt\n  text\n  fromUser {\n    username\n    name\n  }\n  toRoom {\n    id\n    name\n  }\n}':
    types.ChatLineFragmentDoc,
  'query Conversation($username: String!, $first: Int = 20) {\n  user(username: $username) {\n    id\n    username\n    name\n    chatMessages(first: $first) {\n      edges {\n        node {\n          ...ChatLine\n        }\n      }\n    }\n  }\n}':
    types.ConversationDocument,
  'query Me {\n  me {\n    id\n    username\n    name\n  }\n}': types.MeDocument,
  'subscription NewMessages {\n  chatMessageReceived {\n    ...ChatLine\n  }\n}':
    types.NewMessagesDocument,
  'mutation SendMessage($input: SendChatMessageInput!) {\n  sendChatMessage(input: $input) {\n    ...ChatLine\n  }\n}':
    types.SendMessageDocument,
  'query UserId($username: String!) {\n  user(username: $username) {\n    id\n    username\n  }\n}':
    types.UserIdDocument,
};

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 *
 *
 * @example
 * ```ts
 * const query = graphql(`query GetUser($id: ID!) { user(id: $id) { name } }`);
 * ```
 *
 * The query argument is unknown!
 * Please regenerate the types.
 */
export function graphql(source: string): unknown;

/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(
  source: 'fragment ChatLine on ChatMessage {\n  id\n  createdAt\n  text\n  fromUser {\n    username\n    name\n  }\n  toRoom {\n    id\n    name\n  }\n}',
): (typeof documents)['fragment ChatLine on ChatMessage {\n  id\n  createdAt\n  text\n  fromUser {\n    username\n    name\n  }\n  toRoom {\n    id\n    name\n  }\n}'];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(
  source: 'query Conversation($username: String!, $first: Int = 20) {\n  user(username: $username) {\n    id\n    username\n    name\n    chatMessages(first: $first) {\n      edges {\n        node {\n          ...ChatLine\n        }\n      }\n    }\n  }\n}',
): (typeof documents)['query Conversation($username: String!, $first: Int = 20) {\n  user(username: $username) {\n    id\n    username\n    name\n    chatMessages(first: $first) {\n      edges {\n        node {\n          ...ChatLine\n        }\n      }\n    }\n  }\n}'];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(
  source: 'query Me {\n  me {\n    id\n    username\n    name\n  }\n}',
): (typeof documents)['query Me {\n  me {\n    id\n    username\n    name\n  }\n}'];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(
  source: 'subscription NewMessages {\n  chatMessageReceived {\n    ...ChatLine\n  }\n}',
): (typeof documents)['subscription NewMessages {\n  chatMessageReceived {\n    ...ChatLine\n  }\n}'];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(
  source: 'mutation SendMessage($input: SendChatMessageInput!) {\n  sendChatMessage(input: $input) {\n    ...ChatLine\n  }\n}',
): (typeof documents)['mutation SendMessage($input: SendChatMessageInput!) {\n  sendChatMessage(input: $input) {\n    ...ChatLine\n  }\n}'];
/**
 * The graphql function is used to parse GraphQL queries into a document that can be used by GraphQL clients.
 */
export function graphql(
  source: 'query UserId($username: String!) {\n  user(username: $username) {\n    id\n    username\n  }\n}',
): (typeof documents)['query UserId($username: String!) {\n  user(username: $username) {\n    id\n    username\n  }\n}'];

export function graphql(source: string) {
  return (documents as any)[source] ?? {};
}

export type DocumentType<TDocumentNode extends DocumentNode<any, any>> =
  TDocumentNode extends DocumentNode<infer TType, any> ? TType : never;
