import DataLoader from 'dataloader';
import type { YogaInitialContext } from 'graphql-yoga';
import { fromUpstream } from './errors.js';
import { loadUsers } from './loaders/users.js';
import type {
  EndpointName,
  EndpointParams,
  EndpointResult,
  MisskeyClient,
} from './upstream/client.js';
import {
  type AnyUser,
  isDetailed,
  type MeDetailed,
  type UserDetailed,
} from './upstream/entities.js';
import type { StreamHub } from './upstream/stream.js';

/**
 * Per-request (per-subscription-event) state. A new context is made for every HTTP operation and
 * every websocket operation, so loaders and caches never cross requests or tokens.
 */
export interface Context {
  /** The caller's Misskey token, or null. Never logged, never put in an error. */
  readonly token: string | null;
  readonly client: MisskeyClient;
  /** Calls Misskey with the caller's token; failures become client-safe GraphQL errors. */
  call<E extends EndpointName>(endpoint: E, params: EndpointParams<E>): Promise<EndpointResult<E>>;
  /** Calls Misskey without any credential (public data that may be shared between callers). */
  callPublic<E extends EndpointName>(
    endpoint: E,
    params: EndpointParams<E>,
  ): Promise<EndpointResult<E>>;
  readonly users: UserDirectory;
  /** The caller (`i`), fetched at most once per request. */
  viewer(): Promise<MeDetailed>;
  /** Loaders of other domains, created on first use in this request. */
  loader<K, V>(name: string, create: () => DataLoader<K, V>): DataLoader<K, V>;
  /** The process's stream hub (live subscriptions); set by the gateway. */
  readonly stream?: StreamHub;
}

/** Users of one request: a batched `users/show` loader plus every user a response embedded. */
export class UserDirectory {
  readonly #embedded = new Map<string, AnyUser>();
  readonly loader: DataLoader<string, UserDetailed | null>;

  constructor(client: MisskeyClient, token: string | null) {
    this.loader = new DataLoader(
      async (ids) => {
        try {
          return await loadUsers(client, token, ids);
        } catch (error) {
          throw fromUpstream(error);
        }
      },
      { maxBatchSize: 1000 },
    );
  }

  /** Remembers users a response embedded, so a later reference by id costs no call. */
  remember(user: AnyUser | null | undefined): void {
    if (!user) {
      return;
    }
    if (isDetailed(user)) {
      this.loader.prime(user.id, user);
    }
    const known = this.#embedded.get(user.id);
    if (!known || (!isDetailed(known) && isDetailed(user))) {
      this.#embedded.set(user.id, user);
    }
  }

  /** A user by id: embedded if seen in this request, else through the loader (null if unknown). */
  async byId(id: string): Promise<AnyUser | null> {
    return this.#embedded.get(id) ?? (await this.loader.load(id));
  }

  /** The detailed form of a user (loads it when only the lite form is known). */
  async detailed(user: AnyUser): Promise<UserDetailed | null> {
    return isDetailed(user) ? user : await this.loader.load(user.id);
  }
}

export type InitialContext = Partial<YogaInitialContext> & {
  connectionParams?: Readonly<Record<string, unknown>>;
};

/** Reads the token from `Authorization: Bearer` (HTTP) or the graphql-ws `connection_init`
 *  payload (`{ authorization: "Bearer …" }` or `{ token }`). */
export function tokenFrom(initial: InitialContext): string | null {
  const header = initial.request?.headers.get('authorization') ?? null;
  // Over websockets GraphiQL sends its header editor with each operation (`extensions.headers`).
  const sent = initial.request ? undefined : initial.params?.extensions?.headers;
  const params = {
    ...(typeof sent === 'object' && sent !== null ? (sent as Record<string, unknown>) : {}),
    ...initial.connectionParams,
  };
  const param = params.authorization ?? params.Authorization;
  const raw = header ?? (typeof param === 'string' ? param : null);
  if (raw !== null) {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(raw.trim());
    return match?.[1] ?? null;
  }
  return typeof params.token === 'string' && params.token.trim() !== ''
    ? params.token.trim()
    : null;
}

export function createContextFactory(client: MisskeyClient) {
  return (initial: InitialContext): Context => {
    const token = tokenFrom(initial);
    const call = async <E extends EndpointName>(
      endpoint: E,
      params: EndpointParams<E>,
      withToken: string | null,
    ): Promise<EndpointResult<E>> => {
      try {
        return await client.call(endpoint, params, withToken);
      } catch (error) {
        throw fromUpstream(error);
      }
    };
    const loaders = new Map<string, DataLoader<unknown, unknown>>();
    let viewer: Promise<MeDetailed> | undefined;
    const context: Context = {
      token,
      client,
      call: (endpoint, params) => call(endpoint, params, token),
      callPublic: (endpoint, params) => call(endpoint, params, null),
      users: new UserDirectory(client, token),
      viewer: () => {
        viewer ??= call('i', {}, token).then((me) => {
          context.users.remember(me as unknown as UserDetailed);
          return me;
        });
        return viewer;
      },
      loader: <K, V>(name: string, create: () => DataLoader<K, V>) => {
        let loader = loaders.get(name) as DataLoader<K, V> | undefined;
        if (!loader) {
          loader = create();
          loaders.set(name, loader as DataLoader<unknown, unknown>);
        }
        return loader;
      },
    };
    return context;
  };
}
