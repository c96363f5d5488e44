import { Ajv, type ValidateFunction } from 'ajv';
import meta from './endpoints.generated.json' with { type: 'json' };
import { type ApiError, errors } from './errors.js';
import { ID_PATTERN } from './ids.js';
import type { Policies, Store, TokenRow, UserRow } from './store.js';

/**
 * Something an endpoint publishes for the streaming API (`sandbox.events` emits it as 'event').
 * `stream` is Misskey's internal stream name; the /streaming server routes it to channels:
 * - `chatUserStream:<a>-<b>`: the `chatUser` channel of user a with otherId b. Types `message`
 *   (ChatMessageLiteFor1on1), `deleted` (message id), `react` / `unreact` ({ messageId, reaction }).
 *   A DM is published to both `<from>-<to>` and `<to>-<from>`.
 * - `chatRoomStream:<roomId>`: the `chatRoom` channel. `message` (ChatMessageLiteForRoom),
 *   `deleted`, `react` / `unreact` ({ messageId, user, reaction }).
 * - `mainStream:<userId>`: the `main` channel. `newChatMessage` (ChatMessage packed for the
 *   user), `notification`, `unreadNotification`, `readAllAnnouncements`, `announcementCreated`, …
 * - `broadcast`: top-level frames to every socket (`announcementCreated` of global ones).
 */
export interface StreamEvent {
  stream: string;
  type: string;
  body: unknown;
}

export interface UploadedFile {
  filename: string;
  contentType: string;
  bytes: Buffer;
}

export interface EndpointContext<P = Record<string, unknown>> {
  store: Store;
  params: P;
  /** The caller, or null when anonymous. */
  me: UserRow | null;
  token: TokenRow | null;
  /** The file of a multipart upload. */
  file?: UploadedFile;
  /** Publishes a streaming event (delivered by the sandbox's /streaming server). */
  publish(event: StreamEvent): void;
  /** Runs `fn` after `ms` (Misskey's delayed jobs, e.g. `newChatMessage` ~3 s after a message);
   *  timers are cancelled when the sandbox closes. */
  later(ms: number, fn: () => void): void;
}

/** What an endpoint module declares. Credential, kind, GET and params come from Misskey's OpenAPI
 *  document (endpoints.generated.json) unless overridden here. */
export interface EndpointDef {
  name: string;
  // biome-ignore lint/suspicious/noExplicitAny: handlers narrow their own params
  handler(ctx: EndpointContext<any>): unknown;
  requireModerator?: boolean;
  requireAdmin?: boolean;
  requiredRolePolicy?: keyof Policies;
  /** Misskey's `limit: { duration, max }` in ms (applied per user, or per IP when anonymous). */
  limit?: { duration: number; max: number };
  /** Overrides for endpoints that are not in the OpenAPI document (e.g. `signup`). */
  requireCredential?: boolean;
  kind?: string | null;
  params?: object;
}

export interface Endpoint extends Required<Pick<EndpointDef, 'name' | 'handler'>> {
  def: EndpointDef;
  requireCredential: boolean;
  kind: string | null;
  secure: boolean;
  allowGet: boolean;
  multipart: boolean;
  validate: ValidateFunction;
  /** The schema's top-level property types, for casting GET query and multipart strings. */
  propertyTypes: Record<string, string[]>;
}

interface GeneratedMeta {
  requireCredential: boolean;
  kind: string | null;
  secure: boolean;
  allowGet: boolean;
  multipart: boolean;
  params: { properties?: Record<string, { type?: string | string[] }> };
}

const ajv = new Ajv({ useDefaults: true, coerceTypes: false, strict: false, allErrors: false });
ajv.addFormat('misskey:id', ID_PATTERN);
ajv.addFormat('binary', true);
ajv.addFormat('url', true);
ajv.addFormat('date-time', true);
ajv.addFormat('uri', true);

export function compileEndpoint(def: EndpointDef): Endpoint {
  const generated = (meta.endpoints as Record<string, GeneratedMeta>)[def.name];
  const params = (def.params ??
    generated?.params ?? { type: 'object', properties: {} }) as GeneratedMeta['params'];
  const propertyTypes: Record<string, string[]> = {};
  for (const [key, schema] of Object.entries(params.properties ?? {})) {
    const type = schema.type;
    propertyTypes[key] = type === undefined ? [] : Array.isArray(type) ? type : [type];
  }
  return {
    name: def.name,
    handler: def.handler,
    def,
    requireCredential: def.requireCredential ?? generated?.requireCredential ?? false,
    kind: def.kind !== undefined ? def.kind : (generated?.kind ?? null),
    secure: generated?.secure ?? false,
    allowGet: generated?.allowGet ?? false,
    multipart: generated?.multipart ?? false,
    validate: ajv.compile(params),
    propertyTypes,
  };
}

/** Misskey reports only the first Ajv error: `{ param: schemaPath, reason: message }`. */
export function validationError(validate: ValidateFunction): ApiError {
  const first = validate.errors?.[0];
  return errors.invalidParam(first?.schemaPath ?? '#', first?.message ?? 'invalid');
}
