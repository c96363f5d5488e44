import { EnvelopArmorPlugin } from '@escape.tech/graphql-armor';
import type { GraphQLArmorConfig } from '@escape.tech/graphql-armor-types';
import { createComplexityRule, type FieldComplexityValue } from '@pothos/plugin-complexity';
import {
  type ASTVisitor,
  type DocumentNode,
  GraphQLError,
  type GraphQLField,
  type GraphQLOutputType,
  type GraphQLSchema,
  getNamedType,
  getNullableType,
  isEnumType,
  isInputObjectType,
  isListType,
  isObjectType,
  Kind,
  type TypeNode,
  type ValidationContext,
  type ValidationRule,
} from 'graphql';
import type { Plugin } from 'graphql-yoga';
import { DEFAULT_LIMITS, type LimitsConfig } from '../config.js';
import { ErrorCode, gatewayError } from '../schema/errors.js';
import type { SharedRedis } from '../state/redis.js';
import { tokenKey } from '../upstream/credentials.js';

/**
 * Operation limits, all checked before execution (so an operation over a limit makes no upstream
 * call): depth, aliases, directives and tokens by graphql-armor; cost and field count by the
 * Pothos complexity plugin's validation rule; document size here. Every refusal is a GraphQL
 * error with `extensions.code: OPERATION_LIMIT_EXCEEDED` and `extensions.limit: { name, max }`.
 */

export type LimitName =
  | 'depth'
  | 'aliases'
  | 'directives'
  | 'tokens'
  | 'cost'
  | 'fields'
  | 'documentBytes'
  | 'batch'
  | 'subscriptions'
  | 'subscriptionsPerToken';

export function limitError(
  name: LimitName,
  max: number,
  message: string,
  actual?: number,
  status = 400,
): GraphQLError {
  return gatewayError(ErrorCode.OPERATION_LIMIT_EXCEEDED, message, {
    limit: { name, max, ...(actual !== undefined ? { actual } : {}) },
    http: { status },
  });
}

/** Page size of a connection when neither `first` nor `last` is given (`idConnection`'s). */
export const DEFAULT_PAGE_SIZE = 20;
/** Items assumed for a list field whose size no argument tells. */
export const DEFAULT_LIST_SIZE = 10;

function pageSize(args: Record<string, unknown>): number | undefined {
  for (const name of ['first', 'last', 'limit']) {
    const value = args[name];
    if (typeof value === 'number' && Number.isFinite(value)) {
      return Math.max(0, value);
    }
  }
  return undefined;
}

function longestListArgument(args: Record<string, unknown>): number | undefined {
  let longest: number | undefined;
  for (const value of Object.values(args)) {
    if (Array.isArray(value)) {
      longest = Math.max(longest ?? 0, value.length);
    }
  }
  return longest;
}

function isConnection(type: GraphQLOutputType): boolean {
  const named = getNamedType(type);
  return (
    isObjectType(named) &&
    named.name.endsWith('Connection') &&
    'edges' in named.getFields() &&
    'pageInfo' in named.getFields()
  );
}

/**
 * The cost of one field, for the builder's `complexity.fieldComplexity` (so every field of every
 * domain gets it without saying anything): a field costs 1; what is selected under a connection
 * counts once per requested item (`first`/`last`, else the default page size), so a connection of
 * 100 inside a connection of 100 costs over 10,000; `edges` does not multiply again; other lists
 * multiply by `first`/`last`/`limit`, else by their longest list argument (`users(ids:)`), else
 * by 10.
 */
export function fieldCost(
  args: Record<string, unknown>,
  _ctx: unknown,
  field: Pick<GraphQLField<unknown, never>, 'name' | 'type'>,
): FieldComplexityValue {
  if (isConnection(field.type)) {
    return { field: 1, multiplier: pageSize(args) ?? DEFAULT_PAGE_SIZE };
  }
  if (isListType(getNullableType(field.type))) {
    if (field.name === 'edges') {
      return { field: 1, multiplier: 1 };
    }
    return {
      field: 1,
      multiplier: pageSize(args) ?? longestListArgument(args) ?? DEFAULT_LIST_SIZE,
    };
  }
  return 1;
}

