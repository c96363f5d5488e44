import { createHash } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { promisify } from 'node:util';
import { gzip as gzipCallback } from 'node:zlib';

const gzip = promisify(gzipCallback);

/**
 * GraphiQL on GET /graphql, served entirely by the gateway: the page, Yoga's GraphiQL bundle
 * (`@graphql-yoga/render-graphiql` ships it as strings), its stylesheet and Monaco's workers come
 * from this origin, so it works offline and behind firewalls (Yoga's default page loads them from
 * a CDN). The page opens with example operations in tabs; in demo mode they carry the demo tokens.
 */

/** A tab GraphiQL opens with (when the browser has no tabs stored from an earlier visit). */
export interface GraphiQLTab {
  query: string;
  variables?: string;
  headers?: string;
}

/** A demo user (the sandbox's seed): its id and fixed token. */
export interface GraphiQLDemoUser {
  id: string;
  token: string;
}

export interface GraphiQLDefaults {
  /** Headers (JSON text) of the header editor, e.g. the demo token. */
  headers?: string;
  /** The operation a new tab opens with. */
  defaultQuery?: string;
  /** Demo mode: tabs speak as alice, and one tab replies as bob. */
  demo?: { users: { alice: GraphiQLDemoUser; bob: GraphiQLDemoUser } };
}

/** Options handed to `YogaGraphiQL.renderYogaGraphiQL` in the browser. */
export interface GraphiQLPageOptions {
  title: string;
  endpoint: string;
  subscriptionsProtocol: 'WS';
  defaultTabs: GraphiQLTab[];
  defaultQuery?: string;
  headers?: string;
  /** The first tab's variables: GraphiQL fills the variables editor from this, not the tab. */
  variables?: string;
  shouldPersistHeaders: boolean;
}

export const CONVERSATION_QUERY = `# My conversation with one user, newest first:
# who sent what, and when. Press the play button
# (or Ctrl-Enter); change the user under Variables.
query Conversation($username: String!) {
  user(username: $username) {
    id
    name
    chatMessages(first: 10) {
      edges {
        node {
          id
          createdAt
          text
          fromUser {
            username
            name
          }
        }
      }
    }
  }
}
`;

export const ROOMS_QUERY = `# My chat rooms (owned and joined) with their owners,
# members and last three messages, in one request.
query MyRooms {
  ownedChatRooms(first: 10) {
    edges {
      node {
        ...RoomOverview
      }
    }
  }
  joinedChatRooms(first: 10) {
    edges {
      node {
        room {
          ...RoomOverview
        }
      }
    }
  }
}

fragment RoomOverview on ChatRoom {
  id
  name
  owner {
    username
  }
  members(first: 10) {
    edges {
      node {
        user {
          username
        }
      }
    }
  }
  messages(first: 3) {
    edges {
      node {
        createdAt
        text
        fromUser {
          username
        }
      }
    }
  }
}
`;

export const TRENDING_QUERY = `# Hashtags trending on the instance right now
# (public data: works without a token too).
query Trending {
  trendingHashtags {
    tag
    usersCount
    chart
  }
}
`;

export const SUBSCRIPTION_QUERY = `# Live: every chat message sent to me, over a websocket.
# Start it, then send me a message from a second
# GraphiQL window (tab ReplyAsBob in demo mode):
# Misskey announces it about 3 s after it was sent.
subscription NewMessages {
  chatMessageReceived {
    id
    createdAt
    text
    fromUser {
      username
      name
    }
    toRoom {
      name
    }
  }
}
`;

export const SEND_MUTATION = `# Sends a direct chat message. In demo mode this tab
# speaks as bob (Headers) to alice (Variables). Run it
# from a second GraphiQL window while NewMessages runs
# in the first one, and watch the message arrive there.
mutation ReplyAsBob($toUserId: ID!, $text: String!) {
  sendChatMessage(input: { toUserId: $toUserId, text: $text }) {
    id
    createdAt
    text
    fromUser {
      username
    }
  }
}
`;

