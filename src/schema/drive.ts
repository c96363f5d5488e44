// Filled in by its domain; imported by schema/index.ts.
export {};
