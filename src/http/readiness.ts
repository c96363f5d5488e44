import type { MisskeyClient } from '../upstream/client.js';

/** /ready answers within this, whatever the upstream pool does. */
const READY_TIMEOUT_MS = 2_000;

/**
 * Whether Misskey answers `meta` within READY_TIMEOUT_MS. The answer comes from a timer of its
 * own, for a pool so wedged that the call never settles; the call itself has a deadline (no retry
 * outlives it) and, a little later, an abort signal, so a wedged call is still cleaned up (the
 * call's own timeout comes first and counts for the breaker, as before). On a timeout, requests
 * queued for a socket are reported: upstream calls are stuck, not just slow.
 */
export async function readiness(
  client: MisskeyClient,
): Promise<{ status: number; body: Record<string, unknown> }> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), READY_TIMEOUT_MS);
  });
  const probe = client
    .call('meta', {}, null, {
      timeoutMs: READY_TIMEOUT_MS,
      deadline: Date.now() + READY_TIMEOUT_MS,
      signal: AbortSignal.timeout(READY_TIMEOUT_MS + 250),
    })
    .then(
      () => null,
      (error: unknown) => (error as Error).name,
    );
  const failure = await Promise.race([probe, expired]);
  clearTimeout(timer);
  if (failure === null) {
    return { status: 200, body: { status: 'ready' } };
  }
  const timedOut = ['timeout', 'UpstreamTimeoutError', 'CallerAbortedError'].includes(failure);
  const queued = client.sockets().pending;
  return {
    status: 503,
    body: {
      status: 'upstream not ready',
      reason: timedOut ? 'timeout' : failure,
      ...(timedOut && queued > 0 ? { queued } : {}),
    },
  };
}
