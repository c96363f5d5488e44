import { createHash } from 'node:crypto';
import { once } from 'node:events';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import sharp from 'sharp';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createGateway } from '../src/app/gateway.js';
import { DEFAULT_POLICIES } from '../src/sandbox/store.js';
import { checkedLogger, DEMO_TOKENS, demoUserIds, type Stack, startStack } from './harness.js';

let stack: Stack;
let bob: string;

beforeAll(async () => {
  stack = await startStack({ sandbox: { rateLimits: false } });
  ({ bob } = demoUserIds(stack));
});
beforeEach(() => {
  stack.sandbox.resetCalls();
  stack.sandbox.store.defaultPolicies = structuredClone(DEFAULT_POLICIES);
});

const BOUNDARY = '----upload-test-boundary';
const CSRF = { 'x-graphql-yoga-csrf': '1' };

interface Part {
  name: string;
  filename?: string;
  type?: string;
}

/** The bytes of a multipart body around one file part whose content is streamed by the caller. */
function multipartHead(operations: unknown, map: unknown, file?: Part): Buffer {
  let head =
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="operations"\r\n\r\n${JSON.stringify(operations)}\r\n` +
    `--${BOUNDARY}\r\nContent-Disposition: form-data; name="map"\r\n\r\n${JSON.stringify(map)}\r\n`;
  if (file) {
    head +=
      `--${BOUNDARY}\r\nContent-Disposition: form-data; name="${file.name}"; filename="${file.filename ?? 'blob'}"\r\n` +
      `Content-Type: ${file.type ?? 'application/octet-stream'}\r\n\r\n`;
  }
  return Buffer.from(head);
}
const TAIL = Buffer.from(`\r\n--${BOUNDARY}--\r\n`);
const END = Buffer.from(`--${BOUNDARY}--\r\n`);

interface Answer {
  status: number;
  body: {
    data?: Record<string, unknown> | null;
    errors?: { message: string; extensions?: Record<string, unknown> }[];
  };
}

/** POSTs a multipart upload of `file` (bytes, or a generator of chunks) over real HTTP. */
async function post(
  url: string,
  body: Buffer | (() => AsyncGenerator<Buffer>),
  headers: Record<string, string> = CSRF,
  length?: number,
): Promise<Answer> {
  const req = request(url, {
    method: 'POST',
    headers: {
      'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
      authorization: `Bearer ${DEMO_TOKENS.alice}`,
      ...headers,
      ...(Buffer.isBuffer(body)
        ? { 'content-length': String(body.length) }
        : length !== undefined
          ? { 'content-length': String(length) }
          : {}),
    },
  });
  const answered = once(req, 'response');
  if (Buffer.isBuffer(body)) {
    req.end(body);
  } else {
    let early = false;
    answered.then(
      () => {
        early = true;
      },
      () => {},
    );
    // A client stops sending once answered (the gateway may answer before reading everything).
    for await (const chunk of body()) {
      if (early) {
        break;
      }
      if (!req.write(chunk)) {
        await Promise.race([once(req, 'drain'), answered]);
      }
    }
    req.end();
  }
  const [res] = (await answered) as [import('node:http').IncomingMessage];
  let text = '';
  for await (const chunk of res) {
    text += chunk;
  }
  return { status: res.statusCode ?? 0, body: JSON.parse(text) };
}

const UPLOAD = /* GraphQL */ `
  mutation ($file: File!, $name: String, $isSensitive: Boolean) {
    uploadDriveFile(file: $file, name: $name, isSensitive: $isSensitive) {
      id name type md5 size isSensitive width height blurhash
    }
  }
`;

function uploadBody(bytes: Buffer, part: Partial<Part> = {}, variables = {}): Buffer {
  return Buffer.concat([
    multipartHead(
      { query: UPLOAD, variables: { file: null, ...variables } },
      { 0: ['variables.file'] },
      { name: '0', ...part },
    ),
    bytes,
    TAIL,
  ]);
}

const png = () =>
  sharp({
    create: { width: 24, height: 16, channels: 3, background: { r: 200, g: 40, b: 90 } },
  })
    .png()
    .toBuffer();

describe('uploadDriveFile', () => {
  it('streams the file to drive/files/create; the answer has what Misskey detected', async () => {
    const bytes = await png();
    // The client's type and name are wrong on purpose: Misskey detects the type from the bytes.
    const res = await post(
      stack.gateway.url,
      uploadBody(bytes, { filename: 'picture.bin', type: 'text/plain' }, { isSensitive: true }),
    );
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data?.uploadDriveFile).toMatchObject({
      name: 'picture.bin.png',
      type: 'image/png',
      md5: createHash('md5').update(bytes).digest('hex'),
      size: bytes.length,
      isSensitive: true,
      width: 24,
      height: 16,
    });
    expect(stack.sandbox.callCount('drive/files/create')).toBe(1);
  });

  it("a file over the caller's maxFileSizeMb is FILE_TOO_LARGE before any upload", async () => {
    stack.sandbox.store.defaultPolicies = { ...DEFAULT_POLICIES, maxFileSizeMb: 1 };
    const res = await post(stack.gateway.url, uploadBody(Buffer.alloc(1024 * 1024 + 10, 'a')));
    expect(res.body.errors?.[0]?.extensions).toMatchObject({
      code: 'FILE_TOO_LARGE',
      maxBytes: 1024 * 1024,
    });
    expect(stack.sandbox.callCount('drive/files/create')).toBe(0);
  });

  it('a file found too large while streaming (no Content-Length) aborts the upload', async () => {
    stack.sandbox.store.defaultPolicies = { ...DEFAULT_POLICIES, maxFileSizeMb: 1 };
    const countFilesBefore = stack.sandbox.store.driveFiles.size;
    const res = await post(stack.gateway.url, async function* () {
      yield multipartHead(
        { query: UPLOAD, variables: { file: null } },
        { 0: ['variables.file'] },
        { name: '0', filename: 'a.txt', type: 'text/plain' },
      );
      for (let i = 0; i < 20; i++) {
        yield Buffer.alloc(64 * 1024, 'a');
      }
      yield TAIL;
    });
    expect(res.body.errors?.[0]?.extensions?.code).toBe('FILE_TOO_LARGE');
    await new Promise((resolve) => setTimeout(resolve, 100));
    expect(stack.sandbox.store.driveFiles.size).toBe(countFilesBefore);
  });

  it('an empty file is FILE_EMPTY before any upload', async () => {
    const res = await post(stack.gateway.url, uploadBody(Buffer.alloc(0)));
    expect(res.body.errors?.[0]?.extensions?.code).toBe('FILE_EMPTY');
    expect(stack.sandbox.callCount('drive/files/create')).toBe(0);
  });

  it('a file part the map names but the request lacks is BAD_USER_INPUT', async () => {
    const body = Buffer.concat([
      multipartHead({ query: UPLOAD, variables: { file: null } }, { 0: ['variables.file'] }),
      END,
    ]);
    const calls = stack.upstreamCalls.length;
    const res = await post(stack.gateway.url, body);
    expect(res.status).toBe(400);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_USER_INPUT');
    expect(stack.upstreamCalls.slice(calls)).toEqual([]);
  });

  it('no file at all for a File! variable is refused', async () => {
    const body = Buffer.concat([
      multipartHead({ query: UPLOAD, variables: { file: null } }, {}),
      END,
    ]);
    const res = await post(stack.gateway.url, body);
    expect(res.body.errors?.length).toBeGreaterThan(0);
    expect(res.body.data ?? null).toBeNull();
    expect(stack.sandbox.callCount('drive/files/create')).toBe(0);
  });

  it("Misskey's own refusals keep their codes (unallowed type)", async () => {
    const res = await post(
      stack.gateway.url,
      uploadBody(Buffer.from([0x50, 0x4b, 0x03, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]), {
        filename: 'a.zip',
      }),
    );
    expect(res.body.errors?.[0]?.extensions).toMatchObject({
      code: 'UNALLOWED_FILE_TYPE',
      misskey: { id: '4becd248-7f2c-48c4-a9f0-75edc4f9a1ea' },
    });
  });

  it('a multipart POST without a preflight header is refused (CSRF)', async () => {
    const res = await post(stack.gateway.url, uploadBody(await png()), {});
    expect(res.status).toBe(403);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('BAD_REQUEST');
    expect(stack.sandbox.callCount('drive/files/create')).toBe(0);
  });

  it('a JSON body over MAX_BODY_BYTES is still 413', async () => {
    const res = await fetch(stack.gateway.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ query: `{ __typename }`, variables: { pad: 'x'.repeat(70_000) } }),
    });
    expect(res.status).toBe(413);
  });

  it('a client that goes away mid-upload leaves no upload behind', async () => {
    const filesBefore = stack.sandbox.store.driveFiles.size;
    const req = request(stack.gateway.url, {
      method: 'POST',
      headers: {
        'content-type': `multipart/form-data; boundary=${BOUNDARY}`,
        authorization: `Bearer ${DEMO_TOKENS.alice}`,
        ...CSRF,
      },
    });
    req.on('error', () => {});
    req.write(
      multipartHead(
        { query: UPLOAD, variables: { file: null } },
        { 0: ['variables.file'] },
        { name: '0', filename: 'a.txt', type: 'text/plain' },
      ),
    );
    req.write(Buffer.alloc(256 * 1024, 'a'));
    // Wait until the gateway is sending the upload on, then go away.
    const deadline = Date.now() + 3_000;
    while (stack.gateway.client.sockets().running === 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    expect(stack.gateway.client.sockets().running).toBe(1);
    req.destroy();
    await new Promise((resolve) => setTimeout(resolve, 300));
    // The upstream request was aborted, not left to finish.
    expect(stack.gateway.client.sockets().running).toBe(0);
    expect(stack.sandbox.store.driveFiles.size).toBe(filesBefore);
    expect(stack.sandbox.calls.filter((c) => c.endpoint === 'drive/files/create')).toEqual([]);
  });
});

describe('MAX_UPLOAD_BYTES', () => {
  let small: Stack;
  beforeAll(async () => {
    small = await startStack({
      sandbox: { rateLimits: false },
      gateway: { limits: { maxUploadBytes: 100_000 } },
    });
  });

  it('a file streamed past it is FILE_TOO_LARGE and the rest of the request is not read', async () => {
    let sent = 0;
    const files = small.sandbox.store.driveFiles.size;
    const res = await post(small.gateway.url, async function* () {
      yield multipartHead(
        { query: UPLOAD, variables: { file: null } },
        { 0: ['variables.file'] },
        { name: '0', filename: 'a.txt', type: 'text/plain' },
      );
      // Far more than the limit: the answer comes (and the connection closes) long before.
      for (; sent < 50_000_000; sent += 16 * 1024) {
        yield Buffer.alloc(16 * 1024, 'a');
      }
      yield TAIL;
    });
    expect(res.body.errors?.[0]?.extensions).toMatchObject({
      code: 'FILE_TOO_LARGE',
      maxBytes: 100_000,
    });
    expect(sent).toBeLessThan(50_000_000);
    expect(small.sandbox.store.driveFiles.size).toBe(files);
    expect(small.sandbox.calls.filter((c) => c.endpoint === 'drive/files/create')).toEqual([]);
  });

  it('files cut while streaming are no upstream failures: the circuit breaker stays closed', async () => {
    for (let i = 0; i < 7; i++) {
      const res = await post(small.gateway.url, async function* () {
        yield multipartHead(
          { query: UPLOAD, variables: { file: null } },
          { 0: ['variables.file'] },
          { name: '0', filename: 'a.txt', type: 'text/plain' },
        );
        for (let sent = 0; sent < 1_000_000; sent += 16 * 1024) {
          yield Buffer.alloc(16 * 1024, 'a');
        }
        yield TAIL;
      });
      expect(res.body.errors?.[0]?.extensions?.code).toBe('FILE_TOO_LARGE');
    }
    expect(small.gateway.client.breakerState).toBe('closed');
  });

  it('a request whose Content-Length is over it (and MAX_BODY_BYTES) is 413', async () => {
    const res = await post(small.gateway.url, uploadBody(Buffer.alloc(200_000, 'a')));
    expect(res.status).toBe(413);
    expect(res.body.errors?.[0]?.extensions?.code).toBe('REQUEST_ENTITY_TOO_LARGE');
  });

  it('a file just over it, by Content-Length, is FILE_TOO_LARGE before any upload', async () => {
    const res = await post(small.gateway.url, uploadBody(Buffer.alloc(150_000, 'a')));
    expect(res.body.errors?.[0]?.extensions?.code).toBe('FILE_TOO_LARGE');
    expect(small.sandbox.callCount('drive/files/create')).toBe(0);
  });
});

describe('sendChatMessage with a file', () => {
  it('uploads the file, then sends the message with it, in one mutation', async () => {
    const bytes = await png();
    const query = /* GraphQL */ `
      mutation ($input: SendChatMessageInput!) {
        sendChatMessage(input: $input) { id text file { id type md5 size } }
      }
    `;
    const body = Buffer.concat([
      multipartHead(
        { query, variables: { input: { toUserId: bob, text: 'a picture', file: null } } },
        { 0: ['variables.input.file'] },
        { name: '0', filename: 'p.png', type: 'image/png' },
      ),
      bytes,
      TAIL,
    ]);
    const res = await post(stack.gateway.url, body);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data?.sendChatMessage).toMatchObject({
      text: 'a picture',
      file: {
        type: 'image/png',
        size: bytes.length,
        md5: createHash('md5').update(bytes).digest('hex'),
      },
    });
    expect(stack.sandbox.callCount('drive/files/create')).toBe(1);
    expect(stack.sandbox.callCount('chat/messages/create-to-user')).toBe(1);
  });
});

describe('memory', () => {
  let upstream: Server;
  let received = 0;
  afterAll(async () => {
    upstream?.close();
  });

  it('a 50 MB upload streams through: the process grows by far less than the file', async () => {
    // A stand-in Misskey that counts the bytes of the upload and keeps none of them (the
    // sandbox holds whole files, which would hide the gateway's own use).
    upstream = createServer(async (req, res) => {
      if (req.url === '/api/i') {
        req.resume();
        res.setHeader('content-type', 'application/json');
        res.end(
          JSON.stringify({
            id: 'aaaaaaaaaa',
            username: 'alice',
            isAdmin: false,
            isModerator: false,
            policies: { ...DEFAULT_POLICIES, maxFileSizeMb: 100 },
          }),
        );
        return;
      }
      for await (const chunk of req) {
        received += (chunk as Buffer).length;
      }
      res.setHeader('content-type', 'application/json');
      res.end(
        JSON.stringify({
          id: 'bbbbbbbbbb',
          createdAt: new Date().toISOString(),
          name: 'big.bin',
          type: 'application/octet-stream',
          md5: '0'.repeat(32),
          size: received,
          isSensitive: false,
          blurhash: null,
          url: 'http://localhost/files/big.bin',
          thumbnailUrl: null,
          comment: null,
          properties: {},
        }),
      );
    });
    upstream.listen(0, '127.0.0.1');
    await once(upstream, 'listening');
    const { port } = upstream.address() as AddressInfo;
    const gateway = await createGateway({
      misskeyUrl: `http://127.0.0.1:${port}`,
      port: 0,
      upstreamTimeoutMs: 60_000,
      operationTimeoutMs: 60_000,
      logger: checkedLogger(),
      metrics: false,
    });
    try {
      const chunk = Buffer.alloc(64 * 1024, 7);
      const upload = (size: number) =>
        post(gateway.url, async function* () {
          yield multipartHead(
            { query: UPLOAD, variables: { file: null } },
            { 0: ['variables.file'] },
            { name: '0', filename: 'big.bin' },
          );
          for (let sent = 0; sent < size; sent += chunk.length) {
            yield sent + chunk.length <= size ? chunk : chunk.subarray(0, size - sent);
          }
          yield TAIL;
        });
      // Warm-up: the code of an upload is loaded and compiled, and the heap and the allocator
      // reach the size they keep while bytes flow through (freed buffers are reused, not
      // returned), before measuring. Without it the first upload of the process adds ~50 MB,
      // the same for any larger file: V8 collects buffers only every few tens of MB.
      expect((await upload(20_000_000)).body.errors).toBeUndefined();
      received = 0;
      const size = 50_000_000;
      const before = process.memoryUsage().rss;
      let peak = before;
      const sampler = setInterval(() => {
        peak = Math.max(peak, process.memoryUsage().rss);
      }, 5);
      const res = await upload(size);
      clearInterval(sampler);
      peak = Math.max(peak, process.memoryUsage().rss);
      expect(res.body.errors).toBeUndefined();
      // The multipart framing around the file is the rest.
      expect(received).toBeGreaterThan(size);
      expect(received).toBeLessThan(size + 1_000);
      const growth = peak - before;
      console.info(`rss growth for a ${size}-byte upload: ${(growth / 1e6).toFixed(1)} MB`);
      expect(growth).toBeLessThan(30_000_000);
    } finally {
      await gateway.close();
    }
  }, 60_000);
});
