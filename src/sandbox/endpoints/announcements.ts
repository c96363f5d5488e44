import type { EndpointDef } from '../registry.js';

export const announcementsEndpoints: EndpointDef[] = [];