function armorConfig(limits: LimitsConfig): GraphQLArmorConfig {
  // Validation rules report a coded error and let validation go on; the token limit runs inside
  // the parser, so its callback throws the coded error in place of armor's own.
  const report =
    (name: LimitName, max: number, what: string) =>
    (context: ValidationContext | null, error: GraphQLError) => {
      const found = /found (\d+)/.exec(error.message)?.[1];
      const actual = found === undefined ? undefined : Number(found);
      const coded = limitError(
        name,
        max,
        `The operation has ${actual ?? 'too many'} ${what}; the limit is ${max}.`,
        actual,
      );
      if (!context) {
        throw coded;
      }
      context.reportError(coded);
    };
  return {
    maxDepth: {
      n: limits.maxDepth,
      onReject: [report('depth', limits.maxDepth, 'levels of nesting')],
      propagateOnRejection: false,
    },
    maxAliases: {
      n: limits.maxAliases,
      onReject: [report('aliases', limits.maxAliases, 'aliases')],
      propagateOnRejection: false,
    },
    maxDirectives: {
      n: limits.maxDirectives,
      onReject: [report('directives', limits.maxDirectives, 'directives')],
      propagateOnRejection: false,
    },
    maxTokens: {
      n: limits.maxTokens,
      onReject: [report('tokens', limits.maxTokens, 'tokens')],
      propagateOnRejection: true,
    },
    // Replaced by the complexity rule below, which knows page sizes.
    costLimit: { enabled: false },
    // Field suggestions ("Did you mean …?") stay: the schema is public.
    blockFieldSuggestion: { enabled: false },
  };
}

/**
 * A validation rule whose errors are reported, never thrown: the cost rule evaluates arguments
 * and throws a GraphQLError on an invalid literal, which would escape `validate()` (and close a
 * websocket with 4500). Reported, it fails validation like any other invalid argument.
 */
function guarded(rule: ValidationRule): ValidationRule {
  return (context) => {
    const visitor = rule(context) as Record<string, unknown>;
    const wrap =
      (fn: unknown) =>
      (...args: unknown[]) => {
        try {
          return (fn as (...a: unknown[]) => unknown)(...args);
        } catch (error) {
          context.reportError(
            error instanceof GraphQLError
              ? error
              : new GraphQLError('The operation cost could not be computed.', {
                  extensions: { code: ErrorCode.GRAPHQL_VALIDATION_FAILED },
                }),
          );
          return false;
        }
      };
    const safe: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(visitor)) {
      if (typeof value === 'function') {
        safe[key] = wrap(value);
      } else if (typeof value === 'object' && value !== null) {
        const { enter, leave } = value as { enter?: unknown; leave?: unknown };
        safe[key] = {
          ...(enter ? { enter: wrap(enter) } : {}),
          ...(leave ? { leave: wrap(leave) } : {}),
        };
      }
    }
    return safe as ASTVisitor;
  };
}

interface RequestParams {
  query?: unknown;
  variables?: unknown;
  operationName?: unknown;
}

/**
 * The envelop plugins that enforce `limits` on every operation, over HTTP and websockets alike
 * (the websocket bridge runs the same parse and validate).
 */
