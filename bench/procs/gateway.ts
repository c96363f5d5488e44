import { createGateway, gatewayOptionsFromConfig } from '../../src/app/gateway.js';
import { loadConfig } from '../../src/config.js';
import { announceReady, serveCommands } from '../ipc.js';
import type { ServerReady } from '../protocol.js';
import { statsHandlers } from './stats.js';

/**
 * S2: the gateway exactly as `npm start` builds it from the environment (MISSKEY_URL set, every
 * other setting at its default unless the runner's environment says otherwise), on a free port.
 */
async function main(): Promise<void> {
  const config = loadConfig({ ...process.env, PORT: '0', HOST: '127.0.0.1' });
  if (config.misskeyUrl === null) {
    throw new Error('MISSKEY_URL is required');
  }
  const gateway = await createGateway(gatewayOptionsFromConfig(config, config.misskeyUrl));
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
