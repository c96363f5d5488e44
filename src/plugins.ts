import type { Plugin } from 'graphql-yoga';
import { responseCache } from './cache.js';
import type { Context } from './context.js';

export interface PluginOptions {
  /** Reserved for settings of the plugins below. */
  readonly env?: Record<string, never>;
}

/**
 * The envelop/Yoga plugins of the gateway, in order. One line each; every plugin says why it is
 * here.
 */
export function gatewayPlugins(
  _options: PluginOptions = {},
): Plugin<Record<string, unknown> & Context>[] {
  return [
    // Anonymous public reads (trend 60 s; hashtags, announcements 30 s) from a shared cache.
    responseCache(),
  ];
}
