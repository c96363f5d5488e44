import type { EndpointDef } from '../registry.js';

export const invitesEndpoints: EndpointDef[] = [];
