import { defineConfig } from 'vitest/config';

export default defineConfig({
  // Pothos and Yoga load graphql through require(); make our imports use that same copy, or
  // graphql sees two realms ("Cannot use GraphQLSchema from another module").
  resolve: { alias: { graphql: 'graphql/index.js' } },
  test: {
    include: ['test/**/*.test.ts'],
    testTimeout: 20_000,
    hookTimeout: 20_000,
    pool: 'forks',
    reporters: ['default'],
  },
});