export const INVITATIONS_SUBSCRIPTION = `# Live: every invitation to a chat room I receive.
# Start it, then have someone invite me to a room
# (chat/rooms/invitations/create): it arrives at once.
subscription Invitations {
  chatRoomInvitationReceived {
    id
    createdAt
    room {
      id
      name
      owner {
        username
      }
    }
  }
}
`;

export const UNREAD_SUBSCRIPTION = `# Live: my unread-chat badge. The current value first,
# then each change: true when a message to me is
# announced (~3 s after ReplyAsBob), false once I read
# it (markAllChatMessagesRead, or the conversation).
subscription UnreadBadge {
  chatUnreadChanged {
    hasUnreadChatMessages
  }
}
`;

function bearer(user: GraphiQLDemoUser): string {
  return JSON.stringify({ Authorization: `Bearer ${user.token}` }, null, 2);
}

/** The header editor's content: the given headers, else alice's token in demo mode. */
function viewerHeaders(defaults: GraphiQLDefaults): string | undefined {
  return defaults.headers ?? (defaults.demo ? bearer(defaults.demo.users.alice) : undefined);
}

/** The tabs GraphiQL opens with. Demo mode fills in tokens and ids. */
export function graphiqlTabs(defaults: GraphiQLDefaults = {}): GraphiQLTab[] {
  const demo = defaults.demo;
  const asViewer = viewerHeaders(defaults);
  const tab = (query: string, variables?: unknown, headers = asViewer): GraphiQLTab => ({
    query,
    ...(variables === undefined ? {} : { variables: JSON.stringify(variables, null, 2) }),
    ...(headers === undefined ? {} : { headers }),
  });
  return [
    tab(CONVERSATION_QUERY, { username: 'bob' }),
    tab(ROOMS_QUERY),
    tab(TRENDING_QUERY),
    tab(SUBSCRIPTION_QUERY),
    tab(
      SEND_MUTATION,
      { toUserId: demo?.users.alice.id ?? 'id of the recipient', text: 'Hello from GraphiQL!' },
      demo ? bearer(demo.users.bob) : asViewer,
    ),
    tab(INVITATIONS_SUBSCRIPTION),
    tab(UNREAD_SUBSCRIPTION),
  ];
}

export function graphiqlPageOptions(
  defaults: GraphiQLDefaults = {},
  endpoint = '/graphql',
): GraphiQLPageOptions {
  const options: GraphiQLPageOptions = {
    title: 'misskey-graphql',
    endpoint,
    subscriptionsProtocol: 'WS',
    defaultTabs: graphiqlTabs(defaults),
    // Only demo tokens are kept in the browser's storage; a real one lasts as long as the page.
    shouldPersistHeaders: defaults.demo !== undefined,
  };
  if (defaults.defaultQuery !== undefined) {
    options.defaultQuery = defaults.defaultQuery;
  }
  const headers = viewerHeaders(defaults);
  if (headers !== undefined) {
    options.headers = headers;
  }
  const variables = options.defaultTabs[0]?.variables;
  if (variables !== undefined) {
    options.variables = variables;
  }
  return options;
}

interface Asset {
  readonly type: string;
  readonly body: Buffer;
  gzipped?: Promise<Buffer>;
}

interface Assets {
  /** Content hash: part of every asset URL, so assets can be cached forever. */
  readonly version: string;
  readonly files: ReadonlyMap<string, Asset>;
}

const JS = 'text/javascript; charset=utf-8';

/** Sets Monaco's worker URLs (same origin) before the bundle loads. */
const ENV_JS = `(function () {
  var base = document.currentScript.src.replace(/[^/]*$/, '');
  var workers = {
    editorWorkerService: 'editor.worker.js',
    json: 'json.worker.js',
    graphql: 'graphql.worker.js',
  };
  self.MonacoEnvironment = {
    globalAPI: false,
    getWorkerUrl: function (_moduleId, label) {
      return base + (workers[label] || workers.editorWorkerService);
    },
  };
})();
`;

