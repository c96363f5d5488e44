import { WebSocket } from 'ws';
import type { GraphQLResponse } from './harness.js';

/** An answer of the gateway over HTTP: status, headers and the parsed JSON body (if any). */
export interface HttpAnswer {
  status: number;
  headers: Headers;
  text: string;
  json: GraphQLResponse | GraphQLResponse[] | null;
}

export async function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<HttpAnswer> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: (typeof body === 'string' || body instanceof Uint8Array
      ? body
      : JSON.stringify(body)) as RequestInit['body'],
  });
  return answer(res);
}

export async function answer(res: Response): Promise<HttpAnswer> {
  const text = await res.text();
  let json: HttpAnswer['json'] = null;
  try {
    json = JSON.parse(text);
  } catch {
    json = null;
  }
  return { status: res.status, headers: res.headers, text, json };
}

/** True when `value` is a GraphQL response: `data` and/or a non-empty `errors` list of objects
 *  with a string `message`. */
export function isGraphQLResponse(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return false;
  }
  const { data, errors } = value as GraphQLResponse;
  if (errors !== undefined) {
    if (!Array.isArray(errors) || errors.length === 0) {
      return false;
    }
    if (
      !errors.every((e) => typeof e === 'object' && e !== null && typeof e.message === 'string')
    ) {
      return false;
    }
  }
  return data !== undefined || errors !== undefined;
}

export interface WsMessage {
  type: string;
  id?: string;
  payload?: unknown;
}

/** A raw graphql-transport-ws client: every message and the close code are observable. */
export class WsClient {
  readonly messages: WsMessage[] = [];
  closeCode: number | null = null;
  readonly #socket: WebSocket;
  readonly #opened: Promise<void>;
  readonly closed: Promise<number>;

  constructor(url: string) {
    this.#socket = new WebSocket(url.replace(/^http/, 'ws'), 'graphql-transport-ws');
    this.#opened = new Promise((resolve, reject) => {
      this.#socket.once('open', () => resolve());
      this.#socket.once('error', reject);
    });
    this.closed = new Promise((resolve) => {
      this.#socket.once('close', (code) => {
        this.closeCode = code;
        resolve(code);
      });
    });
    this.#socket.on('message', (data) => {
      this.messages.push(JSON.parse(String(data)) as WsMessage);
    });
  }

  async init(payload: Record<string, unknown> = {}): Promise<void> {
    await this.#opened;
    this.send({ type: 'connection_init', payload });
    await this.waitFor((m) => m.type === 'connection_ack');
  }

  async open(): Promise<void> {
    await this.#opened;
  }

  send(message: unknown): void {
    this.#socket.send(typeof message === 'string' ? message : JSON.stringify(message));
  }

  subscribe(id: string, query: string, variables: Record<string, unknown> = {}): void {
    this.send({ id, type: 'subscribe', payload: { query, variables } });
  }

  /** The `next` payloads and `error` payload of operation `id`, once it completed or failed. */
  async result(id: string, ms = 5_000): Promise<{ next: GraphQLResponse[]; error?: unknown }> {
    await this.waitFor((m) => m.id === id && (m.type === 'complete' || m.type === 'error'), ms);
    const mine = this.messages.filter((m) => m.id === id);
    return {
      next: mine.filter((m) => m.type === 'next').map((m) => m.payload as GraphQLResponse),
      error: mine.find((m) => m.type === 'error')?.payload,
    };
  }

  async waitFor(match: (message: WsMessage) => boolean, ms = 5_000): Promise<WsMessage> {
    const deadline = Date.now() + ms;
    for (;;) {
      const found = this.messages.find(match);
      if (found) {
        return found;
      }
      if (Date.now() > deadline || this.closeCode !== null) {
        throw new Error(
          `no matching message (closed: ${this.closeCode}); got ${JSON.stringify(this.messages)}`,
        );
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  close(): void {
    this.#socket.close();
  }
}
