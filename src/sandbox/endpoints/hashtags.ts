import type { EndpointDef } from '../registry.js';

export const hashtagsEndpoints: EndpointDef[] = [];