/**
 * Renders GraphiQL with the options the page embeds as JSON.
 *
 * GraphiQL keeps its tabs in localStorage and ignores `defaultTabs` once it has some, so when the
 * example tabs changed (a new release, or new demo data with new ids) the stored tabs are dropped
 * and the new ones show. When stored tabs are kept, the editors must start with the active tab's
 * own content: GraphiQL appends a new tab on every load otherwise.
 */
const BOOT_JS = `(function () {
  var element = document.getElementById('graphiql-options');
  var options = JSON.parse(element.textContent);
  try {
    var key = 'misskey-graphql:tabs';
    var editors = ['query', 'variables', 'headers', 'operationName'];
    if (localStorage.getItem(key) !== element.dataset.tabs) {
      ['tabState'].concat(editors).forEach(function (name) {
        localStorage.removeItem('graphiql:' + name);
      });
      localStorage.setItem(key, element.dataset.tabs);
    }
    var stored = JSON.parse(localStorage.getItem('graphiql:tabState') || 'null');
    var active = stored && stored.tabs && stored.tabs[stored.activeTabIndex];
    if (active) {
      delete options.variables;
      editors.forEach(function (name) {
        var value = active[name];
        if (name === 'headers' && !options.shouldPersistHeaders) {
          return;
        }
        if (value) {
          localStorage.setItem('graphiql:' + name, value);
        } else {
          localStorage.removeItem('graphiql:' + name);
        }
      });
    }
  } catch (error) {
    // No storage (private mode): GraphiQL starts from the defaults anyway.
  }
  YogaGraphiQL.renderYogaGraphiQL(document.getElementById('root'), options);
})();
`;

let assetsLoading: Promise<Assets> | undefined;

function loadAssets(): Promise<Assets> {
  assetsLoading ??= import('@graphql-yoga/render-graphiql/graphiql').then((bundle) => {
    const files = new Map<string, Asset>([
      ['env.js', { type: JS, body: Buffer.from(ENV_JS) }],
      ['graphiql.js', { type: JS, body: Buffer.from(bundle.js) }],
      ['boot.js', { type: JS, body: Buffer.from(BOOT_JS) }],
      ['graphiql.css', { type: 'text/css; charset=utf-8', body: Buffer.from(bundle.css) }],
      ['editor.worker.js', { type: JS, body: Buffer.from(bundle.editorWorkerService) }],
      ['json.worker.js', { type: JS, body: Buffer.from(bundle.jsonWorker) }],
      ['graphql.worker.js', { type: JS, body: Buffer.from(bundle.graphqlWorker) }],
    ]);
    const icon = /^data:([^;,]+);base64,(.*)$/s.exec(bundle.favicon);
    if (icon?.[1] && icon[2]) {
      files.set('favicon.ico', { type: icon[1], body: Buffer.from(icon[2], 'base64') });
    }
    const hash = createHash('sha256');
    for (const [name, asset] of files) {
      hash.update(name).update(asset.body);
    }
    return { version: hash.digest('hex').slice(0, 12), files };
  });
  return assetsLoading;
}

/** Where the assets live; `/graphiql/<version>/<file>`. */
export const GRAPHIQL_ASSET_ROOT = '/graphiql/';

/** Content-Security-Policy of the page: nothing may load from, or be sent to, another origin. */
export const GRAPHIQL_CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "font-src 'self' data:",
  "worker-src 'self' blob:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'none'",
].join('; ');

