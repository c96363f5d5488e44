import type { Logger } from 'pino';
import { tuneProcess } from './runtime/index.js';
import type { Sandbox } from './sandbox/server.js';

// Before anything else is loaded (see src/runtime/): the rest comes by dynamic import.
const startupDone = tuneProcess();
const { createGateway, gatewayOptionsFromConfig } = await import('./app/gateway.js');
const { ConfigError, loadConfig } = await import('./config.js');

/**
 * `npm start`: with MISSKEY_URL, the gateway in front of that instance; without it, the embedded
 * Misskey sandbox with demo data plus the gateway in front of it.
 */
async function main(): Promise<void> {
  const config = loadConfig();
  let sandbox: Sandbox | null = null;
  let misskeyUrl = config.misskeyUrl;
  if (misskeyUrl === null) {
    const { startSandbox } = await import('./sandbox/server.js');
    sandbox = await startSandbox({ port: 0, host: '127.0.0.1', seed: 'demo' });
    misskeyUrl = sandbox.origin;
  }
  const options = gatewayOptionsFromConfig(config, misskeyUrl);
  const { DEMO_TOKENS } = await import('./sandbox/demo.js');
  if (sandbox) {
    options.graphiqlDefaults = {
      headers: JSON.stringify({ Authorization: `Bearer ${DEMO_TOKENS.alice}` }, null, 2),
      defaultQuery: DEMO_QUERY,
      ...(sandbox.demo ? { demo: sandbox.demo } : {}),
    };
  }
  const gateway = await createGateway(options);
  startupDone();

  console.log(`misskey-graphql serving ${gateway.url} (GraphiQL: open it in a browser)`);
  if (sandbox?.demo) {
    console.log(`upstream: embedded Misskey sandbox at ${sandbox.origin} with demo data`);
    console.log('demo tokens:');
    for (const [name, user] of Object.entries(sandbox.demo.users)) {
      console.log(`  ${name.padEnd(6)} ${user.token}  (user id ${user.id})`);
    }
    console.log(
      `paste into GraphiQL's headers: { "Authorization": "Bearer ${DEMO_TOKENS.alice}" }`,
    );
  } else {
    console.log(`upstream: ${misskeyUrl}`);
  }

  // A standard output whose reader has gone (a closed pipe) loses what is written to it, and
  // nothing more: unhandled, its EPIPE would end the process, and pino's exit hook would then
  // retry the buffered log lines forever (sonic-boom 4's flushSync loops on EPIPE), a process
  // that neither serves nor stops. pino drops its own stream's lines once it has seen EPIPE.
  process.stdout.on('error', ignoreBrokenPipe);

  // SIGTERM/SIGINT: graceful close (gateway.close() is bounded by SHUTDOWN_DELAY_MS +
  // SHUTDOWN_TIMEOUT_MS), then exit 0; a second signal, or a close that overruns, exits 1.
  const logger = options.logger;
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      process.exit(1);
    }
    stopping = true;
    console.log(`${signal}: shutting down`);
    const force = setTimeout(
      () => {
        logger?.error({ signal }, 'shutdown did not finish in time');
        process.exit(1);
      },
      config.shutdownDelayMs + config.shutdownTimeoutMs + 5_000,
    );
    force.unref();
    gateway
      .close()
      .then(() => sandbox?.close())
      .then(() => flushLogs(logger))
      .then(
        () => process.exit(0),
        (error: unknown) => {
          logger?.error({ err: error }, 'shutdown failed');
          process.exit(1);
        },
      );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

function ignoreBrokenPipe(error: NodeJS.ErrnoException): void {
  if (error.code !== 'EPIPE') {
    throw error;
  }
}

/**
 * The buffered log lines written before exit, asynchronously: a write that fails (EPIPE) then
 * turns pino's stream off instead of looping in the exit hook's synchronous flush. Bounded, so
 * a stuck standard output cannot hold the exit.
 */
async function flushLogs(logger: Logger | undefined): Promise<void> {
  if (!logger) {
    return;
  }
  await new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, 1_000);
    logger.flush(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

const DEMO_QUERY = `# Welcome to misskey-graphql. The Authorization header (below) holds alice's demo token.
query Me {
  me {
    id
    username
    name
    description
    followersCount
  }
}
`;

main().catch((error: unknown) => {
  if (error instanceof ConfigError) {
    console.error(`configuration error: ${error.message}`);
  } else {
    console.error(error);
  }
  process.exit(1);
});
