import SchemaBuilder from '@pothos/core';
// https://pothos-graphql.dev/docs/plugins/complexity — field costs; the limit is a validation rule
import ComplexityPlugin from '@pothos/plugin-complexity';
// https://pothos-graphql.dev/docs/plugins/relay — connections whose cursors are Misskey ids
import RelayPlugin from '@pothos/plugin-relay';
// https://pothos-graphql.dev/docs/plugins/scope-auth — `authenticated` fails before any upstream call
import ScopeAuthPlugin from '@pothos/plugin-scope-auth';
// https://pothos-graphql.dev/docs/plugins/simple-objects — small value types (reactions, badges)
import SimpleObjectsPlugin from '@pothos/plugin-simple-objects';
import { fieldCost } from '../engine/limits.js';
import type { Context } from './context.js';
import { unauthenticated } from './errors.js';
import type { Upload } from './upload.js';

export type Scalars = {
  DateTime: { Input: Date; Output: Date | string };
  File: { Input: Upload; Output: never };
};

export const builder = new SchemaBuilder<{
  Context: Context;
  Scalars: Scalars;
  AuthScopes: { authenticated: boolean };
  DefaultFieldNullability: false;
}>({
  // scope-auth first, as its docs recommend: auth runs before any other plugin's wrapping.
  plugins: [ScopeAuthPlugin, RelayPlugin, SimpleObjectsPlugin, ComplexityPlugin],
  // Every field gets a cost (connections × page size); src/engine/limits.ts enforces MAX_COST.
  complexity: { fieldComplexity: fieldCost, disabled: true },
  scopeAuth: {
    authorizeOnSubscribe: true,
    authScopes: (ctx) => ({ authenticated: ctx.token !== null }),
    unauthorizedError: () => unauthenticated(),
  },
  relay: {
    clientMutationId: 'omit',
    cursorType: 'String',
    nodeQueryOptions: false,
    nodesQueryOptions: false,
  },
  defaultFieldNullability: false,
});

builder.queryType({});
builder.mutationType({});
builder.subscriptionType({});
