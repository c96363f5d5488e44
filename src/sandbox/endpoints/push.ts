import type { EndpointDef } from '../registry.js';

export const pushEndpoints: EndpointDef[] = [];
