import type { EndpointDef } from '../registry.js';

export const chatEndpoints: EndpointDef[] = [];
