import { apiError } from '../errors.js';
import type { EndpointContext, EndpointDef } from '../registry.js';
import type { Store } from '../store.js';
import { me } from './core.js';

/**
 * Service-worker push subscriptions (API.md §1.9, recordings `sw.*.json`). `register`,
 * `show-registration` and `update-registration` are `secure` in endpoints.generated.json, so the
 * registry refuses app tokens and anonymous calls with ACCESS_DENIED before anything else.
 */

interface SubscriptionRow {
  id: string;
  userId: string;
  endpoint: string;
  auth: string;
  publickey: string;
  sendReadMessage: boolean;
}

function subscriptions(store: Store): SubscriptionRow[] {
  return store.ext('sw-subscriptions', () => [] as SubscriptionRow[]);
}

function find(store: Store, userId: string, endpoint: string): SubscriptionRow | undefined {
  return subscriptions(store).find((row) => row.userId === userId && row.endpoint === endpoint);
}

const triple = (row: SubscriptionRow) => ({
  userId: row.userId,
  endpoint: row.endpoint,
  sendReadMessage: row.sendReadMessage,
});

export const pushEndpoints: EndpointDef[] = [
  {
    name: 'sw/register',
    handler: (
      ctx: EndpointContext<{
        endpoint: string;
        auth: string;
        publickey: string;
        sendReadMessage: boolean;
      }>,
    ) => {
      const user = me(ctx);
      const { store, params } = ctx;
      const rows = subscriptions(store);
      // The same endpoint with other keys is a second subscription.
      const existing = rows.find(
        (row) =>
          row.userId === user.id &&
          row.endpoint === params.endpoint &&
          row.auth === params.auth &&
          row.publickey === params.publickey,
      );
      const key = store.instance.swPublicKey;
      if (existing) {
        return { state: 'already-subscribed', key, ...triple(existing) };
      }
      const row: SubscriptionRow = {
        id: store.ids.gen(),
        userId: user.id,
        endpoint: params.endpoint,
        auth: params.auth,
        publickey: params.publickey,
        sendReadMessage: params.sendReadMessage,
      };
      rows.push(row);
      return { state: 'subscribed', key, ...triple(row) };
    },
  },
  {
    name: 'sw/show-registration',
    handler: (ctx: EndpointContext<{ endpoint: string }>) => {
      const row = find(ctx.store, me(ctx).id, ctx.params.endpoint);
      // Not found is a 204 with an empty body.
      return row ? triple(row) : null;
    },
  },
  {
    name: 'sw/update-registration',
    handler: (ctx: EndpointContext<{ endpoint: string; sendReadMessage?: boolean }>) => {
      const row = find(ctx.store, me(ctx).id, ctx.params.endpoint);
      if (!row) {
        // The id really starts with a space (errors/sw.update-registration.no-such-registration.json).
        throw apiError(
          'NO_SUCH_REGISTRATION',
          ' b09d8066-8064-5613-efb6-0e963b21d012',
          'No such registration.',
        );
      }
      if (ctx.params.sendReadMessage !== undefined) {
        row.sendReadMessage = ctx.params.sendReadMessage;
      }
      return triple(row);
    },
  },
  {
    name: 'sw/unregister',
    handler: (ctx: EndpointContext<{ endpoint: string }>) => {
      const rows = subscriptions(ctx.store);
      const userId = ctx.me?.id;
      // Anonymous: every user's subscription with this endpoint goes (sw.unregister.anonymous.json).
      const kept = rows.filter(
        (row) =>
          !(
            row.endpoint === ctx.params.endpoint &&
            (userId === undefined || row.userId === userId)
          ),
      );
      rows.splice(0, rows.length, ...kept);
      return null;
    },
  },
];
