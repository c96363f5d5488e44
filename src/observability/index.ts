/** Logs, request scope and metrics. */
export * from './logger.js';
export * from './metrics.js';
export * from './request-scope.js';