function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function renderGraphiQLPage(options: GraphiQLPageOptions, version: string): string {
  const base = `${GRAPHIQL_ASSET_ROOT}${version}/`;
  // JSON inside <script type="application/json">: only "<" could end the element early.
  const json = JSON.stringify(options).replace(/</g, '\\u003c');
  const tabs = createHash('sha256').update(JSON.stringify(options.defaultTabs)).digest('hex');
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8" />
    <meta name="viewport" content="width=device-width, initial-scale=1" />
    <title>${escapeHtml(options.title)}</title>
    <link rel="icon" href="${base}favicon.ico" />
    <link rel="stylesheet" href="${base}graphiql.css" />
  </head>
  <body id="body" class="no-focus-outline">
    <noscript>GraphiQL needs JavaScript.</noscript>
    <div id="root">Loading GraphiQL…</div>
    <script type="application/json" id="graphiql-options" data-tabs="${tabs.slice(0, 12)}">${json}</script>
    <script src="${base}env.js"></script>
    <script src="${base}graphiql.js"></script>
    <script src="${base}boot.js"></script>
  </body>
</html>
`;
}

export interface GraphiQLServer {
  /** Serves the page or an asset; false when the request is not GraphiQL's. */
  handle(req: IncomingMessage, res: ServerResponse): boolean;
}

/** Yoga's rule: a browser navigation (GET accepting HTML) to the endpoint gets GraphiQL. */
function wantsPage(req: IncomingMessage, path: string, endpoint: string): boolean {
  return (
    (req.method === 'GET' || req.method === 'HEAD') &&
    (path === endpoint || path === `${endpoint}/`) &&
    (req.headers.accept ?? '').includes('text/html')
  );
}

export function createGraphiQL(defaults: GraphiQLDefaults = {}, endpoint = '/graphql') {
  const pageOptions = graphiqlPageOptions(defaults, endpoint);
  const server: GraphiQLServer = {
    handle(req, res) {
      const path = (req.url ?? '/').split('?')[0] ?? '/';
      if (wantsPage(req, path, endpoint)) {
        loadAssets().then(
          (assets) => {
            const body = Buffer.from(renderGraphiQLPage(pageOptions, assets.version));
            res.writeHead(200, {
              'content-type': 'text/html; charset=utf-8',
              'content-length': body.length,
              'cache-control': 'no-cache',
              'content-security-policy': GRAPHIQL_CSP,
              'x-content-type-options': 'nosniff',
              'referrer-policy': 'no-referrer',
            });
            res.end(req.method === 'HEAD' ? undefined : body);
          },
          (error: unknown) => fail(res, error),
        );
        return true;
      }
      if (!path.startsWith(GRAPHIQL_ASSET_ROOT)) {
        return false;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' });
        res.end();
        return true;
      }
      const [version, name, ...rest] = path.slice(GRAPHIQL_ASSET_ROOT.length).split('/');
      loadAssets().then(
        async (assets) => {
          const asset = rest.length === 0 && name ? assets.files.get(name) : undefined;
          if (!asset) {
            res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' });
            res.end('Not found');
            return;
          }
          // Old versions are still answered (a page loaded before a restart), but not cached.
          const cache =
            version === assets.version
              ? 'public, max-age=31536000, immutable'
              : 'no-cache, must-revalidate';
          let body = asset.body;
          const headers: Record<string, string | number> = {
            'content-type': asset.type,
            'cache-control': cache,
            'x-content-type-options': 'nosniff',
            vary: 'accept-encoding',
          };
          if (/\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''))) {
            asset.gzipped ??= gzip(asset.body);
            body = await asset.gzipped;
            headers['content-encoding'] = 'gzip';
          }
          headers['content-length'] = body.length;
          res.writeHead(200, headers);
          res.end(req.method === 'HEAD' ? undefined : body);
        },
        (error: unknown) => fail(res, error),
      );
      return true;
    },
  };
  return server;
}

function fail(res: ServerResponse, error: unknown): void {
  if (!res.headersSent) {
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' });
  }
  res.end(`GraphiQL is unavailable: ${(error as Error).message}`);
}
