import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type * as GatewayModule from '../../src/app/gateway.js';
import type * as ConfigModule from '../../src/config.js';
import type * as RuntimeModule from '../../src/runtime/index.js';
import { announceReady, serveCommands } from '../ipc.js';
import type { ServerReady } from '../protocol.js';
import { statsHandlers } from './stats.js';

/**
 * S2 for workload (d): the gateway exactly as `npm start` builds it from the environment
 * (MISSKEY_URL set, every other setting at its default unless the runner's environment says
 * otherwise), on a free port, from the built tree in BENCH_ARTIFACT_ROOT (the JavaScript users
 * run, not the TypeScript through tsx), with the bench's commands (gc, heap, profile) beside it.
 */
async function main(): Promise<void> {
  // tsx, which runs this file, turns source maps on for the whole process; `node dist/main.js`
  // does not. With them on, the first error whose stack is formatted (an idle upstream socket's
  // timeout is enough) parses the bundle's source maps: ~40 MB of heap and a pause of a major
  // collection in the middle of the delivery window, neither of which users' processes pay.
  process.setSourceMapsEnabled(false);
  const root = process.env.BENCH_ARTIFACT_ROOT;
  if (!root) {
    throw new Error('BENCH_ARTIFACT_ROOT (a built tree) is required');
  }
  const built = (path: string) => import(pathToFileURL(join(root, 'dist', path)).href);
  // The process-wide V8 settings `node dist/main.js` makes, made the same way (a tree built
  // before they had an entry of their own, given with --artifact, makes none).
  const startupDone = existsSync(join(root, 'dist', 'runtime.js'))
    ? ((await built('runtime.js')) as typeof RuntimeModule).tuneProcess()
    : () => undefined;
  const { createGateway, gatewayOptionsFromConfig } = (await built(
    'app/gateway.js',
  )) as typeof GatewayModule;
  const { loadConfig } = (await built('config.js')) as typeof ConfigModule;
  const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1' });
  if (config.misskeyUrl === null) {
    throw new Error('MISSKEY_URL is required');
  }
  const gateway = await createGateway(gatewayOptionsFromConfig(config, config.misskeyUrl));
  startupDone();
  serveCommands(statsHandlers(() => gateway.client.sockets().connected));
  announceReady({ origin: gateway.origin } satisfies ServerReady);
  const stop = () => {
    gateway.close().finally(() => process.exit(0));
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

main().catch((error: unknown) => {
  console.error('bench gateway:', error);
  process.exit(1);
});
