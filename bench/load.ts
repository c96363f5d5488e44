import autocannon from 'autocannon';
import { Pool } from 'undici';

/** One prebuilt HTTP request of the load. */
export interface HttpRequest {
  path: string;
  headers: Record<string, string>;
  body: string;
}

/** What one load run measured. Latencies in ms. */
export interface LoadResult {
  /** Successful (2xx, no GraphQL `errors`) responses per second. */
  rps: number;
  /** Successful responses. */
  ok: number;
  /** Transport errors, timeouts, non-2xx answers and answers with `errors`. */
  failed: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
  durationSec: number;
}

export interface FixedRateResult extends LoadResult {
  targetRps: number;
  /** p99 of how late the generator sent a request after its scheduled time, in ms. */
  sendLagP99: number;
}

/** A GraphQL answer with `errors`, or our REST server's error answer. */
const hasErrors = (body: string): boolean => body.includes('"errors"');

/**
 * Closed loop with autocannon: `connections` keep-alive connections each send their next request
 * as soon as the previous answer arrives. Each connection cycles through `requests` from its own
 * offset, so connections do not ask for the same thing in lockstep. Latency resolution is 1 ms
 * (autocannon's histogram).
 */
export async function closedLoop(options: {
  origin: string;
  requests: readonly HttpRequest[];
  connections: number;
  durationSec: number;
}): Promise<LoadResult> {
  const list = options.requests.map((r) => ({ method: 'POST', ...r }));
  let offset = 0;
  const step = Math.max(1, Math.floor(list.length / options.connections));
  const result = await autocannon({
    url: options.origin,
    connections: options.connections,
    duration: options.durationSec,
    timeout: 10,
    requests: list,
    setupClient: (client) => {
      const k = (offset++ * step) % list.length;
      client.setRequests([...list.slice(k), ...list.slice(0, k)]);
    },
    verifyBody: (body) => !hasErrors(body),
  });
  const ok2xx = Object.entries(result.statusCodeStats)
    .filter(([status]) => status.startsWith('2'))
    .reduce((sum, [, stat]) => sum + stat.count, 0);
  const ok = Math.max(0, ok2xx - result.mismatches);
  return {
    rps: ok / result.duration,
    ok,
    failed: result.errors + result.non2xx + result.mismatches,
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
    durationSec: result.duration,
  };
}

/**
 * Open loop at a fixed rate (wrk2-style): request i is due at start + i/rate whatever happened to
 * the earlier ones, and its latency is measured from that scheduled time, so a stall of the
 * system shows in the latency of every request it delayed (no coordinated omission). Up to
 * `maxConnections` requests are in flight; more wait in the pool's queue, which counts as latency.
 * autocannon's own rate mode is not used: it sends each connection's quota at the start of every
 * second (bursts) and its latency correction assumes a 1 ms interval.
 */
export async function fixedRate(options: {
  origin: string;
  requests: readonly HttpRequest[];
  rps: number;
  durationSec: number;
  maxConnections: number;
  /** Requests still unanswered this long after the last send are counted as failed. */
  graceMs?: number;
}): Promise<FixedRateResult> {
  const pool = new Pool(options.origin, {
    connections: options.maxConnections,
    pipelining: 1,
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  });
  const total = Math.max(1, Math.round(options.rps * options.durationSec));
  const interval = 1000 / options.rps;
  const latencies = new Float64Array(total).fill(Number.NaN);
  const lags = new Float64Array(total);
  let sent = 0;
  let answered = 0;
  let failed = 0;
  const start = performance.now() + 10;

  const allAnswered = new Promise<void>((resolve) => {
    const settle = () => {
      answered++;
      if (answered === total) {
        resolve();
      }
    };
    const send = (i: number, due: number) => {
      const request = options.requests[i % options.requests.length] as HttpRequest;
      lags[i] = performance.now() - due;
      pool
        .request({
          method: 'POST',
          path: request.path,
          headers: request.headers,
          body: request.body,
        })
        .then(async (res) => {
          const body = await res.body.text();
          if (res.statusCode >= 200 && res.statusCode < 300 && !hasErrors(body)) {
            latencies[i] = performance.now() - due;
          } else {
            failed++;
          }
        })
        .catch(() => {
          failed++;
        })
        .finally(settle);
    };
    const tick = () => {
      const now = performance.now();
      while (sent < total && start + sent * interval <= now) {
        send(sent, start + sent * interval);
        sent++;
      }
      if (sent < total) {
        setTimeout(tick, Math.max(0, Math.min(1, start + sent * interval - now)));
      }
    };
    setTimeout(tick, 10);
  });
  const grace = new Promise<'timeout'>((resolve) => {
    const timer = setTimeout(
      () => resolve('timeout'),
      options.durationSec * 1000 + 10 + (options.graceMs ?? 10_000),
    );
    allAnswered.then(() => clearTimeout(timer));
  });
  const outcome = await Promise.race([allAnswered.then(() => 'done' as const), grace]);
  const elapsed = (performance.now() - start) / 1000;
  await pool.destroy();

  const done = Array.from(latencies.filter((v) => !Number.isNaN(v))).sort((a, b) => a - b);
  const unanswered = outcome === 'timeout' ? total - answered : 0;
  return {
    targetRps: options.rps,
    rps: done.length / Math.max(elapsed, options.durationSec),
    ok: done.length,
    failed: failed + unanswered,
    p50: percentile(done, 50),
    p90: percentile(done, 90),
    p99: percentile(done, 99),
    max: done.at(-1) ?? Number.NaN,
    durationSec: elapsed,
    sendLagP99: percentile(
      Array.from(lags.subarray(0, sent)).sort((a, b) => a - b),
      99,
    ),
  };
}

/** Nearest-rank percentile of an ascending array (NaN when empty). */
export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) {
    return Number.NaN;
  }
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))] as number;
}
