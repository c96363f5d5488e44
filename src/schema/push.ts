import { GraphQLError } from 'graphql';
import type { AnyUser } from '../upstream/entities.js';
import { builder } from './builder.js';
import { ErrorCode } from './errors.js';
import { User } from './users.js';

/** `sw/show-registration` and `sw/update-registration` (API.md §2, "sw registration"). */
interface SubscriptionShape {
  userId: string;
  endpoint: string;
  sendReadMessage: boolean;
}

/** `sw/register`: the same plus the state and the server's VAPID key. */
interface RegistrationShape extends SubscriptionShape {
  state?: 'subscribed' | 'already-subscribed';
  key: string | null;
}

const PushSubscriptionState = builder.enumType('PushSubscriptionState', {
  values: {
    SUBSCRIBED: { value: 'subscribed', description: 'A new subscription was stored.' },
    ALREADY_SUBSCRIBED: {
      value: 'already-subscribed',
      description:
        'The same endpoint and keys were registered before; the stored settings are kept ' +
        '(`sendReadMessage` is not changed: use updatePushSubscription).',
    },
  } as const,
});

export const PushSubscription = builder.objectRef<SubscriptionShape>('PushSubscription');

PushSubscription.implement({
  description: "A Web Push subscription of one of the viewer's browsers (Misskey `sw/*`).",
  fields: (t) => ({
    endpoint: t.exposeString('endpoint', { description: "The push service's endpoint URL." }),
    sendReadMessage: t.exposeBoolean('sendReadMessage', {
      description: 'Whether read notifications (readAllNotifications) are pushed too.',
    }),
    userId: t.exposeID('userId'),
    user: t.field({
      type: User,
      description: 'The viewer: a subscription is only ever shown to its owner.',
      resolve: async (_sub, _args, ctx) => (await ctx.viewer()) as AnyUser,
    }),
  }),
});

const PushRegistration = builder.objectRef<RegistrationShape>('PushRegistration');

PushRegistration.implement({
  description: 'The outcome of registerPushSubscription (`sw/register`).',
  fields: (t) => ({
    state: t.field({
      type: PushSubscriptionState,
      // Misskey 2026.5 always sends it; its schema marks it optional.
      resolve: (registration) => registration.state ?? 'subscribed',
    }),
    key: t.exposeString('key', {
      nullable: true,
      description:
        "The server's VAPID public key (applicationServerKey), null when push is not configured.",
    }),
    userId: t.exposeID('userId'),
    endpoint: t.exposeString('endpoint'),
    sendReadMessage: t.exposeBoolean('sendReadMessage'),
    subscription: t.field({
      type: PushSubscription,
      resolve: ({ userId, endpoint, sendReadMessage }) => ({ userId, endpoint, sendReadMessage }),
    }),
  }),
});

/** Runs an `sw/*` call. Misskey refuses every token but the account's own session token there
 *  (`secure` endpoints: 400 ACCESS_DENIED); say so instead of a bare "Access denied." */
async function sw<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const misskey = error instanceof GraphQLError ? error.extensions.misskey : undefined;
    if ((misskey as { code?: string } | undefined)?.code === 'ACCESS_DENIED') {
      throw new GraphQLError(
        "Push subscriptions need the account's own session token; Misskey refuses app and " +
          'MiAuth tokens here.',
        { extensions: { ...(error as GraphQLError).extensions, code: ErrorCode.FORBIDDEN } },
      );
    }
    throw error;
  }
}

const secureNote = ' Only the session (native) token works; app and MiAuth tokens get FORBIDDEN.';

builder.queryFields((t) => ({
  pushSubscription: t.field({
    type: PushSubscription,
    nullable: true,
    description: `Your subscription for a push endpoint (\`sw/show-registration\`), null when there is none.${secureNote}`,
    authScopes: { authenticated: true },
    args: { endpoint: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) =>
      // Not found is an HTTP 204 with an empty body, which the client returns as null.
      (await sw(() =>
        ctx.call('sw/show-registration', { endpoint: args.endpoint }),
      )) as SubscriptionShape | null,
  }),
}));

builder.mutationFields((t) => ({
  registerPushSubscription: t.field({
    type: PushRegistration,
    description: `Registers a Web Push subscription (\`sw/register\`). Registering the same endpoint and keys again answers ALREADY_SUBSCRIBED; the same endpoint with new keys is a second subscription.${secureNote}`,
    authScopes: { authenticated: true },
    args: {
      endpoint: t.arg.string({ required: true }),
      auth: t.arg.string({ required: true, description: 'The subscription\'s "auth" secret.' }),
      publicKey: t.arg.string({
        required: true,
        description: 'The subscription\'s "p256dh" key (Misskey `publickey`).',
      }),
      sendReadMessage: t.arg.boolean({ required: true, defaultValue: false }),
    },
    resolve: async (_root, args, ctx) =>
      (await sw(() =>
        ctx.call('sw/register', {
          endpoint: args.endpoint,
          auth: args.auth,
          publickey: args.publicKey,
          sendReadMessage: args.sendReadMessage,
        }),
      )) as RegistrationShape,
  }),
  updatePushSubscription: t.field({
    type: PushSubscription,
    description: `Changes a subscription's settings (\`sw/update-registration\`); NOT_FOUND when you have none for the endpoint.${secureNote}`,
    authScopes: { authenticated: true },
    args: {
      endpoint: t.arg.string({ required: true }),
      sendReadMessage: t.arg.boolean({ required: false }),
    },
    resolve: async (_root, args, ctx) =>
      (await sw(() =>
        ctx.call('sw/update-registration', {
          endpoint: args.endpoint,
          ...(args.sendReadMessage == null ? {} : { sendReadMessage: args.sendReadMessage }),
        }),
      )) as SubscriptionShape,
  }),
  unregisterPushSubscription: t.string({
    description:
      'Removes your subscriptions for a push endpoint (`sw/unregister`); returns the endpoint, ' +
      'also when there was none. Needs a token: the gateway never sends the anonymous form, ' +
      "which deletes every user's subscriptions for the endpoint.",
    authScopes: { authenticated: true },
    args: { endpoint: t.arg.string({ required: true }) },
    resolve: async (_root, args, ctx) => {
      await ctx.call('sw/unregister', { endpoint: args.endpoint });
      return args.endpoint;
    },
  }),
}));
