import { rmSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { build, type Plugin } from 'esbuild';
import pkg from '../package.json' with { type: 'json' };

/**
 * `npm run build [-- --outDir <dir>]`: the shipped program as an esbuild bundle in `dist/`.
 *
 * One bundle instead of a tree of modules because the process then holds one module record and
 * one source per chunk instead of ~600 of each: idle RSS of `node dist/main.js` drops by ~12 MB
 * (bench/FINDINGS.md). Identifiers are kept (stack traces stay readable); only whitespace and
 * syntax are minified, which is what saves the memory. Lazily loaded parts (the sandbox, tracing,
 * Redis, GraphiQL's page) stay in chunks of their own, loaded on first use as before.
 *
 * Not bundled: the dev dependencies (so a stray runtime import of one still fails in the
 * production image, as test/artifact.test.ts checks) and packages with native addons, which
 * locate their binaries relative to their own files.
 */
const NATIVE = ['sharp'];

/**
 * graphql 16 ships each module twice, CommonJS (`.js`) and ES (`.mjs`), without an exports map:
 * CommonJS dependents (graphql-jit) and deep imports (`graphql/language/parser`) would get the
 * `.js` tree. Every file of graphql is taken from its ES build instead, so the bundle holds one
 * graphql (its `instanceof` checks hold) and ES importers bind its exports directly rather than
 * each copying ~400 of them into a namespace of getters (~11,000 closures at rest).
 */
const graphqlAsEsm: Plugin = {
  name: 'graphql-as-esm',
  setup(build) {
    build.onResolve({ filter: /^graphql(\/|$)/ }, async (args) => {
      if (args.pluginData === 'graphql-as-esm') {
        return undefined;
      }
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        resolveDir: args.resolveDir,
        pluginData: 'graphql-as-esm',
      });
      if (resolved.errors.length > 0 || !resolved.path.endsWith('.js')) {
        return resolved;
      }
      return { path: resolved.path.replace(/\.js$/, '.mjs') };
    });
  },
};

/**
 * @whatwg-node/server decides whether to make its own abort controllers by comparing the Request
 * class it was given with `globalThis.Request`. On Node that class is always @whatwg-node's
 * ponyfill, so the answer is always yes; but reading the global makes Node load its own bundled
 * undici (fetch, Request, Response, …), which nothing in the gateway uses: ~2 MB of an idle
 * gateway's RSS. The comparison is replaced by its answer, and the build fails if the line is no
 * longer there to replace (a new version to look at again).
 */
const NATIVE_REQUEST_PROBE = 'fetchAPI.Request !== globalThis.Request';
const skipNativeRequestProbe: Plugin = {
  name: 'skip-native-request-probe',
  setup(build) {
    build.onLoad(
      { filter: /@whatwg-node[\\/]server[\\/]\w+[\\/]createServerAdapter\.js$/ },
      async (args) => {
        const source = await readFile(args.path, 'utf8');
        if (!source.includes(NATIVE_REQUEST_PROBE)) {
          throw new Error(`${args.path} no longer holds "${NATIVE_REQUEST_PROBE}"`);
        }
        return { contents: source.replace(NATIVE_REQUEST_PROBE, 'true'), loader: 'js' };
      },
    );
  },
};

const { values } = parseArgs({ options: { outDir: { type: 'string', default: 'dist' } } });
const root = resolve(import.meta.dirname, '..');
const outdir = resolve(root, values.outDir);

rmSync(outdir, { recursive: true, force: true });
await build({
  absWorkingDir: root,
  entryPoints: {
    main: 'src/main.ts',
    'sandbox/main': 'src/sandbox/main.ts',
    // Imported by the benchmark's subscription gateway, which builds the gateway itself.
    'app/gateway': 'src/app/gateway.ts',
    runtime: 'src/runtime/index.ts',
    config: 'src/config.ts',
  },
  outdir,
  chunkNames: 'chunks/[name]-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  plugins: [graphqlAsEsm, skipNativeRequestProbe],
  minifyWhitespace: true,
  minifySyntax: true,
  sourcemap: 'linked',
  external: [...Object.keys(pkg.devDependencies), ...NATIVE],
  // CommonJS packages inside an ES module bundle still call require() for Node's built-ins.
  banner: {
    js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);",
  },
  logLevel: 'warning',
});
console.log(`built ${join(values.outDir, 'main.js')}`);
