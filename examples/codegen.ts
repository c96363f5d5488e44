import { createHash } from 'node:crypto';
import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * `npm run codegen`: TypeScript types and typed documents for the operations in
 * examples/operations, from the committed schema.graphql, and the client preset's trusted
 * documents: examples/generated/client/persisted-documents.json (sha256 of each document's text →
 * that text), the manifest `PERSISTED_OPERATIONS` loads. The output is committed too;
 * test/examples.test.ts fails when it is stale.
 */
const config: CodegenConfig = {
  overwrite: true,
  schema: 'schema.graphql',
  documents: 'examples/operations/*.graphql',
  generates: {
    'examples/generated/graphql.ts': {
      plugins: ['typescript-operations', 'typed-document-node'],
      config: {
        useTypeImports: true,
        enumsAsTypes: true,
        skipTypename: true,
        scalars: { DateTime: 'string', File: 'Blob' },
      },
    },
    'examples/generated/client/': {
      preset: 'client',
      presetConfig: {
        // Plain hex (no `sha256:` prefix): what clients send in
        // extensions.persistedQuery.sha256Hash.
        persistedDocuments: {
          hashAlgorithm: (document: string) => createHash('sha256').update(document).digest('hex'),
        },
        fragmentMasking: false,
      },
      config: {
        // ES module imports (`./graphql.js`), as the project's TypeScript settings require.
        emitLegacyCommonJSImports: false,
        useTypeImports: true,
        enumsAsTypes: true,
        skipTypename: true,
        scalars: { DateTime: 'string' },
      },
    },
  },
  hooks: { afterAllFileWrite: ['biome check --write'] },
};

export default config;