export function operationLimitPlugins(
  limits: LimitsConfig = DEFAULT_LIMITS,
): Plugin<Record<string, unknown>>[] {
  const documentSize: Plugin<Record<string, unknown>> = {
    onParse({ params }) {
      const bytes = Buffer.byteLength(String(params.source));
      if (bytes > limits.maxDocumentBytes) {
        throw limitError(
          'documentBytes',
          limits.maxDocumentBytes,
          `The document is ${bytes} bytes; the limit is ${limits.maxDocumentBytes}.`,
          bytes,
        );
      }
    },
  };
  // Only the cost rule depends on the variables, which is why Yoga's validation cache (keyed by
  // document) is off: the other rules' result is cached here by document and rule set instead,
  // and the cost rule alone runs for every operation.
  const staticResults = new WeakMap<DocumentNode, Map<number, readonly GraphQLError[]>>();
  const costResults = new CostResults();
  const cost: Plugin<Record<string, unknown>> = {
    onValidate({ context, validateFn, setValidationFn }) {
      const params = (context as { params?: RequestParams }).params ?? {};
      setValidationFn((schema, document, rules, ...rest) => {
        // The rule set of an engine is fixed (GraphQL's rules and the same graphql-armor checks,
        // which it adds as new, anonymous functions on every request): its size is enough to
        // key it, without reading a name per function per request.
        const key = rules === undefined ? 0 : (rules as readonly ValidationRule[]).length;
        let byRules = staticResults.get(document);
        if (!byRules) {
          byRules = new Map();
          staticResults.set(document, byRules);
        }
        const cached = byRules.get(key);
        const result: readonly GraphQLError[] =
          cached ?? validateFn(schema, document, rules, ...rest) ?? [];
        if (!cached) {
          byRules.set(key, result);
        }
        // The rule is made only when the cost is not known yet for this document and variables.
        const costErrors = costResults.get(schema, document, params, () =>
          validateFn(schema, document, [costRule(limits, context, params)]),
        );
        return costErrors.length > 0 ? [...result, ...costErrors] : result;
      });
    },
  };
  return [
    documentSize,
    EnvelopArmorPlugin(armorConfig(limits)) as Plugin<Record<string, unknown>>,
    cost,
  ];
}

/** The cost and field-count rule for one operation's variables. */
function costRule(limits: LimitsConfig, context: object, params: RequestParams): ValidationRule {
  const variables =
    typeof params.variables === 'object' && params.variables !== null
      ? (params.variables as Record<string, unknown>)
      : {};
  return guarded(
    createComplexityRule({
      context,
      variableValues: variables,
      operationName: typeof params.operationName === 'string' ? params.operationName : null,
      validate: (result, reportError) => {
        if (result.complexity > limits.maxCost) {
          reportError(
            limitError(
              'cost',
              limits.maxCost,
              `The operation costs ${result.complexity}; the limit is ${limits.maxCost}. Ask for smaller pages (first/last) or fewer nested lists.`,
              result.complexity,
            ),
          );
        }
        if (result.breadth > limits.maxFields) {
          reportError(
            limitError(
              'fields',
              limits.maxFields,
              `The operation selects ${result.breadth} fields; the limit is ${limits.maxFields}.`,
              result.breadth,
            ),
          );
        }
      },
    }),
  );
}

/** Cost results kept per document, for so many distinct cost-relevant variable values. */
const COST_RESULTS_PER_DOCUMENT = 32;
/** Cost-relevant variable values longer than this (as JSON) are not worth a cache key. */
const MAX_COST_KEY_LENGTH = 1_024;

/**
 * The cost rule's result per document and operation, and per value of the variables it can
 * depend on. `fieldCost` reads only numbers (`first`/`last`/`limit`) and list lengths of top-level
 * arguments, so a variable declared as an ID, String, Boolean, enum or input object (and not a
 * list) cannot change the cost: a document whose variables are all of those kinds (the usual
 * `$userId: ID!`) is walked once, not on every request.
 */
class CostResults {
  readonly #byDocument = new WeakMap<DocumentNode, Map<string, readonly GraphQLError[]>>();

  get(
    schema: GraphQLSchema,
    document: DocumentNode,
    params: RequestParams,
    compute: () => readonly GraphQLError[] | undefined,
  ): readonly GraphQLError[] {
    const key = costKey(schema, document, params);
    if (key === null) {
      return compute() ?? [];
    }
    let results = this.#byDocument.get(document);
    if (!results) {
      results = new Map();
      this.#byDocument.set(document, results);
    }
    const cached = results.get(key);
    if (cached) {
      return cached;
    }
    const computed = compute() ?? [];
    if (results.size >= COST_RESULTS_PER_DOCUMENT) {
      results.clear();
    }
    results.set(key, computed);
    return computed;
  }
}

