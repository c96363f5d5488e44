import type { IncomingMessage, ServerResponse } from 'node:http';

/** A fault injected into the answers of one endpoint (tests of the gateway's resilience). */
export interface Failure {
  /** Answer with this status and `body` (JSON) or `raw` (sent verbatim). */
  status?: number;
  body?: unknown;
  raw?: string;
  headers?: Record<string, string>;
  /** Never answer (the request hangs until the client gives up). */
  hang?: boolean;
  /** Send headers and part of the body, then destroy the socket. */
  resetMidBody?: boolean;
  /** Destroy the socket without answering. */
  reset?: boolean;
  /** Wait this long first. */
  delayMs?: number;
  /** Apply to the next N calls only (default: until cleared). */
  times?: number;
}

/** Answers `req` as `failure` says; false when the failure only delayed it (the call then runs). */
export async function injectFailure(
  req: IncomingMessage,
  res: ServerResponse,
  failure: Failure,
  hanging: Set<ServerResponse>,
): Promise<boolean> {
  req.resume();
  if (failure.delayMs) {
    await new Promise((resolve) => setTimeout(resolve, failure.delayMs));
  }
  if (failure.hang) {
    hanging.add(res);
    res.once('close', () => hanging.delete(res));
    return true;
  }
  if (failure.reset) {
    req.socket.destroy();
    return true;
  }
  if (failure.resetMidBody) {
    res.writeHead(failure.status ?? 200, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': '1000',
    });
    res.write('{"id":"partial');
    setTimeout(() => req.socket.destroy(), 10);
    return true;
  }
  if (failure.status !== undefined) {
    const body = failure.raw ?? (failure.body === undefined ? '' : JSON.stringify(failure.body));
    res.writeHead(failure.status, {
      'content-type': 'application/json; charset=utf-8',
      ...failure.headers,
    });
    res.end(body);
    return true;
  }
  return false;
}
