import { describe, expect, it } from 'vitest';
import { ConfigError, DEFAULT_LIMITS, loadConfig } from '../src/config.js';

/** Every hardening setting is read from the environment, validated, and named when wrong. */

describe('hardening configuration', () => {
  it('defaults: limits on, retries and breaker on, rate limit off, metrics on', () => {
    const config = loadConfig({});
    expect(config.limits).toEqual(DEFAULT_LIMITS);
    expect(config).toMatchObject({
      operationTimeoutMs: 15_000,
      upstreamRetries: 2,
      upstreamRetryDelayMs: 100,
      breakerFailures: 5,
      breakerCooldownMs: 5_000,
      shutdownDelayMs: 0,
      shutdownTimeoutMs: 10_000,
      rateLimit: { perToken: 0, perIp: 0, windowMs: 60_000 },
      trustProxy: false,
      metrics: true,
    });
  });

  it('reads every variable', () => {
    const config = loadConfig({
      MAX_DEPTH: '7',
      MAX_ALIASES: '5',
      MAX_DIRECTIVES: '3',
      MAX_TOKENS: '900',
      MAX_COST: '1234',
      MAX_FIELDS: '99',
      MAX_DOCUMENT_BYTES: '4096',
      MAX_BATCH: '0',
      MAX_BODY_BYTES: '8192',
      MAX_UPLOAD_BYTES: '1048576',
      WS_MAX_PAYLOAD_BYTES: '2048',
      WS_MAX_SUBSCRIPTIONS: '4',
      WS_INIT_TIMEOUT_MS: '1500',
      WS_MAX_SOCKETS_PER_TOKEN: '6',
      WS_MAX_SUBSCRIPTIONS_PER_TOKEN: '40',
      WS_IDLE_WITHOUT_TOKEN_MS: '2500',
      OPERATION_TIMEOUT_MS: '2500',
      UPSTREAM_RETRIES: '0',
      UPSTREAM_RETRY_DELAY_MS: '20',
      BREAKER_FAILURES: '0',
      BREAKER_COOLDOWN_MS: '1000',
      SHUTDOWN_DELAY_MS: '5000',
      SHUTDOWN_TIMEOUT_MS: '3000',
      RATE_LIMIT_PER_TOKEN: '100',
      RATE_LIMIT_PER_IP: '1000',
      RATE_LIMIT_WINDOW_MS: '10000',
      TRUST_PROXY: 'yes',
      METRICS: 'off',
    });
    expect(config.limits).toEqual({
      maxDepth: 7,
      maxAliases: 5,
      maxDirectives: 3,
      maxTokens: 900,
      maxCost: 1234,
      maxFields: 99,
      maxDocumentBytes: 4096,
      maxBatch: 0,
      maxBodyBytes: 8192,
      maxUploadBytes: 1_048_576,
      wsMaxPayloadBytes: 2048,
      wsMaxSubscriptions: 4,
      wsInitTimeoutMs: 1500,
      wsMaxSocketsPerToken: 6,
      wsMaxSubscriptionsPerToken: 40,
      wsIdleWithoutTokenMs: 2500,
    });
    expect(config).toMatchObject({
      operationTimeoutMs: 2500,
      upstreamRetries: 0,
      upstreamRetryDelayMs: 20,
      breakerFailures: 0,
      breakerCooldownMs: 1000,
      shutdownDelayMs: 5000,
      shutdownTimeoutMs: 3000,
      rateLimit: { perToken: 100, perIp: 1000, windowMs: 10_000 },
      trustProxy: true,
      metrics: false,
    });
  });

  it.each([
    ['MAX_DEPTH', '0'],
    ['MAX_COST', 'lots'],
    ['MAX_BODY_BYTES', '10'],
    ['WS_MAX_SUBSCRIPTIONS', '-1'],
    ['OPERATION_TIMEOUT_MS', '1.5'],
    ['UPSTREAM_RETRIES', '11'],
    ['BREAKER_COOLDOWN_MS', '50'],
    ['RATE_LIMIT_PER_TOKEN', 'ten'],
    ['TRUST_PROXY', 'maybe'],
    ['METRICS', '2'],
  ])('%s=%s is refused with an error naming it', (name, value) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(new RegExp(`^${name}: `));
  });
});