const COST_NEUTRAL_TYPES = new Set(['ID', 'String', 'Boolean']);

/** The operation name and the values of the variables the cost can depend on, as one key; null
 *  when they are too long to key by. */
function costKey(
  schema: GraphQLSchema,
  document: DocumentNode,
  params: RequestParams,
): string | null {
  const variables =
    typeof params.variables === 'object' && params.variables !== null
      ? (params.variables as Record<string, unknown>)
      : {};
  const relevant: unknown[] = [
    typeof params.operationName === 'string' ? params.operationName : null,
  ];
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.OPERATION_DEFINITION) {
      continue;
    }
    for (const variable of definition.variableDefinitions ?? []) {
      if (!costNeutral(schema, variable.type)) {
        relevant.push(
          variable.variable.name.value,
          variables[variable.variable.name.value] ?? null,
        );
      }
    }
  }
  const key = JSON.stringify(relevant);
  return key.length <= MAX_COST_KEY_LENGTH ? key : null;
}

function costNeutral(schema: GraphQLSchema, type: TypeNode): boolean {
  if (type.kind === Kind.NON_NULL_TYPE) {
    return costNeutral(schema, type.type);
  }
  if (type.kind === Kind.LIST_TYPE) {
    return false;
  }
  const named = schema.getType(type.name.value);
  return COST_NEUTRAL_TYPES.has(type.name.value) || isEnumType(named) || isInputObjectType(named);
}

/**
 * A fixed-window counter per key (a token's hash, or a client address). `take` counts one
 * operation and says how long to wait when the key is over its budget. Memory stays bounded:
 * windows that ended are dropped as new ones start.
 */
export class RateLimiter {
  readonly #windows = new Map<string, { start: number; count: number }>();
  #sweptAt = 0;

  constructor(
    readonly max: number,
    readonly windowMs: number,
    /** Keys counted at once: a flood of distinct tokens cannot grow the map past this (the
     *  oldest windows go first). */
    readonly maxKeys = 100_000,
  ) {}

  /** Keys currently counted. */
  get size(): number {
    return this.#windows.size;
  }

  /** Counts one operation for `key`; returns 0 when allowed, else seconds until the next window. */
  take(key: string, now = Date.now()): number {
    if (now - this.#sweptAt >= this.windowMs) {
      for (const [k, w] of this.#windows) {
        if (now - w.start >= this.windowMs) {
          this.#windows.delete(k);
        }
      }
      this.#sweptAt = now;
    }
    let window = this.#windows.get(key);
    if (!window || now - window.start >= this.windowMs) {
      this.#windows.delete(key);
      if (this.#windows.size >= this.maxKeys) {
        // Insertion order: the first key is the oldest window.
        this.#windows.delete(this.#windows.keys().next().value as string);
      }
      window = { start: now, count: 0 };
      this.#windows.set(key, window);
    }
    if (window.count >= this.max) {
      return Math.max(1, Math.ceil((window.start + this.windowMs - now) / 1000));
    }
    window.count++;
    return 0;
  }
}

export interface GatewayRateLimits {
  perToken: number;
  perIp: number;
  windowMs: number;
}

/**
 * The same fixed windows in Redis, shared by every replica: one atomic script per request counts
 * its operations on the token's key, then (if still allowed) on the address's key. A window starts
 * with its first operation and ends with the key's own expiry, so replicas need no common clock.
 * Returns [index of the key over its budget (1-based, 0 = allowed), ms until its window ends].
 */
