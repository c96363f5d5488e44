import { GraphQLSchema, lexicographicSortSchema } from 'graphql';
import { builder } from './builder.js';
import './scalars.js';
import './uploads.js';
import './users.js';
import './drive.js';
import './chat-messages.js';
import './chat-rooms.js';
import './chat-invitations.js';
import './announcements.js';
import './hashtags.js';
import './invites.js';
import './push.js';
import './subscriptions.js';

const built = builder.toSchema();
const config = built.toConfig();
// Mutation and Subscription are declared up front so any domain can add to them; a root type
// with no fields is not valid GraphQL, so it is left out until one does.
const hasFields = (type: typeof config.mutation) =>
  type !== null && type !== undefined && Object.keys(type.getFields()).length > 0;

export const schema = lexicographicSortSchema(
  new GraphQLSchema({
    ...config,
    mutation: hasFields(config.mutation) ? config.mutation : undefined,
    subscription: hasFields(config.subscription) ? config.subscription : undefined,
    types: config.types.filter(
      (type) =>
        !(type.name === 'Mutation' && !hasFields(config.mutation)) &&
        !(type.name === 'Subscription' && !hasFields(config.subscription)),
    ),
  }),
);
