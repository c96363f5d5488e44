#!/usr/bin/env node
// Extracts, from Misskey's own OpenAPI document, what the sandbox needs to know about each
// endpoint it implements: the request JSON schema (validated with Ajv, as Misskey does), whether a
// credential is required, the token kind, and whether GET is allowed. Writes
// src/sandbox/endpoints.generated.json, which is committed so the sandbox runs without ../shared.
//
//   node scripts/extract-endpoint-meta.mjs [path/to/openapi.json]
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const source = process.argv[2] ?? path.resolve(root, '../shared/misskey/openapi.json');
const openapi = JSON.parse(fs.readFileSync(source, 'utf8'));

const ENDPOINTS = [
  'meta',
  'i',
  'i/update',
  'i/read-announcement',
  'users/show',
  'following/create',
  'admin/accounts/create',
  'admin/roles/update-default-policies',
  'admin/roles/create',
  'admin/roles/assign',
  'admin/announcements/create',
  'admin/announcements/update',
  'admin/emoji/add',
  'admin/update-meta',
  'blocking/create',
  'mute/create',
  'drive/files/create',
  'drive/files/show',
  'notes/create',
  'chat/history',
  'chat/read-all',
  'chat/messages/create-to-user',
  'chat/messages/create-to-room',
  'chat/messages/delete',
  'chat/messages/react',
  'chat/messages/unreact',
  'chat/messages/user-timeline',
  'chat/messages/room-timeline',
  'chat/messages/search',
  'chat/messages/show',
  'chat/rooms/create',
  'chat/rooms/update',
  'chat/rooms/delete',
  'chat/rooms/show',
  'chat/rooms/join',
  'chat/rooms/leave',
  'chat/rooms/mute',
  'chat/rooms/members',
  'chat/rooms/owned',
  'chat/rooms/joining',
  'chat/rooms/invitations/create',
  'chat/rooms/invitations/inbox',
  'chat/rooms/invitations/outbox',
  'chat/rooms/invitations/ignore',
  'announcements',
  'announcements/show',
  'hashtags/list',
  'hashtags/search',
  'hashtags/show',
  'hashtags/trend',
  'hashtags/users',
  'invite/create',
  'invite/limit',
  'invite/list',
  'invite/delete',
  'sw/register',
  'sw/show-registration',
  'sw/update-registration',
  'sw/unregister',
];
// `secure` endpoints accept only the native session token (API.md §1.9).
const SECURE = new Set(['sw/register', 'sw/show-registration', 'sw/update-registration']);

const out = { source: `Misskey ${openapi.info.version} OpenAPI`, endpoints: {} };
for (const name of ENDPOINTS) {
  const item = openapi.paths[`/${name}`];
  if (!item?.post) {
    throw new Error(`endpoint ${name} is not in ${source}`);
  }
  const op = item.post;
  const description = op.description ?? '';
  const content = op.requestBody?.content ?? {};
  const media = content['application/json'] ?? content['multipart/form-data'];
  const kind = /\*\*Permission\*\*: \*([^*]+)\*/.exec(description)?.[1] ?? null;
  out.endpoints[name] = {
    requireCredential: /\*\*Credential required\*\*: \*Yes\*/.test(description),
    kind,
    secure: SECURE.has(name),
    allowGet: Boolean(item.get),
    multipart: Boolean(content['multipart/form-data']),
    params: media?.schema ?? { type: 'object', properties: {} },
  };
}
const target = path.join(root, 'src/sandbox/endpoints.generated.json');
fs.writeFileSync(target, `${JSON.stringify(out, null, 1)}\n`);
console.log(
  `wrote ${Object.keys(out.endpoints).length} endpoints to ${path.relative(root, target)}`,
);