const RATE_TAKE_SCRIPT = `
for i, key in ipairs(KEYS) do
  local count = redis.call('INCRBY', key, ARGV[1])
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    redis.call('PEXPIRE', key, ARGV[2])
    ttl = tonumber(ARGV[2])
  end
  if count > tonumber(ARGV[i + 2]) then
    return {i, ttl}
  end
end
return {0, 0}
`;

type RateTake = (...keysThenArgs: (string | number)[]) => Promise<[number, number]>;

/** The gateway's own rate limit, per token and per client address; each part off at 0. */
export class GatewayRateLimit {
  readonly #byToken: RateLimiter | null;
  readonly #byIp: RateLimiter | null;
  readonly #limits: GatewayRateLimits;
  readonly #redis: SharedRedis | null;

  /** With `redis`, the budgets are shared by every replica; while Redis is unavailable each
   *  replica counts its own (the same budgets, per process). */
  constructor(
    limits: GatewayRateLimits,
    readonly onRefuse?: () => void,
    redis?: SharedRedis | null,
  ) {
    this.#limits = limits;
    this.#redis = redis ?? null;
    this.#byToken = limits.perToken > 0 ? new RateLimiter(limits.perToken, limits.windowMs) : null;
    this.#byIp = limits.perIp > 0 ? new RateLimiter(limits.perIp, limits.windowMs) : null;
    if (this.#redis && !('misskeyRateTake' in this.#redis.client)) {
      this.#redis.client.defineCommand('misskeyRateTake', { lua: RATE_TAKE_SCRIPT });
    }
  }

  get enabled(): boolean {
    return this.#byToken !== null || this.#byIp !== null;
  }

  /** Counts `operations` for the caller; resolves to null when allowed, else the refusal. */
  async check(token: string | null, ip: string, operations = 1): Promise<GraphQLError | null> {
    if (this.#redis) {
      const shared = await this.#checkShared(this.#redis, token, ip, operations);
      if (shared !== undefined) {
        return shared;
      }
    }
    for (let i = 0; i < operations; i++) {
      let wait = token !== null ? (this.#byToken?.take(`t:${tokenKey(token)}`) ?? 0) : 0;
      let by = 'token';
      if (wait === 0) {
        wait = this.#byIp?.take(`ip:${ip}`) ?? 0;
        by = 'address';
      }
      if (wait > 0) {
        return this.#refuse(by, wait);
      }
    }
    return null;
  }

  /** The shared count; `undefined` when Redis could not answer (the caller counts locally). */
  async #checkShared(
    redis: SharedRedis,
    token: string | null,
    ip: string,
    operations: number,
  ): Promise<GraphQLError | null | undefined> {
    const { perToken, perIp, windowMs } = this.#limits;
    const keys: string[] = [];
    const maxes: number[] = [];
    const by: string[] = [];
    if (token !== null && perToken > 0) {
      keys.push(`rl:${windowMs}:t:${tokenKey(token)}`);
      maxes.push(perToken);
      by.push('token');
    }
    if (perIp > 0) {
      keys.push(`rl:${windowMs}:ip:${ip}`);
      maxes.push(perIp);
      by.push('address');
    }
    if (keys.length === 0) {
      return null;
    }
    const taken = await redis.run((client) =>
      (client as unknown as { misskeyRateTake: RateTake }).misskeyRateTake(
        keys.length,
        ...keys,
        operations,
        windowMs,
        ...maxes,
      ),
    );
    if (taken === undefined) {
      return undefined;
    }
    const [over, ttlMs] = taken;
    if (over === 0) {
      return null;
    }
    return this.#refuse(by[over - 1] ?? 'token', Math.max(1, Math.ceil(ttlMs / 1000)));
  }

  #refuse(by: string, wait: number): GraphQLError {
    this.onRefuse?.();
    return gatewayError(
      ErrorCode.RATE_LIMITED,
      `Too many operations from this ${by}; retry in ${wait} s.`,
      { retryAfter: wait, http: { status: 429, headers: { 'retry-after': String(wait) } } },
    );
  }
}
