import type { CodegenConfig } from '@graphql-codegen/cli';

/**
 * `npm run codegen`: TypeScript types and typed documents for the operations in
 * examples/operations, from the committed schema.graphql. The output is committed too;
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
  },
  hooks: { afterAllFileWrite: ['biome check --write'] },
};

export default config;
