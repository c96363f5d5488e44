import { parseArgs } from 'node:util';
import { startSandbox } from './server.js';

/** `npm run sandbox -- --port 3001 [--host 127.0.0.1] [--empty] [--latency 5]` */
async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '3001' },
      host: { type: 'string', default: '127.0.0.1' },
      empty: { type: 'boolean', default: false },
      latency: { type: 'string', default: '0' },
      'no-rate-limits': { type: 'boolean', default: false },
    },
  });
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--port must be a whole number from 0 to 65535, got "${values.port}"`);
  }
  const sandbox = await startSandbox({
    port,
    host: values.host,
    seed: values.empty ? 'empty' : 'demo',
    latencyMs: Number(values.latency) || 0,
    rateLimits: !values['no-rate-limits'],
  });
  console.log(
    `Misskey sandbox listening on ${sandbox.origin} (${values.empty ? 'empty' : 'demo data'})`,
  );
  if (sandbox.demo) {
    for (const [name, user] of Object.entries(sandbox.demo.users)) {
      console.log(`  ${name.padEnd(6)} id ${user.id}  token ${user.token}`);
    }
  }
  const stop = () => {
    sandbox.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
